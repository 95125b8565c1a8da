// Package kvfsm is the machinery the core's replicated state machines share:
// applying raft log entries to one group's keys in a shared Badger DB with
// the applied index in the same transaction, replay skipping, and snapshots.
//
// Group G owns every key under "f/<G>/". Two of them are kvfsm's own:
// "f/<G>/applied" (the last applied raft index, big-endian) and
// "f/<G>/restoring" (present while a Restore is under way). A state machine
// names its keys relative to the prefix and must not use those two names.
package kvfsm

import (
	"encoding/binary"
	"errors"
	"fmt"
	"log/slog"
	"strings"
	"sync"

	"github.com/dgraph-io/badger/v4"
	"github.com/hashicorp/raft"
	"google.golang.org/protobuf/proto"

	"github.com/parley-chat/parley/core/internal/cmdpb"
	"github.com/parley-chat/parley/syncproto"
	"github.com/parley-chat/parley/syncproto/syncpb"
)

// Reserved keys, relative to the group's prefix.
const (
	keyApplied   = "applied"
	keyRestoring = "restoring"
)

var (
	// ErrRestoreIncomplete is returned by AppliedIndex while a Restore has
	// started and not finished (also after a crash in the middle of one):
	// the group's state is unusable until a snapshot is restored again.
	ErrRestoreIncomplete = errors.New("kvfsm: restore incomplete")
	// ErrBadSnapshot is returned (wrapped) by Restore for a snapshot that
	// fails to decode or verify.
	ErrBadSnapshot = errors.New("kvfsm: bad snapshot")
	// ErrFailed is returned (wrapped, with the cause) by AppliedIndex, Err
	// and Snapshot after a storage failure while applying, or an apply over
	// an unfinished restore: the machine rejects every later entry until a
	// Restore succeeds or a restart replays them from the log.
	ErrFailed = errors.New("kvfsm: state machine failed")
)

// ApplyFunc applies one decoded command at index. It reads and writes
// through tx. A deterministic rejection is a response with Error set; its
// writes, if any, are discarded. A returned error is a storage failure.
// It must be a pure function of the state read through tx and of cmd.
type ApplyFunc func(tx *Tx, index uint64, cmd *cmdpb.Command) (*syncpb.CoreResponse, error)

// Config of a Machine.
type Config struct {
	// Group is the raft group's name ("dir", "s0"...); it must not contain '/'.
	Group string
	Apply ApplyFunc
	// Sync makes the DB's writes so far durable; Snapshot calls it before
	// opening its view, Restore after finishing. Nil skips it.
	Sync   func() error
	Logger *slog.Logger
}

// Validate reports the first bad field.
func (c *Config) Validate() error {
	switch {
	case c.Group == "":
		return errors.New("kvfsm: Config.Group is required")
	case strings.ContainsRune(c.Group, '/'):
		return fmt.Errorf("kvfsm: Config.Group %q contains '/'", c.Group)
	case c.Apply == nil:
		return errors.New("kvfsm: Config.Apply is required")
	}
	return nil
}

// Machine applies one group's log to its keys. Apply, ApplyBatch, Snapshot
// and Restore are called by raft from one goroutine; View, AppliedIndex and
// Err may be called concurrently with them.
type Machine struct {
	db     *badger.DB
	group  string
	prefix []byte
	apply  ApplyFunc
	sync   func() error
	log    *slog.Logger
	// Badger's transaction limits, read once (tests may raise them to
	// check the fallback when Badger counts more than estimated).
	maxCount, maxSize int64

	mu     sync.Mutex
	failed error // sticky storage failure, wraps ErrFailed
}

// New returns a Machine for cfg.Group's keys in db, which must be opened in
// normal (not managed) mode. Other groups may share db.
func New(db *badger.DB, cfg Config) (*Machine, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	if db == nil {
		return nil, errors.New("kvfsm: nil DB")
	}
	log := cfg.Logger
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	return &Machine{
		db:     db,
		group:  cfg.Group,
		prefix: []byte("f/" + cfg.Group + "/"),
		apply:  cfg.Apply,
		sync:   cfg.Sync,
		log:    log.With("group", cfg.Group),

		maxCount: db.MaxBatchCount(),
		maxSize:  db.MaxBatchSize(),
	}, nil
}

