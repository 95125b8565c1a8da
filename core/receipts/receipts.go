// Package receipts keeps delivered and read positions as max-register
// CRDTs (crdt.Devices per conversation and user). A report, validated by
// the conversation's shard leader, is published as a delta on a JetStream
// stream replicated on up to three nodes; every core node consumes the
// stream in order and merges the deltas into its own Badger state, with
// the stream position in the same transaction, so a restart replays
// nothing twice and loses nothing. Merges commute and are idempotent: every
// node ends with the same state whatever order or how often it sees a
// delta.
package receipts

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"log/slog"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"github.com/dgraph-io/badger/v4"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"google.golang.org/protobuf/proto"

	"github.com/parley-chat/parley/crdt"
	"github.com/parley-chat/parley/syncproto"
	"github.com/parley-chat/parley/syncproto/syncpb"
)

// Config of a Service. Zero values mean the defaults.
type Config struct {
	Region string
	// NodeID and Peers (node ids of the region, this one included) are
	// for state transfer: a node behind the stream's retention merges a
	// peer's state. Without peers there is no transfer.
	NodeID string
	Peers  []string
	// Replicas of the stream: 1 in a single-node region, 3 in a region of
	// three or more nodes.
	Replicas int
	// MaxAge and MaxBytes bound the stream (defaults 7 days, 1 GiB).
	MaxAge   time.Duration
	MaxBytes int64
	// Batch is the most deltas merged in one transaction (default 512).
	Batch int
	// OnChange gets, from the merge loop, the changes of each stored batch
	// that moved a user-level view. It must not block for long.
	OnChange func([]Change)
	Logger   *slog.Logger
}

// Validate reports the first bad field.
func (c *Config) Validate() error {
	switch {
	case !syncproto.ValidID(c.Region):
		return fmt.Errorf("receipts: Config.Region %q is not a valid id", c.Region)
	case c.Replicas < 0 || c.Replicas > 5:
		return fmt.Errorf("receipts: Config.Replicas %d out of 0..5", c.Replicas)
	case c.MaxAge < 0 || c.MaxBytes < 0 || c.Batch < 0:
		return errors.New("receipts: negative Config.MaxAge, MaxBytes or Batch")
	}
	return nil
}

func (c *Config) setDefaults() {
	if c.Replicas == 0 {
		c.Replicas = 1
	}
	if c.MaxAge == 0 {
		c.MaxAge = 7 * 24 * time.Hour
	}
	if c.MaxBytes == 0 {
		c.MaxBytes = 1 << 30
	}
	if c.Batch == 0 {
		c.Batch = 512
	}
	if c.Logger == nil {
		c.Logger = slog.New(slog.DiscardHandler)
	}
}

// ErrNotReady is returned by Publish before the stream exists.
var ErrNotReady = &syncproto.Error{Code: syncpb.Code_CODE_UNAVAILABLE, Message: "receipts are starting, retry", RetryAfter: 100 * time.Millisecond}

// Service publishes and merges receipt deltas on one node.
type Service struct {
	cfg    Config
	log    *slog.Logger
	st     store
	nc     *nats.Conn
	js     jetstream.JetStream
	stream string
	ready  atomic.Bool

	mu      sync.Mutex
	applied uint64
	waiters map[chan struct{}]uint64

	merged atomic.Uint64
}

// New returns a Service over db (the node's Badger DB) and nc (a
// connection to the region's NATS). Run starts it.
func New(db *badger.DB, nc *nats.Conn, cfg Config) (*Service, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	cfg.setDefaults()
	js, err := jetstream.New(nc)
	if err != nil {
		return nil, fmt.Errorf("receipts: jetstream: %w", err)
	}
	s := &Service{cfg: cfg, log: cfg.Logger.With("component", "receipts"), st: store{db}, nc: nc, js: js,
		stream: "PARLEY_RECEIPTS_" + cfg.Region, waiters: map[chan struct{}]uint64{}}
	if s.applied, err = s.st.applied(); err != nil {
		return nil, err
	}
	return s, nil
}

func (s *Service) subjects() string { return "parley." + s.cfg.Region + ".rcpt.>" }

func (s *Service) subject(conv string) string { return "parley." + s.cfg.Region + ".rcpt." + conv }

// Run makes sure the stream exists, then merges its deltas in order until
// ctx ends. It survives NATS and JetStream outages by retrying.
func (s *Service) Run(ctx context.Context) error {
	if s.cfg.NodeID != "" {
		sub, err := s.serveState()
		if err != nil {
			return fmt.Errorf("receipts: serve state: %w", err)
		}
		defer sub.Unsubscribe()
	}
	backoff := 50 * time.Millisecond
	for ctx.Err() == nil {
		err := s.consume(ctx)
		if ctx.Err() != nil {
			break
		}
		s.log.Debug("receipt stream: retrying", "err", err)
		select {
		case <-ctx.Done():
		case <-time.After(backoff):
		}
		backoff = min(2*backoff, 2*time.Second)
	}
	return nil
}

