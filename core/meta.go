package core

import (
	"encoding/binary"
	"errors"
	"fmt"

	"github.com/dgraph-io/badger/v4"
)

// shardCountKey holds, in the node's Badger DB, the shard count the data
// was written with (8 bytes big-endian). Group state lives under "f/".
var shardCountKey = []byte("n/shard_count")

// ShardCountError is returned by New when the data directory was written
// with another shard count: every conversation would map to another
// shard, so the node refuses to start.
type ShardCountError struct {
	Stored, Configured int
}

func (e *ShardCountError) Error() string {
	return fmt.Sprintf("core: the data was written with %d shards, the configuration says %d: a region's shard count cannot change", e.Stored, e.Configured)
}

// checkShardCount records want as the data's shard count on first start,
// and fails with *ShardCountError when another count is recorded.
func checkShardCount(db *badger.DB, want int) error {
	var stored uint64
	found := false
	err := db.View(func(txn *badger.Txn) error {
		item, err := txn.Get(shardCountKey)
		if errors.Is(err, badger.ErrKeyNotFound) {
			return nil
		}
		if err != nil {
			return err
		}
		return item.Value(func(v []byte) error {
			if len(v) != 8 {
				return fmt.Errorf("core: stored shard count is %d bytes, want 8", len(v))
			}
			stored, found = binary.BigEndian.Uint64(v), true
			return nil
		})
	})
	if err != nil {
		return fmt.Errorf("core: read the stored shard count: %w", err)
	}
	if found {
		if stored != uint64(want) {
			return &ShardCountError{Stored: int(stored), Configured: want}
		}
		return nil
	}
	err = db.Update(func(txn *badger.Txn) error {
		return txn.Set(shardCountKey, binary.BigEndian.AppendUint64(nil, uint64(want)))
	})
	if err == nil {
		err = db.Sync()
	}
	if err != nil {
		return fmt.Errorf("core: store the shard count: %w", err)
	}
	return nil
}
