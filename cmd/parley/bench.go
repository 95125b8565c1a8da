package main

import (
	"context"
	"flag"
	"fmt"
	"io"
	"log/slog"

	"golang.org/x/time/rate"

	"github.com/parley-chat/parley/bench"
	"github.com/parley-chat/parley/cmd/internal/observe"
	"github.com/parley-chat/parley/cmd/internal/settings"
	"github.com/parley-chat/parley/core"
	"github.com/parley-chat/parley/edge"
	"github.com/parley-chat/parley/edge/httpapi"
	"github.com/parley-chat/parley/edge/quicport"
	"github.com/parley-chat/parley/edge/session"
	"github.com/parley-chat/parley/system"
)

// runBench is `parley bench`: its flags into a bench config, with this
// binary's systems as the bench's in-process hooks, then the run.
func runBench(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	httpCfg := bench.HTTPConfig{Start: startBenchSystem, Launch: launchBench}
	sdkCfg := bench.SDKConfig{Start: startBenchSystem}
	fs := flag.NewFlagSet("parley bench", flag.ContinueOnError)
	fs.SetOutput(stderr)
	run := func() error { return bench.RunHTTP(ctx, httpCfg, stdout, stderr) }
	if t := bench.Transport(args); t != "" && t != "http" {
		fs.Init("parley bench -transport ws", flag.ContinueOnError)
		sdkCfg.AddFlags(fs)
		run = func() error { return bench.RunSDK(ctx, sdkCfg, stdout, stderr) }
	} else {
		httpCfg.AddFlags(fs)
	}
	if err := settings.Parse(fs, args); err != nil {
		return err
	}
	return run()
}

// benchSystem is a serve system run for the bench (-spawn serve, -self).
type benchSystem struct {
	s       *system.System
	stop    func()
	metrics string
}

var _ bench.System = (*benchSystem)(nil)

// startBenchSystem is the bench's StartFunc: system.Start on loopback with
// the limits lifted.
func startBenchSystem(ctx context.Context, c bench.SystemConfig) (bench.System, error) {
	udp := ""
	if c.UDP {
		udp = "127.0.0.1:0"
	}
	reg, err := observe.NewRegistry()
	if err != nil {
		return nil, err
	}
	s, err := system.Start(ctx, system.Config{DataDir: c.DataDir, Metrics: reg,
		Core: core.Config{NATS: core.NATSConfig{ClientAddr: "-"}, RaftAddr: "127.0.0.1:0", ShardCount: c.Shards},
		Edge: edge.Config{HTTPAddr: "127.0.0.1:0", QUIC: quicport.Config{Addr: udp},
			Session: session.Config{FrameRate: 1e6, FrameBurst: 2e6, TypingRate: rate.Limit(c.TypingRate), TypingBurst: c.TypingBurst},
			HTTP:    httpapi.Config{UserRate: 1e6, UserBurst: 1e6, IPRate: 1e6, IPBurst: 1e6}}})
	if err != nil {
		return nil, err
	}
	rctx, cancel := context.WithCancel(context.WithoutCancel(ctx))
	done := make(chan struct{})
	go func() { defer close(done); _ = s.Run(rctx) }()
	b := &benchSystem{s: s, stop: func() { cancel(); <-done }}
	addr, err := observe.ServeMetrics(rctx, "127.0.0.1:0", reg, nil, slog.New(slog.DiscardHandler))
	if err != nil {
		b.Close()
		return nil, err
	}
	b.metrics = "http://" + addr.String() + "/metrics"
	return b, nil
}

func (b *benchSystem) URL() string        { return "http://" + b.s.HTTPAddr() }
func (b *benchSystem) Sessions() int      { return b.s.Edge().Sessions() }
func (b *benchSystem) Close()             { b.stop() }
func (b *benchSystem) MetricsURL() string { return b.metrics }

func (b *benchSystem) UDPAddr() string {
	if a := b.s.UDPAddr(); a != nil {
		return a.String()
	}
	return ""
}

func (b *benchSystem) TypingStats() (bench.EdgeTypingStats, bench.CoreTypingStats) {
	return bench.EdgeTypingStats(b.s.Edge().TypingStats()), bench.CoreTypingStats(b.s.Node().TypingStats())
}

// launchBench is the bench's LaunchFunc (-spawn region3): a subcommand
// in this process.
func launchBench(ctx context.Context, args []string, out io.Writer) error {
	switch args[0] {
	case "core":
		return runCore(ctx, args[1:], out, out)
	case "edge":
		return runEdge(ctx, args[1:], out, out)
	case "keygen":
		return runKeygen(args[1:], out, out)
	}
	return fmt.Errorf("bench: cannot launch %q", args[0])
}
