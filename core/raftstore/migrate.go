package raftstore

import (
	"bytes"
	"fmt"
	"math"

	"github.com/dgraph-io/badger/v4"
	"github.com/hashicorp/raft"
)

// badgerPrefix holds every key of the Badger Store (see Store).
var badgerPrefix = []byte("r/")

// MigrateBadger moves the Raft logs and stable values that the Badger
// Store keeps in db into w, then deletes them from db. It returns the
// groups it moved (none when db holds no Raft state). A group's WAL state
// is replaced, not merged, so a migration cut short by a crash is simply
// run again.
func MigrateBadger(db *badger.DB, w *WAL) ([]string, error) {
	var groups []string
	err := db.View(func(txn *badger.Txn) error {
		it := txn.NewIterator(badger.IteratorOptions{Prefix: badgerPrefix})
		defer it.Close()
		var cur *migration
		for it.Rewind(); it.Valid(); it.Next() {
			key := it.Item().Key()
			group, kind, rest, ok := splitBadgerKey(key)
			if !ok {
				return fmt.Errorf("%w: badger raft key %q", ErrCorrupt, key)
			}
			if cur == nil || cur.group != group {
				if err := cur.finish(); err != nil {
					return err
				}
				s, err := w.Store(group)
				if err != nil {
					return err
				}
				if err := s.DeleteRange(0, math.MaxUint64); err != nil {
					return err
				}
				cur = &migration{group: group, s: s}
				groups = append(groups, group)
			}
			v, err := it.Item().ValueCopy(nil)
			if err != nil {
				return err
			}
			if err := cur.add(kind, rest, v); err != nil {
				return fmt.Errorf("raftstore: migrate %s: %w", group, err)
			}
		}
		return cur.finish()
	})
	if err != nil || len(groups) == 0 {
		return nil, err
	}
	if err := db.DropPrefix(badgerPrefix); err != nil {
		return nil, fmt.Errorf("raftstore: migrate: drop badger raft keys: %w", err)
	}
	return groups, nil
}

// splitBadgerKey splits "r/<G>/l/<index>" or "r/<G>/s/<key>".
func splitBadgerKey(key []byte) (group string, kind byte, rest []byte, ok bool) {
	g, after, found := bytes.Cut(key[len(badgerPrefix):], []byte("/"))
	if !found || !ValidGroup(string(g)) || len(after) < 2 || after[1] != '/' {
		return "", 0, nil, false
	}
	kind, rest = after[0], after[2:]
	if kind == 'l' && len(rest) != 8 || kind != 'l' && kind != 's' {
		return "", 0, nil, false
	}
	return string(g), kind, rest, true
}

// migration copies one group, batching its entries.
type migration struct {
	group string
	s     *WALStore
	batch []*raft.Log
	size  int
}

func (m *migration) add(kind byte, rest, v []byte) error {
	if kind == 's' {
		return m.s.Set(rest, v)
	}
	l := new(raft.Log)
	if err := decodeLog(v, l); err != nil {
		return err
	}
	m.batch = append(m.batch, l)
	m.size += len(v)
	if m.size >= 1<<20 {
		return m.flush()
	}
	return nil
}

func (m *migration) flush() error {
	err := m.s.StoreLogs(m.batch)
	m.batch, m.size = nil, 0
	return err
}

func (m *migration) finish() error {
	if m == nil || len(m.batch) == 0 {
		return nil
	}
	return m.flush()
}
