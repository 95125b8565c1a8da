package push

import (
	"encoding/json"
	"fmt"

	"github.com/dgraph-io/badger/v4"
)

// The queue's durable state, in the node's Badger DB outside every Raft
// group's keys (it is this node's own, not replicated):
//
//	pq/<push id>          a pending push (entry, JSON)
//	ps/<device>/<conv>    the last message push a device got (sent, JSON),
//	                      for the clear that follows a read elsewhere
//
// A push is written before it is scheduled and deleted after its service
// accepted it, each with a synced write, so a core restart resends only
// what was in flight (at least once, the same push id).

var (
	queuePrefix = []byte("pq/")
	sentPrefix  = []byte("ps/")
)

func queueKey(id string) []byte          { return []byte("pq/" + id) }
func sentKey(device, conv string) []byte { return []byte("ps/" + device + "/" + conv) }

// entry is one pending push.
type entry struct {
	ID        string `json:"id"`
	Type      string `json:"type"`
	Workspace string `json:"ws"`
	User      string `json:"user"`
	Device    string `json:"device"`
	Conv      string `json:"conv"`
	FirstSeq  uint64 `json:"first"`
	LastSeq   uint64 `json:"last"`
	MsgID     string `json:"msg,omitempty"`
	Count     int    `json:"count"`
	Title     string `json:"title,omitempty"`
	Sender    string `json:"sender,omitempty"`
	Body      string `json:"body,omitempty"`
	Target    Target `json:"target"`
	// DueMs is when it is sent (commit + grace, or a retry's backoff);
	// CommitMs when its first message committed (latency).
	DueMs    int64 `json:"due"`
	CommitMs int64 `json:"commit"`
	Attempts int   `json:"attempts,omitempty"`

	inflight bool
	heapIdx  int
}

// sent is the last message push a device got for a conversation.
type sent struct {
	Workspace string `json:"ws"`
	User      string `json:"user"`
	Seq       uint64 `json:"seq"`
	Target    Target `json:"target"`
}

type store struct{ db *badger.DB }

func (s store) put(key []byte, v any) error { return s.write(key, v, true) }

// write stores v at key, synced or not.
func (s store) write(key []byte, v any, sync bool) error {
	b, err := json.Marshal(v)
	if err != nil {
		return err
	}
	set := func(txn *badger.Txn) error { return txn.Set(key, b) }
	if !sync {
		if err := s.db.Update(set); err != nil {
			return fmt.Errorf("push: store: %w", err)
		}
		return nil
	}
	return s.update(set)
}

func (s store) del(key []byte) error {
	return s.update(func(txn *badger.Txn) error { return txn.Delete(key) })
}

// update writes and syncs: the queue promises a push survives a restart
// once it is written.
func (s store) update(fn func(*badger.Txn) error) error {
	if err := s.db.Update(fn); err != nil {
		return fmt.Errorf("push: store: %w", err)
	}
	if err := s.db.Sync(); err != nil {
		return fmt.Errorf("push: store sync: %w", err)
	}
	return nil
}

// load calls fn with each stored value under prefix.
func (s store) load(prefix []byte, fn func(key, val []byte) error) error {
	return s.db.View(func(txn *badger.Txn) error {
		opts := badger.DefaultIteratorOptions
		opts.Prefix = prefix
		it := txn.NewIterator(opts)
		defer it.Close()
		for it.Seek(prefix); it.ValidForPrefix(prefix); it.Next() {
			k := it.Item().KeyCopy(nil)
			v, err := it.Item().ValueCopy(nil)
			if err != nil {
				return err
			}
			if err := fn(k, v); err != nil {
				return err
			}
		}
		return nil
	})
}