func (s *Service) ensureStream(ctx context.Context) error {
	cctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	_, err := s.js.CreateOrUpdateStream(cctx, jetstream.StreamConfig{
		Name:        s.stream,
		Description: "parley receipt deltas (max-register CRDT)",
		Subjects:    []string{s.subjects()},
		Storage:     jetstream.FileStorage,
		Replicas:    s.cfg.Replicas,
		MaxAge:      s.cfg.MaxAge,
		MaxBytes:    s.cfg.MaxBytes,
		Discard:     jetstream.DiscardOld,
		Duplicates:  2 * time.Minute,
	})
	if err != nil {
		return fmt.Errorf("receipts: create stream: %w", err)
	}
	return nil
}

// catchUp transfers a peer's state when the stream no longer holds the
// deltas after this node's position.
func (s *Service) catchUp(ctx context.Context) error {
	st, err := s.js.Stream(ctx, s.stream)
	if err != nil {
		return fmt.Errorf("receipts: stream info: %w", err)
	}
	state := st.CachedInfo().State
	s.mu.Lock()
	applied := s.applied
	s.mu.Unlock()
	if state.FirstSeq <= applied+1 || state.LastSeq <= applied {
		return nil
	}
	s.log.Warn("receipt stream no longer holds what this node missed: transferring a peer's state",
		"applied", applied, "stream_first", state.FirstSeq)
	from, err := s.transfer(ctx)
	if err != nil {
		// Nothing better to do: go on from what the stream still has.
		s.log.Error("receipt state transfer failed; positions before the stream's start may be missing", "err", err)
		return nil
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if from > s.applied {
		s.applied = from
		var b [8]byte
		binary.BigEndian.PutUint64(b[:], from)
		return s.st.db.Update(func(txn *badger.Txn) error { return txn.Set(keyApplied, b[:]) })
	}
	return nil
}

// consume merges the stream from the applied position until an error.
func (s *Service) consume(ctx context.Context) error {
	if err := s.ensureStream(ctx); err != nil {
		return err
	}
	if err := s.catchUp(ctx); err != nil {
		return err
	}
	s.ready.Store(true)
	s.mu.Lock()
	from := s.applied + 1
	s.mu.Unlock()
	cfg := jetstream.OrderedConsumerConfig{DeliverPolicy: jetstream.DeliverByStartSequencePolicy, OptStartSeq: from}
	cons, err := s.js.OrderedConsumer(ctx, s.stream, cfg)
	if err != nil {
		return fmt.Errorf("receipts: consumer: %w", err)
	}
	// A short idle heartbeat: a pull that a replica's server lost (seen at
	// region start on an R3 stream) is noticed and re-issued in 2 s, not 10.
	it, err := cons.Messages(jetstream.PullMaxMessages(4*s.cfg.Batch), jetstream.PullHeartbeat(time.Second))
	if err != nil {
		return fmt.Errorf("receipts: consume: %w", err)
	}
	defer it.Stop()
	batch := make([]*syncpb.ReceiptUpdate, 0, s.cfg.Batch)
	for {
		m, err := it.Next(jetstream.NextContext(ctx))
		if err != nil {
			return err
		}
		batch = batch[:0]
		last := s.add(&batch, m)
		// Take what else is already here, up to a batch.
		for len(batch) < s.cfg.Batch {
			m, err := it.Next(jetstream.NextMaxWait(time.Millisecond))
			if err != nil {
				break
			}
			if seq := s.add(&batch, m); seq > last {
				last = seq
			}
		}
		if last == 0 {
			continue
		}
		if err := s.apply(batch, last); err != nil {
			return err
		}
	}
}

// add appends m's delta to batch and returns its stream sequence (0 when
// it was merged before).
func (s *Service) add(batch *[]*syncpb.ReceiptUpdate, m jetstream.Msg) uint64 {
	md, err := m.Metadata()
	if err != nil {
		return 0
	}
	s.mu.Lock()
	old := md.Sequence.Stream <= s.applied
	s.mu.Unlock()
	if old {
		return 0
	}
	u := &syncpb.ReceiptUpdate{}
	if err := proto.Unmarshal(m.Data(), u); err != nil || !validDelta(u) {
		s.log.Warn("skipping a malformed receipt delta", "seq", md.Sequence.Stream, "err", err)
	} else {
		*batch = append(*batch, u)
	}
	return md.Sequence.Stream
}

func validDelta(u *syncpb.ReceiptUpdate) bool {
	return syncproto.ValidID(u.ConvId) && syncproto.ValidID(u.UserId) && u.DeviceId != "" && len(u.DeviceId) <= crdt.MaxDeviceID &&
		(u.Type == syncpb.ReceiptType_RECEIPT_TYPE_DELIVERED || u.Type == syncpb.ReceiptType_RECEIPT_TYPE_READ)
}

func (s *Service) apply(batch []*syncpb.ReceiptUpdate, last uint64) error {
	changes, err := s.st.merge(batch, last)
	if err != nil {
		return fmt.Errorf("receipts: merge: %w", err)
	}
	s.merged.Add(uint64(len(batch)))
	s.mu.Lock()
	s.applied = last
	for ch, want := range s.waiters {
		if want <= last {
			close(ch)
			delete(s.waiters, ch)
		}
	}
	s.mu.Unlock()
	if len(changes) > 0 && s.cfg.OnChange != nil {
		s.cfg.OnChange(changes)
	}
	return nil
}

// Publish puts a delta on the stream and returns its stream sequence once
// JetStream has stored it (on a quorum of its replicas).
func (s *Service) Publish(ctx context.Context, u *syncpb.ReceiptUpdate) (uint64, error) {
	if !s.ready.Load() {
		return 0, ErrNotReady
	}
	b, err := proto.Marshal(u)
	if err != nil {
		return 0, err
	}
	// A retried publish of the same delta is stored once.
	id := u.ConvId + "/" + u.UserId + "/" + u.DeviceId + "/" + strconv.Itoa(int(u.Type)) + "/" + strconv.FormatUint(u.Seq, 10) + "/" + strconv.FormatInt(u.AtUnixMs, 10)
	ack, err := s.js.Publish(ctx, s.subject(u.ConvId), b, jetstream.WithMsgID(id))
	if err != nil {
		return 0, &syncproto.Error{Code: syncpb.Code_CODE_UNAVAILABLE, Message: "receipt not stored, retry", RetryAfter: 100 * time.Millisecond}
	}
	return ack.Sequence, nil
}

// Barrier returns once this node has merged every delta the stream held
// when it was called, so state read afterwards includes every position
// acknowledged before (acknowledgements never go back).
func (s *Service) Barrier(ctx context.Context) error {
	if !s.ready.Load() {
		return ErrNotReady
	}
	st, err := s.js.Stream(ctx, s.stream)
	if err != nil {
		return &syncproto.Error{Code: syncpb.Code_CODE_UNAVAILABLE, Message: "receipt stream unreachable, retry", RetryAfter: 100 * time.Millisecond}
	}
	return s.WaitApplied(ctx, st.CachedInfo().State.LastSeq)
}

// WaitApplied returns once this node has merged the stream up to seq, or
// UNAVAILABLE when ctx ends first.
func (s *Service) WaitApplied(ctx context.Context, seq uint64) error {
	s.mu.Lock()
	if s.applied >= seq {
		s.mu.Unlock()
		return nil
	}
	ch := make(chan struct{})
	s.waiters[ch] = seq
	s.mu.Unlock()
	select {
	case <-ch:
		return nil
	case <-ctx.Done():
		s.mu.Lock()
		delete(s.waiters, ch)
		s.mu.Unlock()
		return &syncproto.Error{Code: syncpb.Code_CODE_UNAVAILABLE, Message: "receipts are catching up, retry", RetryAfter: 100 * time.Millisecond}
	}
}

// Applied is the last stream sequence merged here.
func (s *Service) Applied() uint64 {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.applied
}

// Merged counts deltas merged since start.
func (s *Service) Merged() uint64 { return s.merged.Load() }

// Device is a device's marks in conv.
func (s *Service) Device(conv, user, device string) (crdt.Marks, error) {
	d, err := s.st.devices(conv, user)
	return d[device], err
}

// User is a user's user-level marks in conv.
func (s *Service) User(conv, user string) (crdt.Marks, error) {
	d, err := s.st.devices(conv, user)
	return d.User(), err
}

// Devices is a copy of a user's device map in conv.
func (s *Service) Devices(conv, user string) (crdt.Devices, error) { return s.st.devices(conv, user) }

// Scan calls fn with the user-level marks of every user with any in conv,
// until fn returns false.
func (s *Service) Scan(conv string, fn func(user string, m crdt.Marks) bool) error {
	return s.st.scan(conv, func(user string, d crdt.Devices) bool { return fn(user, d.User()) })
}
