// Package raftstore keeps the Raft logs and stable state of a node's many
// raft groups. WAL (wal.go) is what a node uses: one write-ahead log of
// preallocated segments for all groups, made durable by shared
// fdatasyncs. Store (this file) keeps them in a shared Badger DB instead,
// as nodes did before the WAL; MigrateBadger moves such data into a WAL.
// Syncer coalesces the fsyncs of a Badger DB.
//
// In the Badger Store, group G owns every key under "r/<G>/": log entries
// at "r/<G>/l/<8-byte big-endian index>" and stable values at
// "r/<G>/s/<key>". Writes go through Badger with SyncWrites off; every
// mutating Store method then waits on the node's one Syncer, so
// concurrent groups share fsyncs.
package raftstore

import (
	"encoding/binary"
	"errors"
	"fmt"
	"sync"

	"github.com/dgraph-io/badger/v4"
	"github.com/hashicorp/raft"
)

var (
	_ raft.LogStore    = (*Store)(nil)
	_ raft.StableStore = (*Store)(nil)
)

var (
	// ErrBadGroup is returned by New for a group name outside [a-z0-9_-]{1,32}.
	ErrBadGroup = errors.New("raftstore: bad group name")
	// ErrKeyNotFound is returned by Get for a key never Set. Its text is
	// exactly "not found", not "raftstore: ...": raft v1.8.0 compares
	// err.Error() == "not found" (raft.go requestVote, api.go NewRaft).
	ErrKeyNotFound = errors.New("not found")
)

// MaxGroupLen bounds group names.
const MaxGroupLen = 32

// ValidGroup reports whether name is a group name: [a-z0-9_-]{1,32}.
func ValidGroup(name string) bool {
	if len(name) == 0 || len(name) > MaxGroupLen {
		return false
	}
	for i := 0; i < len(name); i++ {
		c := name[i]
		if !(c >= 'a' && c <= 'z' || c >= '0' && c <= '9' || c == '_' || c == '-') {
			return false
		}
	}
	return true
}

// Store is one group's raft.LogStore and raft.StableStore. Every method is
// safe for concurrent use. StoreLog(s), DeleteRange, Set and SetUint64
// return after their writes are fsync'd. FirstIndex and LastIndex are
// served from memory, so a group must have one Store per DB at a time.
type Store struct {
	db     *badger.DB
	syncer *Syncer
	group  string
	logPfx []byte // r/<G>/l/
	stbPfx []byte // r/<G>/s/

	wmu sync.Mutex // serialises log mutations so the bounds stay exact

	mu          sync.RWMutex
	first, last uint64 // 0, 0 when empty
}

// New returns the store of group in db, reading its log bounds. sync is the
// node's shared Syncer.
func New(db *badger.DB, sync *Syncer, group string) (*Store, error) {
	if !ValidGroup(group) {
		return nil, fmt.Errorf("%w: %q", ErrBadGroup, group)
	}
	if db == nil || sync == nil {
		return nil, errors.New("raftstore: New needs a DB and a Syncer")
	}
	s := &Store{
		db:     db,
		syncer: sync,
		group:  group,
		logPfx: []byte("r/" + group + "/l/"),
		stbPfx: []byte("r/" + group + "/s/"),
	}
	err := db.View(func(txn *badger.Txn) error {
		var err error
		if s.first, err = s.seek(txn, 0, false); err != nil {
			return err
		}
		s.last, err = s.seek(txn, ^uint64(0), true)
		return err
	})
	if err != nil {
		return nil, fmt.Errorf("raftstore: open group %s: %w", group, err)
	}
	return s, nil
}

// Group is the store's group name.
func (s *Store) Group() string { return s.group }

func (s *Store) logKey(index uint64) []byte {
	k := make([]byte, len(s.logPfx)+8)
	copy(k, s.logPfx)
	binary.BigEndian.PutUint64(k[len(s.logPfx):], index)
	return k
}

func (s *Store) stableKey(key []byte) []byte {
	k := make([]byte, 0, len(s.stbPfx)+len(key))
	return append(append(k, s.stbPfx...), key...)
}

// seek returns the index of the first log key at or after from (or at or
// before it, when reverse), or 0 if there is none.
func (s *Store) seek(txn *badger.Txn, from uint64, reverse bool) (uint64, error) {
	it := txn.NewIterator(badger.IteratorOptions{Prefix: s.logPfx, Reverse: reverse})
	defer it.Close()
	it.Seek(s.logKey(from))
	if !it.ValidForPrefix(s.logPfx) {
		return 0, nil
	}
	k := it.Item().Key()
	if len(k) != len(s.logPfx)+8 {
		return 0, fmt.Errorf("%w: log key %q", ErrCorrupt, k)
	}
	return s.index(k), nil
}

