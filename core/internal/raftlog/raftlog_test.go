package raftlog

import (
	"context"
	"errors"
	"log/slog"
	"sync"
	"testing"

	"github.com/hashicorp/go-hclog"
)

// recorder keeps every record it handles.
type recorder struct {
	mu    sync.Mutex
	level slog.Level
	recs  []slog.Record
	attrs []slog.Attr
}

func (r *recorder) Enabled(_ context.Context, l slog.Level) bool { return l >= r.level }

func (r *recorder) Handle(_ context.Context, rec slog.Record) error {
	r.mu.Lock()
	defer r.mu.Unlock()
	rec.AddAttrs(r.attrs...)
	r.recs = append(r.recs, rec)
	return nil
}

func (r *recorder) WithAttrs(as []slog.Attr) slog.Handler {
	return &child{r: r, attrs: as}
}

func (r *recorder) WithGroup(string) slog.Handler { return r }

type child struct {
	r     *recorder
	attrs []slog.Attr
}

func (c *child) Enabled(ctx context.Context, l slog.Level) bool { return c.r.Enabled(ctx, l) }
func (c *child) Handle(ctx context.Context, rec slog.Record) error {
	rec.AddAttrs(c.attrs...)
	return c.r.Handle(ctx, rec)
}
func (c *child) WithAttrs(as []slog.Attr) slog.Handler {
	return &child{r: c.r, attrs: append(append([]slog.Attr(nil), c.attrs...), as...)}
}
func (c *child) WithGroup(string) slog.Handler { return c }

func (r *recorder) last(t *testing.T) (slog.Record, map[string]string) {
	t.Helper()
	r.mu.Lock()
	defer r.mu.Unlock()
	if len(r.recs) == 0 {
		t.Fatal("nothing logged")
	}
	rec := r.recs[len(r.recs)-1]
	m := map[string]string{}
	rec.Attrs(func(a slog.Attr) bool { m[a.Key] = a.Value.String(); return true })
	return rec, m
}

func (r *recorder) count() int {
	r.mu.Lock()
	defer r.mu.Unlock()
	return len(r.recs)
}

type stringer struct{ s string }

func (s *stringer) String() string { return s.s }

func TestLevels(t *testing.T) {
	tests := []struct {
		name  string
		log   func(hclog.Logger)
		level slog.Level
		msg   string
	}{
		{"trace", func(l hclog.Logger) { l.Trace("t") }, LevelTrace, "t"},
		{"debug", func(l hclog.Logger) { l.Debug("d") }, slog.LevelDebug, "d"},
		{"info demoted", func(l hclog.Logger) { l.Info("pipelining replication") }, slog.LevelDebug, "pipelining replication"},
		{"leader kept", func(l hclog.Logger) { l.Info("entering leader state") }, slog.LevelInfo, "entering leader state"},
		{"follower kept", func(l hclog.Logger) { l.Info("entering follower state") }, slog.LevelInfo, "entering follower state"},
		{"warn", func(l hclog.Logger) { l.Warn("w") }, slog.LevelWarn, "w"},
		{"error", func(l hclog.Logger) { l.Error("e") }, slog.LevelError, "e"},
		{"log no level", func(l hclog.Logger) { l.Log(hclog.NoLevel, "n") }, slog.LevelDebug, "n"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r := &recorder{level: LevelTrace}
			l := New(slog.New(r), "s3")
			tt.log(l)
			rec, attrs := r.last(t)
			if rec.Level != tt.level || rec.Message != tt.msg {
				t.Fatalf("got %v %q, want %v %q", rec.Level, rec.Message, tt.level, tt.msg)
			}
			if attrs["group"] != "s3" {
				t.Fatalf("group attr = %q", attrs["group"])
			}
		})
	}
}

func TestArgs(t *testing.T) {
	r := &recorder{level: LevelTrace}
	l := New(slog.New(r), "dir").With("peer", "n2")
	l.Warn("m", "node", &stringer{"raft[n1]"}, "error", errors.New("boom"), "n", 3, "odd")
	_, attrs := r.last(t)
	want := map[string]string{"group": "dir", "peer": "n2", "node": "raft[n1]", "error": "boom", "n": "3", "EXTRA_VALUE_AT_END": "odd"}
	for k, v := range want {
		if attrs[k] != v {
			t.Errorf("%s = %q, want %q (all: %v)", k, attrs[k], v, attrs)
		}
	}
	if got := l.ImpliedArgs(); len(got) != 2 || got[0] != "peer" {
		t.Errorf("ImpliedArgs = %v", got)
	}
}

func TestFiltering(t *testing.T) {
	r := &recorder{level: slog.LevelInfo}
	l := New(slog.New(r), "s0")
	l.Debug("hidden")
	l.Info("replication detail")
	if r.count() != 0 {
		t.Fatalf("logged %d records below Info", r.count())
	}
	if l.IsDebug() || l.IsTrace() || !l.IsInfo() || !l.IsWarn() || !l.IsError() {
		t.Fatal("Is* disagree with the handler's level")
	}
	l.SetLevel(hclog.Error)
	l.Warn("hidden")
	if r.count() != 0 || l.IsWarn() || l.GetLevel() != hclog.Error {
		t.Fatal("SetLevel(Error) did not hide Warn")
	}
	l.Error("shown")
	if r.count() != 1 {
		t.Fatal("Error not logged")
	}
}

func TestNames(t *testing.T) {
	l := New(nil, "s1")
	if l.Name() != "s1" || l.Named("snap").Name() != "s1.snap" || l.ResetNamed("x").Name() != "x" {
		t.Fatalf("names: %q %q %q", l.Name(), l.Named("snap").Name(), l.ResetNamed("x").Name())
	}
	l.Info("discarded") // nil logger must not panic
}

func TestStandardLogger(t *testing.T) {
	tests := []struct {
		name  string
		opts  *hclog.StandardLoggerOptions
		line  string
		level slog.Level
		msg   string
	}{
		{"default info", nil, "hello\n", slog.LevelDebug, "hello"},
		{"infer", &hclog.StandardLoggerOptions{InferLevels: true}, "[WARN] careful", slog.LevelWarn, "careful"},
		{"infer timestamp", &hclog.StandardLoggerOptions{InferLevelsWithTimestamp: true}, "2024/01/01 [ERR] bad", slog.LevelError, "bad"},
		{"force", &hclog.StandardLoggerOptions{ForceLevel: hclog.Error, InferLevels: true}, "[DEBUG] x", slog.LevelError, "[DEBUG] x"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r := &recorder{level: LevelTrace}
			New(slog.New(r), "g").StandardLogger(tt.opts).Print(tt.line)
			rec, _ := r.last(t)
			if rec.Level != tt.level || rec.Message != tt.msg {
				t.Fatalf("got %v %q, want %v %q", rec.Level, rec.Message, tt.level, tt.msg)
			}
		})
	}
}
