// Command parley is the parley chat backend: one binary with subcommands.
//
//	parley serve   everything in one process on the embedded defaults
//	parley core    one core node of a multi-node region
//	parley edge    an edge (the /v1 HTTP API) against a region's NATS
//	parley bench   measure send acks over the HTTP API
//	parley keygen  write or rotate the edges' token key file
//	parley version the build's version and protocol version
package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/signal"
	"runtime/debug"
	"syscall"

	"github.com/parley-chat/parley/cmd/internal/settings"
	"github.com/parley-chat/parley/syncproto"
)

const usage = `parley — a self-hosted chat backend

Usage:
  parley serve   [flags]   run everything in one process (data under ./data)
  parley core    [flags]   run one core node of a region
  parley edge    [flags]   run an edge against a region's NATS
  parley bench   [flags]   measure send-ack latency and throughput over /v1
  parley keygen  FILE      write (or -rotate) the edges' token key file (-vapid: a Web Push key pair)
  parley reindex [flags]   rebuild a stopped core node's search index (resumable)
  parley version           print version information

Run "parley <command> -h" for a command's flags.
`

func main() {
	os.Exit(run(os.Args[1:], os.Stdout, os.Stderr))
}

func run(args []string, stdout, stderr io.Writer) int {
	if len(args) == 0 {
		fmt.Fprint(stderr, usage)
		return 2
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	var err error
	switch args[0] {
	case "serve":
		err = runServe(ctx, args[1:], stdout, stderr)
	case "core":
		err = runCore(ctx, args[1:], stdout, stderr)
	case "edge":
		err = runEdge(ctx, args[1:], stdout, stderr)
	case "bench":
		err = runBench(ctx, args[1:], stdout, stderr)
	case "keygen":
		err = runKeygen(args[1:], stdout, stderr)
	case "reindex":
		err = runReindex(ctx, args[1:], stdout, stderr)
	case "version":
		err = runVersion(args[1:], stdout, stderr)
	case "help", "-h", "--help":
		fmt.Fprint(stdout, usage)
		return 0
	default:
		fmt.Fprintf(stderr, "parley: unknown command %q\n\n%s", args[0], usage)
		return 2
	}
	if err != nil {
		switch {
		case errors.Is(err, settings.ErrHelp):
			return 0
		case errors.Is(err, settings.ErrUsage):
			return 2
		}
		fmt.Fprintf(stderr, "parley %s: %v\n", args[0], err)
		return 1
	}
	return 0
}

func runVersion(args []string, stdout, stderr io.Writer) error {
	if err := settings.Parse(settings.NewFlagSet("parley version", "", stderr, false), args); err != nil {
		return err
	}
	fmt.Fprintf(stdout, "parley %s (protocol %d)\n", version(), syncproto.ProtocolVersion)
	return nil
}

func version() string {
	if bi, ok := debug.ReadBuildInfo(); ok && bi.Main.Version != "" {
		return bi.Main.Version
	}
	return "dev"
}

func newLogger(w io.Writer, level string, json bool) (*slog.Logger, error) {
	var lv slog.Level
	if err := lv.UnmarshalText([]byte(level)); err != nil {
		return nil, fmt.Errorf("log level %q: %w", level, err)
	}
	opts := &slog.HandlerOptions{Level: lv}
	if json {
		return slog.New(slog.NewJSONHandler(w, opts)), nil
	}
	return slog.New(slog.NewTextHandler(w, opts)), nil
}