// Group is the group's name.
func (m *Machine) Group() string { return m.group }

// Err returns the sticky storage failure (wrapping ErrFailed), or nil.
func (m *Machine) Err() error {
	m.mu.Lock()
	defer m.mu.Unlock()
	return m.failed
}

func (m *Machine) fail(err error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.failed == nil {
		m.failed = fmt.Errorf("%w: group %s: %w", ErrFailed, m.group, err)
		m.log.Error("state machine failed; rejecting entries until restart", "err", err)
	}
}

// AppliedIndex returns the last raft index whose effects are in the DB. It
// fails with ErrRestoreIncomplete while a restore is unfinished, and with
// the sticky failure after a storage error.
func (m *Machine) AppliedIndex() (uint64, error) {
	if err := m.Err(); err != nil {
		return 0, err
	}
	var idx uint64
	err := m.View(func(v *View) error {
		if _, ok, err := v.Get([]byte(keyRestoring)); err != nil {
			return err
		} else if ok {
			return ErrRestoreIncomplete
		}
		var err error
		idx, err = readApplied(v)
		return err
	})
	if err != nil {
		return 0, err
	}
	return idx, nil
}

func readApplied(g Getter) (uint64, error) {
	b, ok, err := g.Get([]byte(keyApplied))
	if err != nil || !ok {
		return 0, err
	}
	if len(b) != 8 {
		return 0, fmt.Errorf("kvfsm: applied index has %d bytes", len(b))
	}
	return binary.BigEndian.Uint64(b), nil
}

// Apply applies one entry; see ApplyBatch.
func (m *Machine) Apply(l *raft.Log) any {
	return m.ApplyBatch([]*raft.Log{l})[0]
}

// entry is one applied log entry's writes, in order, with unique keys.
type entry struct {
	pos   int // position in the batch
	index uint64
	ops   []op
}

// ApplyBatch applies logs in order and returns one result per log: a
// *syncpb.CoreResponse for commands, nil for other log types. Entries at
// or below the applied index were applied before and are skipped. The
// effects and the new applied index are committed together, in as few
// Badger transactions as fit (a split falls between entries).
func (m *Machine) ApplyBatch(logs []*raft.Log) []any {
	out := make([]any, len(logs))
	if err := m.Err(); err != nil {
		fillUnavailable(out, 0)
		return out
	}
	rtx := m.db.NewTransaction(false)
	defer rtx.Discard()
	tx := newTx(View{txn: rtx, prefix: m.prefix})
	applied, err := readApplied(tx)
	if err == nil {
		// Entries must not apply over a half-restored state.
		if _, restoring, gerr := tx.Get([]byte(keyRestoring)); gerr != nil {
			err = gerr
		} else if restoring {
			err = ErrRestoreIncomplete
		}
	}
	if err != nil {
		m.fail(err)
		fillUnavailable(out, 0)
		return out
	}
	var entries []entry
	for i, l := range logs {
		if l.Index <= applied {
			if l.Type == raft.LogCommand {
				out[i] = errorResponse(syncpb.Code_CODE_UNAVAILABLE, "entry applied before a restart")
			}
			continue
		}
		e := entry{pos: i, index: l.Index}
		if l.Type == raft.LogCommand {
			resp, err := m.applyOne(tx, l)
			if err != nil {
				m.fail(fmt.Errorf("apply index %d: %w", l.Index, err))
				from := i
				if len(entries) > 0 {
					from = entries[0].pos
				}
				fillUnavailable(out, from)
				return out
			}
			switch {
			case resp.GetError() != nil:
				tx.drop()
			case !m.fits(tx.ops):
				m.log.Error("command too large to apply; rejected", "index", l.Index, "writes", len(tx.ops))
				tx.drop()
				resp = errorResponse(syncpb.Code_CODE_TOO_LARGE, "command too large to apply")
			default:
				e.ops = tx.keep()
			}
			out[i] = resp
		}
		entries = append(entries, e)
	}
	if len(entries) == 0 {
		return out
	}
	if n, err := m.commit(entries); err != nil {
		m.fail(err)
		// Entries before the failed transaction are applied; the rest are not.
		fillUnavailable(out, entries[n].pos)
	}
	return out
}

