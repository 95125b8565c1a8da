package route

import (
	"strings"
	"testing"

	"github.com/nats-io/nats.go"
)

// Validate names the bad field.
func TestConfigValidate(t *testing.T) {
	for _, tc := range []struct {
		name string
		cfg  Config
		want string
	}{
		{"no conn", Config{Region: "local", NodeID: "n1"}, "Conn"},
		{"no node id", Config{Region: "local", Conn: &nats.Conn{}}, "NodeID"},
		{"no directory", Config{Region: "local", NodeID: "n1", Conn: &nats.Conn{}}, "Directory"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			c := tc.cfg
			c.setDefaults()
			err := c.Validate()
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("Validate: %v, want an error naming %s", err, tc.want)
			}
		})
	}
}

func TestShardGroupNames(t *testing.T) {
	r := &Router{cfg: Config{Shards: make([]Group, 4)}}
	for _, conv := range []string{"c_a", "c_b", "c_c"} {
		name := r.ShardOf(conv)
		if !strings.HasPrefix(name, "s") || len(name) != 2 {
			t.Errorf("ShardOf(%s) = %q, want s0..s3", conv, name)
		}
	}
	if ShardGroup(7) != "s7" || DirGroup != "dir" {
		t.Fatal("group names changed")
	}
}
