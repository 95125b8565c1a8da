// Package indexer keeps a core node's search index up to date with what
// the node's shards commit.
//
// Every core node holds every shard's state (each node is a voter of
// every group), so each node indexes its own copy of the messages into
// its own engine and answers searches from it: no index traffic crosses
// the network and a node's index never depends on who leads (see
// docs/architecture.md, Search).
//
// Shards report commits through Notify, which only marks conversations
// dirty: it never blocks the apply goroutine and is not on the send
// path. Run reads each dirty conversation's messages after its indexed
// position from the node's local shard state, indexes them in batches
// of Config.BatchSize, and only then stores the new positions (in the
// node's Badger DB under "sx/", a prefix no state machine uses). A crash
// between the two replays the batch on start; the engine replaces a doc
// by (conversation, seq), so the replay is harmless. On start (and after
// a shard restored a snapshot, CatchUp) every conversation whose last
// seq is past its position is dirty.
package indexer

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"log/slog"
	"mime"
	"strings"
	"sync"
	"sync/atomic"
	"time"
	"unicode/utf8"

	"github.com/dgraph-io/badger/v4"

	"github.com/parley-chat/parley/core/search"
	"github.com/parley-chat/parley/core/shard"
	"github.com/parley-chat/parley/syncproto/syncpb"
)

// Shard is what the indexer reads of one shard's local state
// (*shard.FSM). Both calls are safe for concurrent use with the shard's
// apply.
type Shard interface {
	// Conversations lists every conversation with its last seq.
	Conversations() ([]shard.ConvSeq, error)
	// MessagesAfter returns conv's workspace and up to limit messages
	// with seq > after, in seq order.
	MessagesAfter(conv string, after uint64, limit int) (workspace string, msgs []*syncpb.Message, err error)
}

var _ Shard = (*shard.FSM)(nil)

// Config configures an Indexer.
type Config struct {
	Engine search.Engine
	// DB keeps the positions, under the key prefix "sx/".
	DB *badger.DB
	// Shards are the node's shards, by index (s0, s1, ...).
	Shards []Shard
	// SearchOff says whether a workspace turned search off (its messages
	// are not indexed); nil: never.
	SearchOff func(workspace string) (bool, error)
	// BatchSize is the most messages indexed in one engine call; 0: 2000.
	BatchSize int
	// RetryWait is the wait after a failed pass (default 1 s).
	RetryWait time.Duration
	// Interval is the least time between two passes (default 500 ms):
	// commits that arrive meanwhile are indexed together, so the engine
	// gets a few large batches rather than one per commit (each batch is a
	// segment the index must persist and later merge).
	Interval time.Duration
	Now      func() time.Time
	Logger   *slog.Logger
}

// DefaultInterval is Config.Interval's default.
const DefaultInterval = 500 * time.Millisecond

// Validate names the first bad field.
func (c *Config) Validate() error {
	switch {
	case c.Engine == nil:
		return errors.New("indexer: Config.Engine is required")
	case c.DB == nil:
		return errors.New("indexer: Config.DB is required")
	case c.BatchSize < 0 || c.BatchSize > 10000:
		return fmt.Errorf("indexer: Config.BatchSize %d out of 0..10000", c.BatchSize)
	case c.RetryWait < 0 || c.Interval < 0:
		return errors.New("indexer: Config.RetryWait and Config.Interval must not be negative")
	}
	return nil
}

// dirty is what the indexer knows of a conversation past its position.
type dirty struct {
	shard   int
	lastSeq uint64 // 0: unknown, read it
	oldest  int64  // ts (Unix ms) of the oldest message known unindexed; 0 unknown
}

// Indexer indexes committed messages. Notify, CatchUp and the stats are
// safe for concurrent use; Run runs once.
type Indexer struct {
	cfg  Config
	log  *slog.Logger
	wake chan struct{}

	mu    sync.Mutex
	dirty map[string]dirty
	work  map[string]dirty  // taken by the pass under way (entries leave as done)
	pos   map[string]uint64 // indexed positions (as stored)
	busy  bool              // a pass is under way
	ready bool              // Run caught up with every shard

	indexed atomic.Uint64
}

// New returns an indexer over cfg with the stored positions; Run first
// marks every conversation past its position dirty (CatchUp of all), so
// New may come before the shards can be read.
func New(cfg Config) (*Indexer, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	if cfg.BatchSize == 0 {
		cfg.BatchSize = 2000
	}
	if cfg.Interval == 0 {
		cfg.Interval = DefaultInterval
	}
	if cfg.RetryWait == 0 {
		cfg.RetryWait = time.Second
	}
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.DiscardHandler)
	}
	ix := &Indexer{cfg: cfg, log: cfg.Logger, wake: make(chan struct{}, 1), dirty: map[string]dirty{}, pos: map[string]uint64{}}
	if err := ix.loadPositions(); err != nil {
		return nil, err
	}
	return ix, nil
}

// Keys in the node's DB: "sx/p/<conv>" the indexed position (be64 seq).
var posPrefix = []byte("sx/p/")