// applyOne decodes and applies one command into tx's entry writes.
func (m *Machine) applyOne(tx *Tx, l *raft.Log) (*syncpb.CoreResponse, error) {
	cmd := &cmdpb.Command{}
	if err := proto.Unmarshal(l.Data, cmd); err != nil {
		m.log.Warn("malformed command", "index", l.Index, "err", err)
		return errorResponse(syncpb.Code_CODE_MALFORMED, "malformed command"), nil
	}
	resp, err := m.apply(tx, l.Index, cmd)
	if err != nil {
		return nil, err
	}
	if resp == nil {
		resp = &syncpb.CoreResponse{}
	}
	return resp, nil
}

func errorResponse(code syncpb.Code, msg string) *syncpb.CoreResponse {
	return &syncpb.CoreResponse{Error: syncproto.Errorf(code, "%s", msg).Proto()}
}

func fillUnavailable(out []any, from int) {
	for i := from; i < len(out); i++ {
		out[i] = errorResponse(syncpb.Code_CODE_UNAVAILABLE, "state machine unavailable, retry")
	}
}

// cost is an upper bound of what Badger counts for one write (see
// badger's Txn.checkSize: key + value + 2 meta bytes + 10 for the version).
func (m *Machine) cost(o op) int64 {
	return int64(len(m.prefix)+len(o.key)+len(o.val)) + 12
}

// appliedCost is the cost of the applied-index write in every transaction.
func (m *Machine) appliedCost() int64 {
	return int64(len(m.prefix)+len(keyApplied)+8) + 12
}

// fits reports whether one entry's writes fit in a Badger transaction.
func (m *Machine) fits(ops []op) bool {
	size := m.appliedCost()
	for _, o := range ops {
		size += m.cost(o)
	}
	return int64(len(ops))+2 < m.maxCount && size < m.maxSize
}

// commit writes entries and the applied index, splitting between entries
// when one transaction cannot hold them all. It returns how many entries
// were committed before an error.
func (m *Machine) commit(entries []entry) (int, error) {
	done := 0
	for done < len(entries) {
		n, err := m.commitSome(entries[done:])
		if err != nil {
			return done, err
		}
		done += n
	}
	return done, nil
}

func (m *Machine) commitSome(entries []entry) (int, error) {
	n := m.fitting(entries)
	for {
		err := m.commitEntries(entries[:n])
		if errors.Is(err, badger.ErrTxnTooBig) && n > 1 {
			n /= 2 // Badger counted more than the estimate: commit fewer
			continue
		}
		if err != nil {
			return 0, err
		}
		return n, nil
	}
}

// fitting returns how many entries (at least one) fit in one transaction
// by the same estimate Badger makes.
func (m *Machine) fitting(entries []entry) int {
	count, size := int64(2), m.appliedCost()
	for n, e := range entries {
		c, s := int64(len(e.ops)), int64(0)
		for _, o := range e.ops {
			s += m.cost(o)
		}
		if n > 0 && (count+c >= m.maxCount || size+s >= m.maxSize) {
			return n
		}
		count, size = count+c, size+s
	}
	return len(entries)
}

// commitEntries writes entries and the applied index in one transaction.
func (m *Machine) commitEntries(entries []entry) error {
	txn := m.db.NewTransaction(true)
	defer txn.Discard()
	for _, e := range entries {
		for _, o := range e.ops {
			k := m.key(o.key)
			var err error
			if o.del {
				err = txn.Delete(k)
			} else {
				err = txn.Set(k, o.val)
			}
			if err != nil {
				return fmt.Errorf("write index %d: %w", e.index, err)
			}
		}
	}
	last := entries[len(entries)-1].index
	if err := txn.Set(m.key(keyApplied), binary.BigEndian.AppendUint64(nil, last)); err != nil {
		return fmt.Errorf("write applied index: %w", err)
	}
	if err := txn.Commit(); err != nil {
		return fmt.Errorf("commit through index %d: %w", last, err)
	}
	return nil
}

func (m *Machine) key(rel string) []byte {
	k := make([]byte, 0, len(m.prefix)+len(rel))
	return append(append(k, m.prefix...), rel...)
}

// View runs fn with a consistent read-only view of the group's keys.
func (m *Machine) View(fn func(v *View) error) error {
	return m.db.View(func(txn *badger.Txn) error {
		return fn(&View{txn: txn, prefix: m.prefix})
	})
}
