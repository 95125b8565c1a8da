package main

import (
	"context"
	"log/slog"
	"sync/atomic"
)

// startupHandler logs what is below Error at Debug while starting is set:
// a starting process's chatter (Raft elections, listeners) stays out of
// the way of the banner that says where to connect, and shows with
// --log-level debug.
type startupHandler struct {
	h        slog.Handler
	starting *atomic.Bool
}

// quietStart wraps l's handler; call the returned func once started.
func quietStart(l *slog.Logger) (*slog.Logger, func()) {
	starting := new(atomic.Bool)
	starting.Store(true)
	return slog.New(startupHandler{h: l.Handler(), starting: starting}), func() { starting.Store(false) }
}

func (s startupHandler) level(l slog.Level) slog.Level {
	if l < slog.LevelError && s.starting.Load() {
		return slog.LevelDebug
	}
	return l
}

func (s startupHandler) Enabled(ctx context.Context, l slog.Level) bool {
	return s.h.Enabled(ctx, s.level(l))
}

func (s startupHandler) Handle(ctx context.Context, r slog.Record) error {
	if lv := s.level(r.Level); lv != r.Level {
		if !s.h.Enabled(ctx, lv) {
			return nil
		}
		r.Level = lv
	}
	return s.h.Handle(ctx, r)
}

func (s startupHandler) WithAttrs(as []slog.Attr) slog.Handler {
	return startupHandler{h: s.h.WithAttrs(as), starting: s.starting}
}

func (s startupHandler) WithGroup(name string) slog.Handler {
	return startupHandler{h: s.h.WithGroup(name), starting: s.starting}
}
