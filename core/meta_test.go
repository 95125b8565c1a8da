package core_test

import (
	"errors"
	"path/filepath"
	"testing"

	"github.com/parley-chat/parley/core"
	"github.com/parley-chat/parley/core/coretest"
)

// A node refuses to start on data written with another shard count, and
// says both numbers; with the count it was written with it starts.
func TestNodeRefusesAnotherShardCount(t *testing.T) {
	cfg := core.Config{NodeID: "n1", DataDir: filepath.Join(t.TempDir(), "n1"), RaftAddr: "127.0.0.1:0",
		ShardCount: 4, NATS: core.NATSConfig{ClientAddr: "127.0.0.1:0"}, Timing: testTiming, Logger: coretest.Logger()}
	start := func(shards int) (*core.Node, error) {
		c := cfg
		c.ShardCount = shards
		return core.New(c)
	}
	n, err := start(4)
	if err != nil {
		t.Fatal(err)
	}
	if err := n.Close(); err != nil {
		t.Fatal(err)
	}
	_, err = start(8)
	var sc *core.ShardCountError
	if !errors.As(err, &sc) || sc.Stored != 4 || sc.Configured != 8 {
		t.Fatalf("start with 8 shards on data of 4: %v", err)
	}
	n, err = start(4)
	if err != nil {
		t.Fatal(err)
	}
	if err := n.Close(); err != nil {
		t.Fatal(err)
	}
}