// FirstIndex returns the lowest stored index, 0 when the log is empty.
func (s *Store) FirstIndex() (uint64, error) {
	s.mu.RLock()
	defer s.mu.RUnlock()
	return s.first, nil
}

// LastIndex returns the highest stored index, 0 when the log is empty.
func (s *Store) LastIndex() (uint64, error) {
	s.mu.RLock()
	defer s.mu.RUnlock()
	return s.last, nil
}

// GetLog reads the entry at index into l. It returns raft.ErrLogNotFound
// when there is none and ErrCorrupt (wrapped) when it does not decode.
func (s *Store) GetLog(index uint64, l *raft.Log) error {
	var v []byte
	err := s.db.View(func(txn *badger.Txn) error {
		item, err := txn.Get(s.logKey(index))
		if err != nil {
			return err
		}
		v, err = item.ValueCopy(nil)
		return err
	})
	if errors.Is(err, badger.ErrKeyNotFound) {
		return raft.ErrLogNotFound
	}
	if err != nil {
		return fmt.Errorf("raftstore: %s get log %d: %w", s.group, index, err)
	}
	if err := decodeLog(v, l); err != nil {
		return fmt.Errorf("raftstore: %s get log %d: %w", s.group, index, err)
	}
	if l.Index != index {
		return fmt.Errorf("raftstore: %s get log %d: %w: entry says index %d", s.group, index, ErrCorrupt, l.Index)
	}
	return nil
}

// StoreLog stores one entry; see StoreLogs.
func (s *Store) StoreLog(l *raft.Log) error {
	return s.StoreLogs([]*raft.Log{l})
}

// StoreLogs writes the entries in one Badger transaction (several, in index
// order, when they exceed Badger's transaction size) and returns once they
// are fsync'd. Entries overwrite any at the same index.
func (s *Store) StoreLogs(logs []*raft.Log) error {
	if len(logs) == 0 {
		return nil
	}
	if err := s.storeLogs(logs); err != nil {
		return fmt.Errorf("raftstore: %s store logs: %w", s.group, err)
	}
	return s.syncer.Sync()
}

func (s *Store) storeLogs(logs []*raft.Log) error {
	s.wmu.Lock()
	defer s.wmu.Unlock()
	txn := s.db.NewTransaction(true)
	defer func() { txn.Discard() }()
	var lo, hi uint64 // bounds written in txn
	n := 0            // entries in txn
	var buf []byte
	commit := func() error {
		if err := txn.Commit(); err != nil {
			return err
		}
		s.widen(lo, hi, n)
		lo, hi, n = 0, 0, 0
		return nil
	}
	for _, l := range logs {
		size := encodedLogSize(l)
		if cap(buf)-len(buf) < size {
			buf = make([]byte, 0, max(size, 4096))
		}
		start := len(buf)
		buf = appendLog(buf, l)
		e := badger.NewEntry(s.logKey(l.Index), buf[start:len(buf):len(buf)])
		err := txn.SetEntry(e)
		if errors.Is(err, badger.ErrTxnTooBig) && n > 0 {
			if err := commit(); err != nil {
				return err
			}
			txn = s.db.NewTransaction(true)
			err = txn.SetEntry(e)
		}
		if err != nil {
			return fmt.Errorf("index %d: %w", l.Index, err)
		}
		if n == 0 || l.Index < lo {
			lo = l.Index
		}
		hi = max(hi, l.Index)
		n++
	}
	return commit()
}

