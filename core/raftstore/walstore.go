package raftstore

import (
	"encoding/binary"
	"errors"
	"fmt"
	"slices"

	"github.com/hashicorp/raft"
)

var (
	_ raft.LogStore    = (*WALStore)(nil)
	_ raft.StableStore = (*WALStore)(nil)
)

// WALStore is one group's raft.LogStore and raft.StableStore in a WAL.
// Every method is safe for concurrent use; StoreLog(s), DeleteRange, Set
// and SetUint64 return once their record is durable.
type WALStore struct {
	w     *WAL
	group string
}

// Store returns group's store in w.
func (w *WAL) Store(group string) (*WALStore, error) {
	if !ValidGroup(group) {
		return nil, fmt.Errorf("%w: %q", ErrBadGroup, group)
	}
	w.imu.Lock()
	w.groupLocked(group)
	w.imu.Unlock()
	return &WALStore{w: w, group: group}, nil
}

// Group is the store's group name.
func (s *WALStore) Group() string { return s.group }

func (s *WALStore) bounds() (first, last uint64) {
	s.w.imu.RLock()
	defer s.w.imu.RUnlock()
	return s.w.groups[s.group].bounds()
}

// FirstIndex returns the lowest stored index, 0 when the log is empty.
func (s *WALStore) FirstIndex() (uint64, error) {
	first, _ := s.bounds()
	return first, nil
}

// LastIndex returns the highest stored index, 0 when the log is empty.
func (s *WALStore) LastIndex() (uint64, error) {
	_, last := s.bounds()
	return last, nil
}

// GetLog reads the entry at index into l. It returns raft.ErrLogNotFound
// when there is none and ErrCorrupt (wrapped) when it does not decode.
func (s *WALStore) GetLog(index uint64, l *raft.Log) error {
	s.w.imu.RLock()
	loc, ok := s.w.groups[s.group].get(index)
	var b []byte
	var err error
	if ok {
		b, err = s.w.readLocked(loc)
	}
	s.w.imu.RUnlock()
	if !ok {
		return raft.ErrLogNotFound
	}
	if err == nil {
		err = decodeLog(b, l)
	}
	if err == nil && l.Index != index {
		err = fmt.Errorf("%w: entry says index %d", ErrCorrupt, l.Index)
	}
	if err != nil {
		return fmt.Errorf("raftstore: %s get log %d: %w", s.group, index, err)
	}
	return nil
}

// StoreLog stores one entry; see StoreLogs.
func (s *WALStore) StoreLog(l *raft.Log) error {
	return s.StoreLogs([]*raft.Log{l})
}

// StoreLogs writes the entries in one record (several, in index order,
// when they exceed a segment) and returns once they are durable. Entries
// overwrite any at the same index.
func (s *WALStore) StoreLogs(logs []*raft.Log) error {
	if len(logs) == 0 {
		return nil
	}
	if err := s.storeLogs(logs); err != nil {
		return fmt.Errorf("raftstore: %s store logs: %w", s.group, err)
	}
	return nil
}

func (s *WALStore) storeLogs(logs []*raft.Log) error {
	max := s.w.maxPayload()
	size := 0
	for _, l := range logs {
		size += encodedLogSize(l) + 2*binary.MaxVarintLen64
	}
	e := newEntriesRecord(s.group, min(size, max))
	var lsn uint64
	var enc []byte
	flush := func() error {
		ents := e.ents
		n, err := s.w.appendRecord(e.rec, recEntries, func(seg *segment, off int64) {
			s.w.applyEntries(s.group, seg, off, ents)
		})
		lsn = n
		return err
	}
	for _, l := range logs {
		enc = appendLog(enc[:0], l)
		if !e.fits(len(enc), max) {
			if len(e.ents) == 0 {
				return fmt.Errorf("%w: index %d, %d bytes", ErrTooLarge, l.Index, len(enc))
			}
			if err := flush(); err != nil {
				return err
			}
			e = newEntriesRecord(s.group, min(size, max))
		}
		e.add(l.Index, enc)
	}
	if err := flush(); err != nil {
		return err
	}
	return s.w.waitDurable(lsn)
}

// DeleteRange deletes the entries with indexes in [min, max] and returns
// once that is durable.
func (s *WALStore) DeleteRange(min, max uint64) error {
	if min > max {
		return nil
	}
	lsn, err := s.w.appendRecord(newDeleteRecord(s.group, min, max), recDelete, func(*segment, int64) {
		s.w.applyDelete(s.group, min, max)
	})
	if err == nil {
		err = s.w.waitDurable(lsn)
	}
	if err != nil {
		return fmt.Errorf("raftstore: %s delete [%d, %d]: %w", s.group, min, max, err)
	}
	return nil
}

// Set stores val under key and returns once it is durable.
func (s *WALStore) Set(key, val []byte) error {
	s.w.mu.Lock()
	lsn, err := s.w.setStableLocked(s.group, key, val)
	s.w.mu.Unlock()
	if err == nil {
		err = s.w.waitDurable(lsn)
	}
	if err != nil {
		return fmt.Errorf("raftstore: %s set %q: %w", s.group, key, err)
	}
	return nil
}

// Get returns the value of key, or ErrKeyNotFound ("not found") when it was
// never Set.
func (s *WALStore) Get(key []byte) ([]byte, error) {
	s.w.imu.RLock()
	v, ok := s.w.groups[s.group].stable[string(key)]
	s.w.imu.RUnlock()
	if !ok {
		return nil, ErrKeyNotFound
	}
	return slices.Clone(v.val), nil
}

// SetUint64 stores val as 8 big-endian bytes under key and returns once it
// is durable.
func (s *WALStore) SetUint64(key []byte, val uint64) error {
	return s.Set(key, binary.BigEndian.AppendUint64(nil, val))
}

// GetUint64 returns the value SetUint64 stored under key, 0 when there is
// none, and ErrCorrupt (wrapped) when the value is not 8 bytes.
func (s *WALStore) GetUint64(key []byte) (uint64, error) {
	return getUint64(s.group, key, s.Get)
}

// getUint64 reads a SetUint64 value with get.
func getUint64(group string, key []byte, get func([]byte) ([]byte, error)) (uint64, error) {
	v, err := get(key)
	if errors.Is(err, ErrKeyNotFound) {
		return 0, nil
	}
	if err != nil {
		return 0, err
	}
	if len(v) != 8 {
		return 0, fmt.Errorf("raftstore: %s get %q: %w: %d bytes for a uint64", group, key, ErrCorrupt, len(v))
	}
	return binary.BigEndian.Uint64(v), nil
}