func posKey(conv string) []byte { return append(append([]byte{}, posPrefix...), conv...) }

func (ix *Indexer) loadPositions() error {
	return ix.cfg.DB.View(func(txn *badger.Txn) error {
		it := txn.NewIterator(badger.IteratorOptions{Prefix: posPrefix, PrefetchValues: true})
		defer it.Close()
		for it.Rewind(); it.Valid(); it.Next() {
			item := it.Item()
			err := item.Value(func(v []byte) error {
				if len(v) != 8 {
					return fmt.Errorf("indexer: position of %s: %d bytes", item.Key()[len(posPrefix):], len(v))
				}
				ix.pos[string(item.Key()[len(posPrefix):])] = binary.BigEndian.Uint64(v)
				return nil
			})
			if err != nil {
				return err
			}
		}
		return nil
	})
}

// ResetPositions forgets every stored position (a rebuild: the next
// indexer of the DB indexes everything again). Not while one runs.
func ResetPositions(db *badger.DB) error {
	return db.DropPrefix(posPrefix)
}

// Notify marks the conversations of shard i's commits dirty. It never
// blocks (Config.OnCommit of the shard).
func (ix *Indexer) Notify(i int, cs []shard.Committed) {
	ix.mu.Lock()
	for _, c := range cs {
		if len(c.Messages) == 0 {
			continue
		}
		d, ok := ix.dirty[c.ConvID]
		if !ok {
			d = dirty{shard: i, oldest: c.Messages[0].TsUnixMs}
		}
		d.lastSeq = max(d.lastSeq, c.Messages[len(c.Messages)-1].Seq)
		ix.dirty[c.ConvID] = d
	}
	ix.mu.Unlock()
	ix.kick()
}

// CatchUp marks every conversation of shard i whose last seq is past its
// indexed position dirty: on start and after the shard restored a
// snapshot.
func (ix *Indexer) CatchUp(i int) error {
	convs, err := ix.cfg.Shards[i].Conversations()
	if err != nil {
		return fmt.Errorf("indexer: catch up shard %d: %w", i, err)
	}
	ix.mu.Lock()
	for _, c := range convs {
		if c.LastSeq > ix.pos[c.ConvID] {
			d := ix.dirty[c.ConvID]
			d.shard, d.lastSeq = i, max(d.lastSeq, c.LastSeq)
			ix.dirty[c.ConvID] = d
		}
	}
	ix.mu.Unlock()
	ix.kick()
	return nil
}

func (ix *Indexer) kick() {
	select {
	case ix.wake <- struct{}{}:
	default:
	}
}

// Run indexes until ctx ends; it returns ctx's error. A pass in progress
// finishes its current batch first, so closing between batches loses no
// position that was stored.
func (ix *Indexer) Run(ctx context.Context) error {
	for i := range ix.cfg.Shards {
		for {
			err := ix.CatchUp(i)
			if err == nil {
				break
			}
			ix.log.Warn("search catch-up failed; retrying", "err", err)
			select {
			case <-ctx.Done():
				return ctx.Err()
			case <-time.After(ix.cfg.RetryWait):
			}
		}
	}
	ix.mu.Lock()
	ix.ready = true
	ix.mu.Unlock()
	for {
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-ix.wake:
		}
		wait := ix.cfg.Interval
		if err := ix.pass(ctx); err != nil {
			if ctx.Err() != nil {
				return ctx.Err()
			}
			ix.log.Warn("search indexing failed; retrying", "err", err)
			wait = ix.cfg.RetryWait
			ix.kick()
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(wait):
		}
	}
}

// batch is one engine call's worth of docs and the positions they reach.
type batch struct {
	docs []search.Doc
	pos  map[string]uint64
}

// pass indexes what is dirty now; conversations with more than fit in
// the batch stay dirty for the next round of the loop.
func (ix *Indexer) pass(ctx context.Context) error {
	for {
		ix.mu.Lock()
		work := ix.dirty
		ix.dirty = map[string]dirty{}
		ix.work = work
		ix.busy = len(work) > 0
		ix.mu.Unlock()
		if len(work) == 0 {
			return nil
		}
		err := ix.indexAll(ctx, work)
		ix.mu.Lock()
		// What was not done goes back, merged with what arrived since.
		for conv, d := range work {
			if cur, ok := ix.dirty[conv]; ok {
				d.lastSeq = max(d.lastSeq, cur.lastSeq)
			}
			ix.dirty[conv] = d
		}
		ix.work = nil
		ix.busy = false
		ix.mu.Unlock()
		if err != nil {
			return err
		}
	}
}