// widen extends the cached bounds by [lo, hi] after n entries were written.
func (s *Store) widen(lo, hi uint64, n int) {
	if n == 0 {
		return
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.first == 0 || lo < s.first {
		s.first = lo
	}
	s.last = max(s.last, hi)
}

// DeleteRange deletes the entries with indexes in [min, max] and returns
// once that is fsync'd. Only keys that exist are deleted. When the range
// reaches the last entry it deletes from the top down, otherwise from the
// bottom up, so a crash between transactions leaves a log without holes.
func (s *Store) DeleteRange(min, max uint64) error {
	if min > max {
		return nil
	}
	if err := s.deleteRange(min, max); err != nil {
		return fmt.Errorf("raftstore: %s delete [%d, %d]: %w", s.group, min, max, err)
	}
	return s.syncer.Sync()
}

// deleteChunk bounds the keys collected and deleted per round.
const deleteChunk = 4096

func (s *Store) deleteRange(lo, hi uint64) error {
	s.wmu.Lock()
	defer s.wmu.Unlock()
	s.mu.RLock()
	first, last := s.first, s.last
	s.mu.RUnlock()
	if first == 0 || hi < first || lo > last {
		return nil
	}
	lo, hi = max(lo, first), min(hi, last)
	// Delete from a bound inwards (descending from last, or ascending from
	// first) or inside the log, so that a crash between transactions
	// leaves no hole, and so the new bound is found by one seek.
	reverse := hi == last
	fromFirst := lo == first
	for lo <= hi {
		keys, err := s.collect(lo, hi, reverse)
		if err != nil || len(keys) == 0 {
			return err
		}
		txn := s.db.NewTransaction(true)
		n := 0 // keys deleted in txn
		for i, k := range keys {
			err := txn.Delete(k)
			if errors.Is(err, badger.ErrTxnTooBig) && n > 0 {
				if err = s.commitDelete(txn, keys[i-1], reverse, fromFirst); err != nil {
					return err
				}
				txn, n = s.db.NewTransaction(true), 0
				err = txn.Delete(k)
			}
			if err != nil {
				txn.Discard()
				return err
			}
			n++
		}
		if err := s.commitDelete(txn, keys[len(keys)-1], reverse, fromFirst); err != nil {
			return err
		}
		if len(keys) < deleteChunk {
			return nil
		}
		idx := s.index(keys[len(keys)-1])
		if reverse {
			if idx == 0 {
				return nil
			}
			hi = idx - 1
		} else {
			if idx == ^uint64(0) {
				return nil
			}
			lo = idx + 1
		}
	}
	return nil
}

func (s *Store) index(key []byte) uint64 {
	return binary.BigEndian.Uint64(key[len(s.logPfx):])
}

// collect returns up to deleteChunk existing log keys in [lo, hi],
// ascending, or descending when reverse.
func (s *Store) collect(lo, hi uint64, reverse bool) ([][]byte, error) {
	var keys [][]byte
	err := s.db.View(func(txn *badger.Txn) error {
		it := txn.NewIterator(badger.IteratorOptions{Prefix: s.logPfx, Reverse: reverse})
		defer it.Close()
		from, to := s.logKey(lo), s.logKey(hi)
		if reverse {
			from, to = to, from
		}
		for it.Seek(from); it.ValidForPrefix(s.logPfx) && len(keys) < deleteChunk; it.Next() {
			k := it.Item().Key()
			if len(k) != len(s.logPfx)+8 {
				return fmt.Errorf("%w: log key %q", ErrCorrupt, k)
			}
			if !reverse && string(k) > string(to) || reverse && string(k) < string(to) {
				break
			}
			keys = append(keys, it.Item().KeyCopy(nil))
		}
		return nil
	})
	return keys, err
}

// commitDelete commits txn, whose deletes ended at key, and updates the
// cached bounds: deleting descending to key from last moves last below
// key; deleting ascending to key from first moves first above it.
func (s *Store) commitDelete(txn *badger.Txn, key []byte, reverse, fromFirst bool) error {
	defer txn.Discard()
	if err := txn.Commit(); err != nil {
		return err
	}
	if !reverse && !fromFirst {
		return nil
	}
	idx := s.index(key)
	return s.db.View(func(txn *badger.Txn) error {
		s.mu.Lock()
		defer s.mu.Unlock()
		if reverse {
			last := uint64(0)
			if idx > 0 {
				var err error
				if last, err = s.seek(txn, idx-1, true); err != nil {
					return err
				}
			}
			s.last = last
			if last == 0 {
				s.first = 0
			}
			return nil
		}
		first := uint64(0)
		if idx < ^uint64(0) {
			var err error
			if first, err = s.seek(txn, idx+1, false); err != nil {
				return err
			}
		}
		s.first = first
		if first == 0 {
			s.last = 0
		}
		return nil
	})
}

// Set stores val under key and returns once it is fsync'd.
func (s *Store) Set(key, val []byte) error {
	err := s.db.Update(func(txn *badger.Txn) error {
		return txn.Set(s.stableKey(key), val)
	})
	if err != nil {
		return fmt.Errorf("raftstore: %s set %q: %w", s.group, key, err)
	}
	return s.syncer.Sync()
}

// Get returns the value of key, or ErrKeyNotFound ("not found") when it was
// never Set.
func (s *Store) Get(key []byte) ([]byte, error) {
	var v []byte
	err := s.db.View(func(txn *badger.Txn) error {
		item, err := txn.Get(s.stableKey(key))
		if err != nil {
			return err
		}
		v, err = item.ValueCopy(nil)
		return err
	})
	if errors.Is(err, badger.ErrKeyNotFound) {
		return nil, ErrKeyNotFound
	}
	if err != nil {
		return nil, fmt.Errorf("raftstore: %s get %q: %w", s.group, key, err)
	}
	return v, nil
}

// SetUint64 stores val as 8 big-endian bytes under key and returns once it
// is fsync'd.
func (s *Store) SetUint64(key []byte, val uint64) error {
	return s.Set(key, binary.BigEndian.AppendUint64(nil, val))
}

// GetUint64 returns the value SetUint64 stored under key, 0 when there is
// none, and ErrCorrupt (wrapped) when the value is not 8 bytes.
func (s *Store) GetUint64(key []byte) (uint64, error) {
	return getUint64(s.group, key, s.Get)
}
