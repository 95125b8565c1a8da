package main

import (
	"io"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"testing"
	"time"

	"github.com/parley-chat/parley/core"
	"github.com/parley-chat/parley/system"
)

// configExample is a marked JSON block of README.md: a config file for
// one command.
var configExample = regexp.MustCompile("(?s)<!-- config example: parley (\\w+) [^>]*-->\\s*```json\\n(.*?)```")

func writeConfig(t *testing.T, body string) string {
	t.Helper()
	path := filepath.Join(t.TempDir(), "parley.json")
	if err := os.WriteFile(path, []byte(body), 0o600); err != nil {
		t.Fatal(err)
	}
	return path
}

// loadSettings is what cmd's loader read from args: *system.Config,
// *core.Config or *edgeSettings, and the process's settings.
func loadSettings(t *testing.T, cmd string, args []string) (any, *processFlags) {
	t.Helper()
	var s any
	var proc *processFlags
	var err error
	switch cmd {
	case "serve":
		s, proc, err = loadServe(args, io.Discard)
	case "core":
		s, proc, err = loadCore(args, io.Discard)
	case "edge":
		s, proc, err = loadEdge(args, io.Discard)
	default:
		t.Fatalf("parley %s reads no config file", cmd)
	}
	if err != nil {
		t.Fatalf("parley %s %q: %v", cmd, args, err)
	}
	return s, proc
}

// Every config file README.md shows loads for its command, with the
// values it says.
func TestREADMEConfigExamplesLoad(t *testing.T) {
	readme, err := os.ReadFile(filepath.Join("..", "..", "README.md"))
	if err != nil {
		t.Fatal(err)
	}
	found := map[string]bool{}
	for _, m := range configExample.FindAllSubmatch(readme, -1) {
		cmd := string(m[1])
		found[cmd] = true
		loaded, proc := loadSettings(t, cmd, []string{"--config", writeConfig(t, string(m[2]))})
		switch s := loaded.(type) {
		case *core.Config:
			want := []core.Peer{{ID: "n1", RaftAddr: "10.0.0.1:7000"}, {ID: "n2", RaftAddr: "10.0.0.2:7000"}, {ID: "n3", RaftAddr: "10.0.0.3:7000"}}
			if s.NodeID != "n1" || s.DataDir != "/var/lib/parley" || s.ShardCount != 16 || !slices.Equal(s.Peers, want) ||
				s.NATS.ClusterAddr != "10.0.0.1:6222" || len(s.NATS.Routes) != 2 {
				t.Errorf("README's core example loaded as %+v", *s)
			}
		case *system.Config:
			if s.DataDir != "/var/lib/parley" || s.Edge.HTTPAddr != "0.0.0.0:8080" || s.Core.NATS.ClientAddr != "-" ||
				s.Edge.Presence.Lease != 1500*time.Millisecond || !slices.Equal(s.Edge.HTTP.CORS.AllowedOrigins, []string{"https://app.example.com"}) ||
				!proc.logJSON {
				t.Errorf("README's serve example loaded as %+v", *s)
			}
		case *edgeSettings:
			if s.NATSURL != "nats://10.0.0.1:4222,nats://10.0.0.2:4222,nats://10.0.0.3:4222" || s.keyFile != "/etc/parley/token.keys" ||
				s.Cert.CertFile != "/etc/parley/tls/cert.pem" || s.Session.FrameBurst != 200 {
				t.Errorf("README's edge example loaded as %+v", s.Config)
			}
		}
	}
	for _, cmd := range []string{"serve", "core", "edge"} {
		if !found[cmd] {
			t.Errorf("README.md has no config example for parley %s", cmd)
		}
	}
}

// serve, core and edge read their settings alike: a flag over the
// environment over the config file over the default.
func TestSettingsPrecedence(t *testing.T) {
	t.Setenv("PARLEY_LOG_LEVEL", "error")
	t.Setenv("PARLEY_SHARDS", "4")
	t.Setenv("PARLEY_DEVICE_RATE", "60")
	for _, cmd := range []string{"serve", "core", "edge"} {
		t.Run(cmd, func(t *testing.T) {
			path := writeConfig(t, `{"log_level": "warn", "log_json": true, "metrics": "127.0.0.1:9464", `+map[string]string{
				"serve": `"shards": 8, "large_group": 50, "data_dir": "/srv/parley"}`,
				"core":  `"shards": 8, "large_group": 50, "node_id": "n2", "peers": "n2=127.0.0.1:7000"}`,
				"edge":  `"device_rate": 50, "user_burst": 7, "token_keys": "/srv/keys", "nats": {"urls": "nats://a:4222"}}`,
			}[cmd])
			loaded, proc := loadSettings(t, cmd, []string{"--config", path, "--log-level", "debug"})
			switch s := loaded.(type) {
			case *system.Config:
				if s.Core.ShardCount != 4 || s.Core.LargeGroup != 50 || s.DataDir != "/srv/parley" || s.Edge.HTTPAddr != "127.0.0.1:8080" {
					t.Errorf("loaded %+v", *s)
				}
			case *core.Config:
				if s.ShardCount != 4 || s.LargeGroup != 50 || s.NodeID != "n2" || len(s.Peers) != 1 || s.NATS.ClientAddr != defaultCoreNATS {
					t.Errorf("loaded %+v", *s)
				}
			case *edgeSettings:
				if s.Session.FrameRate != 60 || s.Session.FrameBurst != 120 || s.HTTP.UserBurst != 7 || s.keyFile != "/srv/keys" ||
					s.NATSURL != "nats://a:4222" {
					t.Errorf("loaded %+v", s.Config)
				}
			}
			if proc.logLevel != "debug" || !proc.logJSON || proc.metrics != "127.0.0.1:9464" {
				t.Errorf("process settings %+v", *proc)
			}
		})
	}
}
