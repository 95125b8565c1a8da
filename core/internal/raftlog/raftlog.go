// Package raftlog adapts *slog.Logger to the hclog.Logger that
// hashicorp/raft takes. Raft is chatty at Info, so its Info messages log at
// Debug, except leadership changes, which stay at Info. Trace maps to
// Debug-4.
package raftlog

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"log"
	"log/slog"
	"strings"
	"sync/atomic"

	"github.com/hashicorp/go-hclog"
)

// LevelTrace is the slog level raft's Trace messages log at.
const LevelTrace = slog.LevelDebug - 4

// leadership lists the raft Info messages that stay at Info.
var leadership = map[string]bool{
	"entering leader state":    true,
	"entering follower state":  true,
	"entering candidate state": false,
}

// New returns an hclog.Logger that writes to l, named name (raft's
// "group" attribute). A nil l discards.
func New(l *slog.Logger, name string) hclog.Logger {
	if l == nil {
		l = slog.New(slog.DiscardHandler)
	}
	lg := &logger{name: name, level: new(atomic.Int32)}
	lg.level.Store(int32(hclog.Trace))
	lg.l = l
	if name != "" {
		lg.l = l.With("group", name)
	}
	return lg
}

type logger struct {
	l       *slog.Logger
	name    string
	implied []any
	level   *atomic.Int32 // hclog.Level floor, shared by derived loggers
}

var _ hclog.Logger = (*logger)(nil)

// slogLevel maps an hclog level and message to a slog level.
func slogLevel(level hclog.Level, msg string) slog.Level {
	switch level {
	case hclog.Trace:
		return LevelTrace
	case hclog.Debug:
		return slog.LevelDebug
	case hclog.Info, hclog.NoLevel:
		if leadership[msg] {
			return slog.LevelInfo
		}
		return slog.LevelDebug
	case hclog.Warn:
		return slog.LevelWarn
	default:
		return slog.LevelError
	}
}

func (g *logger) enabled(level hclog.Level, msg string) bool {
	if level != hclog.NoLevel && level < hclog.Level(g.level.Load()) {
		return false
	}
	return g.l.Enabled(context.Background(), slogLevel(level, msg))
}

func (g *logger) Log(level hclog.Level, msg string, args ...any) {
	if level == hclog.Off || !g.enabled(level, msg) {
		return
	}
	g.l.Log(context.Background(), slogLevel(level, msg), msg, attrs(args)...)
}

// attrs turns hclog's key/value list into slog attributes. Values that
// are fmt.Stringers or errors become strings (raft passes *Raft, whose
// fields a JSON handler would otherwise dump).
func attrs(args []any) []any {
	out := make([]any, 0, (len(args)+1)/2)
	for i := 0; i < len(args); i += 2 {
		key, ok := args[i].(string)
		if !ok {
			key = fmt.Sprint(args[i])
		}
		if i+1 == len(args) {
			out = append(out, slog.Any("EXTRA_VALUE_AT_END", value(args[i])))
			break
		}
		out = append(out, slog.Any(key, value(args[i+1])))
	}
	return out
}

func value(v any) any {
	switch v := v.(type) {
	case nil, string, bool, int, int64, uint64, uint32, int32, float64, slog.Value:
		return v
	case error:
		return v.Error()
	case hclog.Format:
		if len(v) == 0 {
			return ""
		}
		f, _ := v[0].(string)
		return fmt.Sprintf(f, v[1:]...)
	case fmt.Stringer:
		return v.String()
	default:
		return v
	}
}

func (g *logger) Trace(msg string, args ...any) { g.Log(hclog.Trace, msg, args...) }
func (g *logger) Debug(msg string, args ...any) { g.Log(hclog.Debug, msg, args...) }
func (g *logger) Info(msg string, args ...any)  { g.Log(hclog.Info, msg, args...) }
func (g *logger) Warn(msg string, args ...any)  { g.Log(hclog.Warn, msg, args...) }
func (g *logger) Error(msg string, args ...any) { g.Log(hclog.Error, msg, args...) }

func (g *logger) IsTrace() bool { return g.enabled(hclog.Trace, "") }
func (g *logger) IsDebug() bool { return g.enabled(hclog.Debug, "") }
func (g *logger) IsInfo() bool {
	return g.enabled(hclog.Info, "") || g.enabled(hclog.Info, "entering leader state")
}
func (g *logger) IsWarn() bool  { return g.enabled(hclog.Warn, "") }
func (g *logger) IsError() bool { return g.enabled(hclog.Error, "") }

func (g *logger) ImpliedArgs() []any { return append([]any(nil), g.implied...) }

func (g *logger) With(args ...any) hclog.Logger {
	c := *g
	c.implied = append(append([]any(nil), g.implied...), args...)
	c.l = g.l.With(attrs(args)...)
	return &c
}

func (g *logger) Name() string { return g.name }

func (g *logger) Named(name string) hclog.Logger {
	if g.name != "" {
		name = g.name + "." + name
	}
	return g.ResetNamed(name)
}

// ResetNamed changes the name only; the "group" attribute set by New stays.
func (g *logger) ResetNamed(name string) hclog.Logger {
	c := *g
	c.name = name
	return &c
}

func (g *logger) SetLevel(level hclog.Level) { g.level.Store(int32(level)) }

func (g *logger) GetLevel() hclog.Level { return hclog.Level(g.level.Load()) }

func (g *logger) StandardLogger(opts *hclog.StandardLoggerOptions) *log.Logger {
	return log.New(g.StandardWriter(opts), "", 0)
}

// StandardWriter returns a writer that logs each write as one message, at
// opts.ForceLevel, else at the level of a leading "[ERROR]"-style tag when
// opts.InferLevels, else at Info.
func (g *logger) StandardWriter(opts *hclog.StandardLoggerOptions) io.Writer {
	if opts == nil {
		opts = &hclog.StandardLoggerOptions{}
	}
	return &stdWriter{g: g, opts: *opts}
}

type stdWriter struct {
	g    *logger
	opts hclog.StandardLoggerOptions
}

var tags = []struct {
	tag   string
	level hclog.Level
}{
	{"[TRACE]", hclog.Trace}, {"[DEBUG]", hclog.Debug}, {"[INFO]", hclog.Info},
	{"[WARN]", hclog.Warn}, {"[ERR]", hclog.Error}, {"[ERROR]", hclog.Error},
}

func (w *stdWriter) Write(p []byte) (int, error) {
	msg := string(bytes.TrimRight(p, " \t\r\n"))
	level := hclog.Info
	switch {
	case w.opts.ForceLevel != hclog.NoLevel:
		level = w.opts.ForceLevel
	case w.opts.InferLevels || w.opts.InferLevelsWithTimestamp:
		for _, t := range tags {
			if i := strings.Index(msg, t.tag); i >= 0 && (i == 0 || w.opts.InferLevelsWithTimestamp) {
				level = t.level
				msg = strings.TrimSpace(msg[i+len(t.tag):])
				break
			}
		}
	}
	w.g.Log(level, msg)
	return len(p), nil
}
