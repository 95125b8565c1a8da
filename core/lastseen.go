package core

import (
	"context"
	"encoding/binary"
	"time"

	"github.com/nats-io/nats.go/jetstream"
)

// Last seen, durably: the table keeps it in memory, which a restarted node
// would lose (edges' snapshots tell who is online, not when the others
// left). So the node that publishes a user's change to offline also puts
// the time in a JetStream key-value bucket (replicated like the receipt
// stream), and every node watches the bucket and raises its table's
// last-seen times from it (a max-register: the later time wins), at start
// and as other nodes write.

// lastSeenQueue bounds writes waiting for the bucket; beyond it they are
// dropped (the in-memory time stays right on every running node).
const lastSeenQueue = 4096

type lastSeenWrite struct {
	user string
	at   time.Time
}

type lastSeen struct {
	n      *Node
	bucket string
	q      chan lastSeenWrite
	ready  chan struct{} // closed once the bucket is open
	kv     jetstream.KeyValue
}

func newLastSeen(n *Node) *lastSeen {
	return &lastSeen{n: n, bucket: "PARLEY_LASTSEEN_" + n.cfg.Region, q: make(chan lastSeenWrite, lastSeenQueue), ready: make(chan struct{})}
}

// put queues a user's last-seen time for the bucket; it never blocks.
func (l *lastSeen) put(user string, at time.Time) {
	select {
	case l.q <- lastSeenWrite{user, at}:
	default:
		l.n.log.Debug("last-seen queue full: not stored", "user", user)
	}
}

// run opens the bucket (retrying until it can), then stores queued times
// and feeds the table with every time in the bucket until ctx ends.
func (l *lastSeen) run(ctx context.Context, js jetstream.JetStream) {
	tm := l.n.cfg.Timeouts
	backoff := tm.StoreRetryMin
	for {
		cctx, cancel := context.WithTimeout(ctx, tm.StoreOpen)
		kv, err := js.CreateOrUpdateKeyValue(cctx, jetstream.KeyValueConfig{
			Bucket: l.bucket, Description: "parley last-seen times (unix ms)", History: 1,
			Storage: jetstream.FileStorage, Replicas: min(3, len(l.n.peers)),
		})
		cancel()
		if err == nil {
			l.kv = kv
			break
		}
		l.n.log.Debug("last-seen bucket: retrying", "err", err)
		select {
		case <-ctx.Done():
			return
		case <-time.After(backoff):
		}
		backoff = min(2*backoff, tm.StoreRetryMax)
	}
	close(l.ready)
	l.n.wg.Add(1)
	go func() {
		defer l.n.wg.Done()
		l.watch(ctx)
	}()
	for {
		select {
		case <-ctx.Done():
			return
		case w := <-l.q:
			pctx, cancel := context.WithTimeout(ctx, tm.StorePut)
			if _, err := l.kv.Put(pctx, w.user, binary.BigEndian.AppendUint64(nil, uint64(w.at.UnixMilli()))); err != nil {
				l.n.log.Debug("last-seen put", "user", w.user, "err", err)
			}
			cancel()
		}
	}
}

// watch raises the table's last-seen times from the bucket, re-watching
// after an error.
func (l *lastSeen) watch(ctx context.Context) {
	for ctx.Err() == nil {
		w, err := l.kv.WatchAll(ctx, jetstream.IgnoreDeletes())
		if err != nil {
			select {
			case <-ctx.Done():
				return
			case <-time.After(l.n.cfg.Timeouts.StoreWatchRetry):
			}
			continue
		}
		for e := range w.Updates() {
			if e == nil || len(e.Value()) != 8 {
				continue // nil: the initial values are all in
			}
			at := time.UnixMilli(int64(binary.BigEndian.Uint64(e.Value())))
			p := l.n.presence
			p.mu.Lock()
			p.table.SeedLastSeen(e.Key(), at)
			p.mu.Unlock()
		}
		_ = w.Stop()
	}
}
