package main

import (
	"context"
	"flag"
	"fmt"
	"io"
	"net"

	"github.com/parley-chat/parley/cmd/internal/observe"
	"github.com/parley-chat/parley/system"
	"github.com/parley-chat/parley/web"
)

// loadServe reads serve's settings from args, the environment and the
// config file.
func loadServe(args []string, stderr io.Writer) (*system.Config, *processFlags, error) {
	return loadCommand("parley serve", args, stderr, coreFileKeys, metricsFlagUsage, func(fs *flag.FlagSet, s *system.Config) {
		fs.StringVar(&s.DataDir, "data", "./data", "data directory")
		fs.StringVar(&s.Core.RaftAddr, "raft", "127.0.0.1:0", "Raft listen address (unused by peers in one process)")
		fs.StringVar(&s.Core.NATS.ClientAddr, "nats", "127.0.0.1:4222", "NATS listen address for extra edges (\"-\": in-process only)")
		coreFlags(fs, &s.Core, "")
		edgeFlags(fs, &s.Edge, "127.0.0.1:8443")
	})
}

func runServe(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	s, proc, err := loadServe(args, stderr)
	if err != nil {
		return err
	}
	log, err := proc.logger(stderr)
	if err != nil {
		return err
	}
	var started func()
	s.Logger, started = quietStart(log)
	reg, err := proc.registry(ctx, s.Logger)
	if err != nil {
		return err
	}
	s.Metrics = reg
	s.Edge.WebApp = web.App()
	sys, err := system.Start(ctx, *s)
	if err != nil {
		return err
	}
	maddr, err := observe.ServeMetrics(ctx, proc.metrics, reg, sys.Ready, s.Logger)
	if err != nil {
		sys.Close()
		return err
	}
	printBanner(stdout, *s, sys, maddr)
	started()
	err = sys.Run(ctx)
	fmt.Fprintln(stdout, "parley serve: stopped")
	return err
}

// printBanner says where a started serve listens.
func printBanner(w io.Writer, cfg system.Config, sys *system.System, metrics net.Addr) {
	base := "http://" + sys.HTTPAddr()
	fmt.Fprintf(w, "parley serve: data in %s\n", cfg.DataDir)
	fmt.Fprintf(w, "  HTTP API  %s/v1   (OpenAPI: %s/v1/openapi.json, health: %s/healthz)\n", base, base, base)
	if a := sys.UDPAddr(); a != nil {
		fmt.Fprintf(w, "  QUIC      %s (ALPN parley/1)   WebTransport https://%s/v1/wt   WebSocket ws://%s/v1/ws\n", a, a, sys.HTTPAddr())
		fmt.Fprintf(w, "  cert      SHA-256 hashes for serverCertificateHashes: %s/.well-known/parley/cert-hashes\n", base)
	}
	if u := sys.NATSURL(); u != "" {
		fmt.Fprintf(w, "  NATS      %s   (more edges: parley edge --nats %s --token-keys %s)\n", u, u, cfg.TokenKeyFile())
	}
	if metrics != nil {
		fmt.Fprintf(w, "  metrics   http://%s/metrics   (readiness: http://%s/readyz)\n", metrics, metrics)
	}
	fmt.Fprintf(w, "  try       curl -s %s/v1/accounts -d '{\"workspace\":\"acme\",\"username\":\"ana\",\"password\":\"correct horse battery\"}'\n", base)
	fmt.Fprintln(w, "Ctrl-C stops.")
}
