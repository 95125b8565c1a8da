package receipts

import (
	"encoding/binary"
	"errors"
	"fmt"
	"strings"

	"github.com/dgraph-io/badger/v4"

	"github.com/parley-chat/parley/crdt"
	"github.com/parley-chat/parley/syncproto/syncpb"
)

// Keys, in the node's Badger DB:
//
//	rc/m/<conv>/<user>  crdt.Devices of the user in the conversation
//	rc/applied          the last merged stream sequence (8 bytes, big-endian)
//
// Both are written in one transaction per batch, so after a crash the
// state and the position agree and the stream replays from there.
var keyApplied = []byte("rc/applied")

func marksPrefix(conv string) []byte { return []byte("rc/m/" + conv + "/") }

func marksKey(conv, user string) []byte { return []byte("rc/m/" + conv + "/" + user) }

// store is the merged state on one node.
type store struct{ db *badger.DB }

func (s store) applied() (uint64, error) {
	var seq uint64
	err := s.db.View(func(txn *badger.Txn) error {
		it, err := txn.Get(keyApplied)
		if errors.Is(err, badger.ErrKeyNotFound) {
			return nil
		}
		if err != nil {
			return err
		}
		return it.Value(func(v []byte) error {
			if len(v) != 8 {
				return fmt.Errorf("receipts: corrupt applied position (%d bytes)", len(v))
			}
			seq = binary.BigEndian.Uint64(v)
			return nil
		})
	})
	return seq, err
}

func getDevices(txn *badger.Txn, conv, user string) (crdt.Devices, error) {
	it, err := txn.Get(marksKey(conv, user))
	if errors.Is(err, badger.ErrKeyNotFound) {
		return crdt.Devices{}, nil
	}
	if err != nil {
		return nil, err
	}
	var d crdt.Devices
	err = it.Value(func(v []byte) error {
		d, err = crdt.Decode(v)
		return err
	})
	if err != nil {
		return nil, fmt.Errorf("receipts: %s/%s: %w", conv, user, err)
	}
	return d, nil
}

func (s store) devices(conv, user string) (crdt.Devices, error) {
	var d crdt.Devices
	err := s.db.View(func(txn *badger.Txn) error {
		var err error
		d, err = getDevices(txn, conv, user)
		return err
	})
	return d, err
}

// scan calls fn with every user's devices in conv.
func (s store) scan(conv string, fn func(user string, d crdt.Devices) bool) error {
	prefix := marksPrefix(conv)
	return s.db.View(func(txn *badger.Txn) error {
		it := txn.NewIterator(badger.IteratorOptions{Prefix: prefix, PrefetchValues: true, PrefetchSize: 256})
		defer it.Close()
		for it.Rewind(); it.Valid(); it.Next() {
			item := it.Item()
			user := string(item.Key()[len(prefix):])
			if strings.Contains(user, "/") {
				continue
			}
			var d crdt.Devices
			err := item.Value(func(v []byte) error {
				var err error
				d, err = crdt.Decode(v)
				return err
			})
			if err != nil {
				return fmt.Errorf("receipts: %s/%s: %w", conv, user, err)
			}
			if !fn(user, d) {
				return nil
			}
		}
		return nil
	})
}

// Change is a merge that moved a user's state.
type Change struct {
	Conv, User, Device string
	// Before and After are the user-level views (crdt.Devices.User).
	Before, After crdt.Marks
}

// marksOf is the delta as a device's marks.
func marksOf(u *syncpb.ReceiptUpdate) crdt.Marks {
	r := crdt.Register{Value: u.Seq, At: u.AtUnixMs}
	if u.Type == syncpb.ReceiptType_RECEIPT_TYPE_READ {
		return crdt.Marks{Read: r}
	}
	return crdt.Marks{Delivered: r}
}

// merge applies deltas (already validated by the node that published
// them) in one transaction and records seq as applied. Deltas that move
// nothing are no-ops, so a replay changes nothing.
func (s store) merge(deltas []*syncpb.ReceiptUpdate, seq uint64) ([]Change, error) {
	var changes []Change
	err := s.db.Update(func(txn *badger.Txn) error {
		changes = changes[:0]
		touched := map[string]crdt.Devices{} // conv/user (ids have no '/')
		dirty := map[string]bool{}
		for _, u := range deltas {
			k := u.ConvId + "/" + u.UserId
			d, ok := touched[k]
			if !ok {
				var err error
				if d, err = getDevices(txn, u.ConvId, u.UserId); err != nil {
					return err
				}
				touched[k] = d
			}
			prev := d.User()
			if !d.Set(u.DeviceId, marksOf(u)) {
				continue
			}
			dirty[k] = true
			if after := d.User(); after != prev {
				changes = append(changes, Change{Conv: u.ConvId, User: u.UserId, Device: u.DeviceId, Before: prev, After: after})
			}
		}
		for k := range dirty {
			conv, user, _ := strings.Cut(k, "/")
			if err := txn.Set(marksKey(conv, user), touched[k].Encode()); err != nil {
				return err
			}
		}
		var b [8]byte
		binary.BigEndian.PutUint64(b[:], seq)
		return txn.Set(keyApplied, b[:])
	})
	return changes, err
}
