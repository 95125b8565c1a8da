package system

import (
	"strings"
	"testing"

	"github.com/parley-chat/parley/core"
	"github.com/parley-chat/parley/edge"
)

func TestConfigValidate(t *testing.T) {
	for _, tc := range []struct {
		name  string
		cfg   Config
		field string // "" when valid
	}{
		{"minimal", Config{DataDir: "d"}, ""},
		{"no data dir", Config{}, "DataDir"},
		{"negative ready timeout", Config{DataDir: "d", ReadyTimeout: -1}, "ReadyTimeout"},
		{"core data dir", Config{DataDir: "d", Core: core.Config{DataDir: "x"}}, "Core.DataDir"},
		{"peers", Config{DataDir: "d", Core: core.Config{Peers: []core.Peer{{ID: "n1", RaftAddr: "127.0.0.1:7000"}}}}, "Core.Peers"},
		{"edge NATS URL", Config{DataDir: "d", Edge: edge.Config{NATSURL: "nats://127.0.0.1:4222"}}, "Edge.NATS"},
		{"bad node id", Config{DataDir: "d", Core: core.Config{NodeID: "N 1"}}, "NodeID"},
		{"bad shard count", Config{DataDir: "d", Core: core.Config{ShardCount: -1}}, "ShardCount"},
	} {
		err := tc.cfg.Validate()
		switch {
		case tc.field == "" && err != nil:
			t.Errorf("%s: Validate() = %v, want nil", tc.name, err)
		case tc.field != "" && (err == nil || !strings.Contains(err.Error(), tc.field)):
			t.Errorf("%s: Validate() = %v, want an error naming %s", tc.name, err, tc.field)
		}
	}
}
