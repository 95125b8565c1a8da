// Package observe serves what a parley process shows of itself: its
// Prometheus registry on /metrics, liveness and readiness, and Go's
// profiles on a debug address.
package observe

import (
	"context"
	"errors"
	"expvar"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"net/http/pprof"
	"time"

	"github.com/hashicorp/go-metrics"
	gmprom "github.com/hashicorp/go-metrics/prometheus"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"
)

// NewRegistry returns a process's Prometheus registry: the Go runtime's
// and the process's collectors, and hashicorp/raft's go-metrics through
// the go-metrics Prometheus sink (as parley_raft_*; raft reports to
// go-metrics' process-global sink, which this sets to reg's). parley's own
// series are registered by the edge and core given reg in their Config.
func NewRegistry() (*prometheus.Registry, error) {
	reg := prometheus.NewRegistry()
	reg.MustRegister(collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	sink, err := gmprom.NewPrometheusSinkFrom(gmprom.PrometheusOpts{Registerer: reg, Name: "parley_go_metrics_sink"})
	if err != nil {
		return nil, fmt.Errorf("metrics: go-metrics sink: %w", err)
	}
	mc := metrics.DefaultConfig("parley")
	mc.EnableHostname, mc.EnableRuntimeMetrics, mc.EnableServiceLabel = false, false, false
	if _, err := metrics.NewGlobal(mc, sink); err != nil {
		return nil, fmt.Errorf("metrics: go-metrics: %w", err)
	}
	return reg, nil
}

// Mux serves reg's series on /metrics and liveness on /livez; with
// ready, readiness on /readyz too (200 when ready returns nil, else 503
// with its error).
func Mux(reg prometheus.Gatherer, ready func() error) *http.ServeMux {
	mux := http.NewServeMux()
	mux.Handle("GET /metrics", promhttp.HandlerFor(reg, promhttp.HandlerOpts{}))
	mux.HandleFunc("GET /livez", func(w http.ResponseWriter, _ *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		_, _ = w.Write([]byte(`{"status":"ok"}` + "\n"))
	})
	if ready != nil {
		mux.HandleFunc("GET /readyz", func(w http.ResponseWriter, _ *http.Request) {
			w.Header().Set("Content-Type", "text/plain; charset=utf-8")
			if err := ready(); err != nil {
				w.WriteHeader(http.StatusServiceUnavailable)
				fmt.Fprintln(w, err)
				return
			}
			fmt.Fprintln(w, "ready")
		})
	}
	return mux
}

// ServeMetrics serves Mux on addr until ctx ends; "" serves
// nothing (nil address).
func ServeMetrics(ctx context.Context, addr string, reg prometheus.Gatherer, ready func() error, log *slog.Logger) (net.Addr, error) {
	if addr == "" {
		return nil, nil
	}
	return serveHTTP(ctx, addr, "metrics", Mux(reg, ready), log)
}

// ServeDebug serves Go's profiling endpoints (/debug/pprof/), expvar
// (/debug/vars) and reg's series (/metrics) on addr until ctx ends; ""
// serves nothing. Bind it to loopback: profiles show internals.
func ServeDebug(ctx context.Context, addr string, reg prometheus.Gatherer, log *slog.Logger) error {
	if addr == "" {
		return nil
	}
	mux := http.NewServeMux()
	mux.HandleFunc("/debug/pprof/", pprof.Index)
	mux.HandleFunc("/debug/pprof/cmdline", pprof.Cmdline)
	mux.HandleFunc("/debug/pprof/profile", pprof.Profile)
	mux.HandleFunc("/debug/pprof/symbol", pprof.Symbol)
	mux.HandleFunc("/debug/pprof/trace", pprof.Trace)
	mux.Handle("/debug/vars", expvar.Handler())
	mux.Handle("GET /metrics", promhttp.HandlerFor(reg, promhttp.HandlerOpts{}))
	_, err := serveHTTP(ctx, addr, "debug", mux, log)
	return err
}

// serveHTTP listens on addr and serves h until ctx ends.
func serveHTTP(ctx context.Context, addr, name string, h http.Handler, log *slog.Logger) (net.Addr, error) {
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return nil, fmt.Errorf("%s listener: %w", name, err)
	}
	srv := &http.Server{Handler: h, ReadHeaderTimeout: 10 * time.Second}
	go func() {
		<-ctx.Done()
		_ = srv.Close()
	}()
	go func() {
		if err := srv.Serve(ln); err != nil && !errors.Is(err, http.ErrServerClosed) {
			log.Warn(name+" server stopped", "err", err)
		}
	}()
	log.Info(name+" endpoints", "addr", ln.Addr().String())
	return ln.Addr(), nil
}
