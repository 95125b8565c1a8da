package main

import (
	"context"
	"errors"
	"expvar"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"net/http/pprof"
	"sync"
	"sync/atomic"
	"time"

	"github.com/hashicorp/go-metrics"

	"github.com/parley-chat/parley/bench"
	"github.com/parley-chat/parley/core"
	"github.com/parley-chat/parley/edge/session"
)

const debugFlagUsage = "serve Go profiles (/debug/pprof/), counters (/debug/vars) and Raft, WAL and fsync metrics (/debug/raft) on this address, e.g. 127.0.0.1:6060 (default off)"

// serveDebug serves Go's profiling endpoints (/debug/pprof/) on addr
// until ctx ends; "" serves nothing. Bind it to loopback: profiles show
// internals.
func serveDebug(ctx context.Context, addr string, log *slog.Logger) error {
	if addr == "" {
		return nil
	}
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return fmt.Errorf("debug listener: %w", err)
	}
	mux := http.NewServeMux()
	mux.HandleFunc("/debug/pprof/", pprof.Index)
	mux.HandleFunc("/debug/pprof/cmdline", pprof.Cmdline)
	mux.HandleFunc("/debug/pprof/profile", pprof.Profile)
	mux.HandleFunc("/debug/pprof/symbol", pprof.Symbol)
	mux.HandleFunc("/debug/pprof/trace", pprof.Trace)
	mux.Handle("/debug/vars", expvar.Handler())
	// Raft's and the fsync syncer's timers over the last minute.
	sink := metrics.NewInmemSink(10*time.Second, time.Minute)
	mc := metrics.DefaultConfig("parley")
	mc.EnableHostname, mc.EnableRuntimeMetrics = false, false
	if _, err := metrics.NewGlobal(mc, sink); err != nil {
		return fmt.Errorf("debug metrics: %w", err)
	}
	mux.HandleFunc("/debug/raft", func(w http.ResponseWriter, _ *http.Request) { bench.WriteRaftStats(w, sink) })
	srv := &http.Server{Handler: mux, ReadHeaderTimeout: 10 * time.Second}
	go func() {
		<-ctx.Done()
		_ = srv.Close()
	}()
	go func() {
		if err := srv.Serve(ln); err != nil && !errors.Is(err, http.ErrServerClosed) {
			log.Warn("debug server stopped", "err", err)
		}
	}()
	log.Info("debug endpoints", "addr", ln.Addr().String())
	return nil
}

// typingVars is what /debug/vars shows as parley_typing: the counters of
// the running system's edge and core (typing received, dropped by reason,
// fanned out, shed under load).
var (
	typingVars     atomic.Pointer[typingSources]
	typingVarsOnce sync.Once
)

type typingSources struct {
	edge func() session.TypingStats
	core func() core.TypingStats
}

func publishTypingVars(edge func() session.TypingStats, core func() core.TypingStats) {
	typingVars.Store(&typingSources{edge, core})
	typingVarsOnce.Do(func() {
		expvar.Publish("parley_typing", expvar.Func(func() any {
			src := typingVars.Load()
			return map[string]any{"edge": src.edge(), "core": src.core()}
		}))
	})
}
