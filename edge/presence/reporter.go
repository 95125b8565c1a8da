package presence

import (
	"context"
	"log/slog"
	"sync"
	"time"

	"github.com/nats-io/nats.go"
	"google.golang.org/protobuf/proto"

	"github.com/parley-chat/parley/syncproto"
	"github.com/parley-chat/parley/syncproto/syncpb"
)

type devKey struct{ user, device string }

type devEntry struct {
	d        *syncpb.PresenceDevice
	sessions int // a device may briefly hold two sessions (a reconnect)
}

// reporter tells the cores which devices are connected here: deltas
// coalesced for Linger, a batch every Interval renewing the edge's lease
// (one message per edge, whatever the number of devices), a snapshot when
// a core asks, and a closing batch when the edge shuts down.
type reporter struct {
	nc      *nats.Conn
	cfg     Config
	subject string
	epoch   uint64
	log     *slog.Logger

	mu       sync.Mutex
	devices  map[devKey]*devEntry              // connected now
	reported map[devKey]*syncpb.PresenceDevice // as the cores were last told
	dirty    map[devKey]struct{}               // changed since
	snapshot bool                              // a core asked for one
	kick     chan struct{}                     // cap 1: something to send

	seq uint64 // the run loop's only
}

func newReporter(nc *nats.Conn, cfg Config, epoch uint64) *reporter {
	return &reporter{nc: nc, cfg: cfg, subject: syncproto.PresenceSubject(cfg.Region), epoch: epoch, log: cfg.Logger,
		devices: map[devKey]*devEntry{}, reported: map[devKey]*syncpb.PresenceDevice{}, dirty: map[devKey]struct{}{},
		snapshot: true, kick: make(chan struct{}, 1)}
}

func (r *reporter) connected(d *syncpb.PresenceDevice) {
	k := devKey{d.UserId, d.DeviceId}
	r.mu.Lock()
	if e := r.devices[k]; e != nil {
		e.sessions++
	} else {
		r.devices[k] = &devEntry{d: d, sessions: 1}
		r.dirty[k] = struct{}{}
	}
	r.mu.Unlock()
	r.wake()
}

func (r *reporter) disconnected(d *syncpb.PresenceDevice) {
	k := devKey{d.UserId, d.DeviceId}
	r.mu.Lock()
	if e := r.devices[k]; e != nil {
		if e.sessions--; e.sessions == 0 {
			delete(r.devices, k)
			r.dirty[k] = struct{}{}
		}
	}
	r.mu.Unlock()
	r.wake()
}

// askSnapshot is the handler of the edge's snapshot subject.
func (r *reporter) askSnapshot(*nats.Msg) {
	r.mu.Lock()
	r.snapshot = true
	r.mu.Unlock()
	r.wake()
}

func (r *reporter) wake() {
	select {
	case r.kick <- struct{}{}:
	default:
	}
}

// run sends batches until ctx ends, then a closing batch.
func (r *reporter) run(ctx context.Context) error {
	sub, err := r.nc.Subscribe(syncproto.PresenceSnapshotSubject(r.cfg.Region, r.cfg.EdgeID), r.askSnapshot)
	if err != nil {
		return err
	}
	defer func() { _ = sub.Unsubscribe() }()
	tick := time.NewTicker(r.cfg.Interval)
	defer tick.Stop()
	linger := time.NewTimer(0) // the first snapshot goes out at once
	armed := true
	for {
		select {
		case <-ctx.Done():
			linger.Stop()
			r.send(&syncpb.PresenceBatch{Closing: true})
			fctx, cancel := context.WithTimeout(context.Background(), time.Second)
			defer cancel()
			_ = r.nc.FlushWithContext(fctx)
			return nil
		case <-r.kick:
			if !armed {
				linger.Reset(r.cfg.Linger)
				armed = true
			}
		case <-linger.C:
			armed = false
			r.flush(false)
		case <-tick.C:
			r.flush(true)
		}
	}
}

// flush sends what changed (or the snapshot asked for); with heartbeat
// it sends a batch even when nothing did.
func (r *reporter) flush(heartbeat bool) {
	r.mu.Lock()
	if r.snapshot {
		r.snapshot = false
		all := make([]*syncpb.PresenceDevice, 0, len(r.devices))
		clear(r.reported)
		for k, e := range r.devices {
			all = append(all, e.d)
			r.reported[k] = e.d
		}
		clear(r.dirty)
		r.mu.Unlock()
		r.sendSnapshot(all)
		return
	}
	var conn, disc []*syncpb.PresenceDevice
	for k := range r.dirty {
		e, was := r.devices[k], r.reported[k]
		switch {
		case e != nil && was == nil:
			conn = append(conn, e.d)
			r.reported[k] = e.d
		case e == nil && was != nil:
			disc = append(disc, was)
			delete(r.reported, k)
		}
	}
	clear(r.dirty)
	r.mu.Unlock()
	if len(conn)+len(disc) == 0 {
		if heartbeat {
			r.send(&syncpb.PresenceBatch{})
		}
		return
	}
	for len(conn)+len(disc) > 0 {
		b := &syncpb.PresenceBatch{}
		n := min(len(conn), r.cfg.MaxPart)
		b.Connected, conn = conn[:n], conn[n:]
		n = min(len(disc), r.cfg.MaxPart-n)
		b.Disconnected, disc = disc[:n], disc[n:]
		r.send(b)
	}
}

// sendSnapshot sends every device in parts of MaxPart, back to back.
func (r *reporter) sendSnapshot(all []*syncpb.PresenceDevice) {
	for first := true; first || len(all) > 0; first = false {
		n := min(len(all), r.cfg.MaxPart)
		b := &syncpb.PresenceBatch{Reset_: first, Snapshot: true, Connected: all[:n]}
		all = all[n:]
		b.SnapshotDone = len(all) == 0
		r.send(b)
	}
}

func (r *reporter) send(b *syncpb.PresenceBatch) {
	r.seq++
	b.EdgeId, b.Epoch, b.Seq = r.cfg.EdgeID, r.epoch, r.seq
	b.LeaseMs = uint32(r.cfg.Lease / time.Millisecond)
	b.SentUnixMs = r.cfg.Now().UnixMilli()
	data, err := proto.Marshal(b)
	if err != nil {
		r.log.Error("marshal presence batch", "err", err)
		return
	}
	// A batch lost here shows the cores a gap in seq: they ask for a
	// snapshot, or the lease runs out while the core is unreachable.
	if err := r.nc.Publish(r.subject, data); err != nil {
		r.log.Debug("publish presence batch", "seq", b.Seq, "err", err)
	}
}

// devices is how many devices are connected here (for tests and stats).
func (r *reporter) count() int {
	r.mu.Lock()
	defer r.mu.Unlock()
	return len(r.devices)
}
