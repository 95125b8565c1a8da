package settings

import (
	"bytes"
	"errors"
	"flag"
	"io"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"
)

// testSettings is a command's worth of flags of every kind.
type testSettings struct {
	addr, level string
	shards      int
	wait        time.Duration
	json        bool
	routes      []string
}

func newTestFlags(s *testSettings) *flag.FlagSet {
	fs := NewFlagSet("parley test", "[flags]", io.Discard, true)
	fs.StringVar(&s.addr, "nats", "127.0.0.1:4222", "")
	fs.StringVar(&s.level, "log-level", "info", "")
	fs.IntVar(&s.shards, "shards", 0, "")
	fs.DurationVar(&s.wait, "presence-interval", 0, "")
	fs.BoolVar(&s.json, "log-json", false, "")
	fs.Var(List{P: &s.routes}, "nats-routes", "")
	return fs
}

var testKeys = map[string]string{"nats": "nats.client_addr", "nats-routes": "nats.routes"}

func writeFile(t *testing.T, body string) string {
	t.Helper()
	path := filepath.Join(t.TempDir(), "parley.json")
	if err := os.WriteFile(path, []byte(body), 0o600); err != nil {
		t.Fatal(err)
	}
	return path
}

// A flag beats the environment, which beats the file, which beats the
// default; each setting is read from the first that has it.
func TestLoadPrecedence(t *testing.T) {
	path := writeFile(t, `{"shards": 8, "log_level": "warn", "presence_interval": "250ms", "log_json": true,
		"nats": {"client_addr": "10.0.0.1:4222", "routes": ["10.0.0.2:6222", "10.0.0.3:6222"]}}`)
	t.Setenv("PARLEY_LOG_LEVEL", "error")
	t.Setenv("PARLEY_SHARDS", "4")
	var s testSettings
	if err := Load(newTestFlags(&s), []string{"--config", path, "--shards", "2"}, testKeys); err != nil {
		t.Fatal(err)
	}
	want := testSettings{addr: "10.0.0.1:4222", level: "error", shards: 2, wait: 250 * time.Millisecond, json: true,
		routes: []string{"10.0.0.2:6222", "10.0.0.3:6222"}}
	if !slices.Equal(s.routes, want.routes) || s.addr != want.addr || s.level != want.level || s.shards != want.shards ||
		s.wait != want.wait || s.json != want.json {
		t.Fatalf("loaded %+v, want %+v", s, want)
	}
}

// PARLEY_CONFIG names the file when --config does not; without either
// every setting keeps its default.
func TestLoadConfigFromEnvironment(t *testing.T) {
	var s testSettings
	if err := Load(newTestFlags(&s), nil, testKeys); err != nil || s.addr != "127.0.0.1:4222" || s.level != "info" {
		t.Fatalf("defaults: %+v, %v", s, err)
	}
	t.Setenv("PARLEY_CONFIG", writeFile(t, `{"nats": {"routes": "a:1, b:2"}}`))
	s = testSettings{}
	if err := Load(newTestFlags(&s), nil, testKeys); err != nil || !slices.Equal(s.routes, []string{"a:1", "b:2"}) {
		t.Fatalf("from PARLEY_CONFIG: %+v, %v", s, err)
	}
}

func TestLoadErrors(t *testing.T) {
	for _, tc := range []struct {
		name, file, env string
		key             string // the key the *Error names
	}{
		{"unknown key", `{"shard": 8}`, "", "shard"},
		{"unknown nested key", `{"nats": {"client": "x"}}`, "", "nats.client"},
		{"bad number", `{"shards": "many"}`, "", "shards"},
		{"bad duration", `{"presence_interval": 250}`, "", "presence_interval"},
		{"object value", `{"log_level": {"x": 1}}`, "", "log_level"},
		{"not an object", `[1]`, "", "(file)"},
		{"bad environment", `{}`, "PARLEY_SHARDS=x", "PARLEY_SHARDS"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if k, v, ok := strings.Cut(tc.env, "="); ok {
				t.Setenv(k, v)
			}
			var s testSettings
			err := Load(newTestFlags(&s), []string{"--config", writeFile(t, tc.file)}, testKeys)
			var se *Error
			if !errors.As(err, &se) || se.Key != tc.key {
				t.Fatalf("Load: %v, want a *settings.Error for %s", err, tc.key)
			}
		})
	}
	var s testSettings
	if err := Load(newTestFlags(&s), []string{"--config", filepath.Join(t.TempDir(), "none.json")}, nil); !errors.Is(err, os.ErrNotExist) {
		t.Fatalf("missing file: %v", err)
	}
}

// -h and --help are ErrHelp and an unknown flag ErrUsage, each with the
// usage printed.
func TestParseHelpAndUsage(t *testing.T) {
	for _, tc := range []struct {
		arg  string
		want error
	}{{"-h", ErrHelp}, {"--help", ErrHelp}, {"--no-such-flag", ErrUsage}} {
		var out bytes.Buffer
		fs := NewFlagSet("parley test", "[flags]", &out, true)
		fs.Int("shards", 0, "number of shard groups")
		if err := Parse(fs, []string{tc.arg}); !errors.Is(err, tc.want) {
			t.Errorf("%s: %v, want %v", tc.arg, err, tc.want)
		}
		if u := out.String(); !strings.Contains(u, "Usage: parley test [flags]") || !strings.Contains(u, "-shards") ||
			!strings.Contains(u, "PARLEY_") {
			t.Errorf("%s: usage %q", tc.arg, u)
		}
	}
}