// indexAll indexes work's conversations, deleting each from work (under
// mu: Stats reads it) once it is indexed up to what work knew.
func (ix *Indexer) indexAll(ctx context.Context, work map[string]dirty) error {
	b := batch{pos: map[string]uint64{}}
	for conv, d := range work {
		for {
			if err := ctx.Err(); err != nil {
				return err
			}
			ix.mu.Lock()
			from := ix.pos[conv]
			ix.mu.Unlock()
			if p, ok := b.pos[conv]; ok {
				from = p
			}
			room := ix.cfg.BatchSize - len(b.docs)
			ws, msgs, err := ix.cfg.Shards[d.shard].MessagesAfter(conv, from, room)
			if err != nil {
				return fmt.Errorf("indexer: read %s: %w", conv, err)
			}
			if len(msgs) > 0 {
				off := false
				if ix.cfg.SearchOff != nil {
					if off, err = ix.cfg.SearchOff(ws); err != nil {
						return fmt.Errorf("indexer: workspace %s: %w", ws, err)
					}
				}
				for _, m := range msgs {
					if doc, ok := docOf(ws, m); ok && !off {
						b.docs = append(b.docs, doc)
					}
				}
				b.pos[conv] = msgs[len(msgs)-1].Seq
			}
			if len(msgs) < room {
				break // conv is done (as far as the store holds)
			}
			if err := ix.flush(ctx, &b); err != nil {
				return err
			}
		}
		// Done: a later Notify re-adds it if more came.
		ix.mu.Lock()
		delete(work, conv)
		ix.mu.Unlock()
	}
	return ix.flush(ctx, &b)
}

// flush indexes b's docs, then stores its positions.
func (ix *Indexer) flush(ctx context.Context, b *batch) error {
	if len(b.pos) == 0 {
		return nil
	}
	if len(b.docs) > 0 {
		if err := ix.cfg.Engine.Index(ctx, b.docs); err != nil {
			return fmt.Errorf("indexer: index %d docs: %w", len(b.docs), err)
		}
	}
	wb := ix.cfg.DB.NewWriteBatch()
	defer wb.Cancel()
	for conv, seq := range b.pos {
		if err := wb.Set(posKey(conv), binary.BigEndian.AppendUint64(nil, seq)); err != nil {
			return fmt.Errorf("indexer: store positions: %w", err)
		}
	}
	if err := wb.Flush(); err != nil {
		return fmt.Errorf("indexer: store positions: %w", err)
	}
	ix.mu.Lock()
	for conv, seq := range b.pos {
		ix.pos[conv] = max(ix.pos[conv], seq)
	}
	ix.mu.Unlock()
	ix.indexed.Add(uint64(len(b.docs)))
	b.docs, b.pos = b.docs[:0], map[string]uint64{}
	return nil
}

// docOf is the doc of message m of workspace ws, and whether it is one
// to index at all.
func docOf(ws string, m *syncpb.Message) (search.Doc, bool) {
	if !indexable(m) {
		return search.Doc{}, false
	}
	return search.Doc{
		Workspace: ws, ConvID: m.ConvId, Seq: m.Seq, MsgID: m.MsgId, Sender: m.SenderUserId,
		TS: m.TsUnixMs, Text: search.TrimText(text(m)), HasAttachment: len(m.Attachments) > 0,
	}, true
}

// indexable says whether the server may index m: system messages are
// not searched. This is also where messages the server cannot read will
// be skipped: when messages gain an end-to-end encrypted kind or flag,
// return false for them here (their body is ciphertext).
func indexable(m *syncpb.Message) bool {
	return m.Kind != syncpb.MessageKind_MESSAGE_KIND_SYSTEM
}

// text is m's searchable text: its body when the content type is text/*
// (or none), else the body when it is UTF-8 text; "" otherwise.
func text(m *syncpb.Message) string {
	if mt, _, err := mime.ParseMediaType(m.ContentType); m.ContentType == "" || err == nil && strings.HasPrefix(mt, "text/") {
		return strings.ToValidUTF8(string(m.Body), "\uFFFD")
	}
	if utf8.Valid(m.Body) {
		return string(m.Body)
	}
	return ""
}

// Stats are the indexer's progress.
type Stats struct {
	// LagMessages are the messages known committed and not yet indexed
	// (a conversation in both the pass under way and newly dirty counts
	// twice, an estimate); LagSeconds is the age of the oldest of them
	// (0 when none or unknown, as after a catch-up).
	LagMessages uint64
	LagSeconds  float64
	// Indexed counts the docs indexed since New.
	Indexed uint64
}

// Stats reports the indexer's progress.
func (ix *Indexer) Stats() Stats {
	now := ix.cfg.Now().UnixMilli()
	ix.mu.Lock()
	defer ix.mu.Unlock()
	st := Stats{Indexed: ix.indexed.Load()}
	oldest := int64(0)
	for _, m := range []map[string]dirty{ix.dirty, ix.work} {
		for conv, d := range m {
			if p := ix.pos[conv]; d.lastSeq > p {
				st.LagMessages += d.lastSeq - p
			}
			if d.oldest > 0 && (oldest == 0 || d.oldest < oldest) {
				oldest = d.oldest
			}
		}
	}
	if oldest > 0 && now > oldest {
		st.LagSeconds = float64(now-oldest) / 1000
	}
	return st
}

// Idle says whether Run caught up with the shards and nothing is
// waiting to be indexed.
func (ix *Indexer) Idle() bool {
	ix.mu.Lock()
	defer ix.mu.Unlock()
	return ix.ready && len(ix.dirty) == 0 && !ix.busy
}
