package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"

	"github.com/parley-chat/parley/cmd/internal/observe"
	"github.com/parley-chat/parley/cmd/internal/settings"
	"github.com/parley-chat/parley/edge"
	"github.com/parley-chat/parley/edge/auth"
	"github.com/parley-chat/parley/web"
)

// edgeSettings are `parley edge`'s settings: the edge and its key file.
type edgeSettings struct {
	edge.Config
	keyFile string
}

// loadEdge reads edge's settings from args, the environment and the
// config file.
func loadEdge(args []string, stderr io.Writer) (*edgeSettings, *processFlags, error) {
	const metricsUsage = "serve Prometheus metrics (/metrics) and liveness (/livez) on this address, e.g. 127.0.0.1:9090 (default off); " +
		"the edge's readiness is /readyz on its HTTP API"
	s, proc, err := loadCommand("parley edge", args, stderr, edgeFileKeys, metricsUsage, func(fs *flag.FlagSet, s *edgeSettings) {
		fs.StringVar(&s.NATSURL, "nats", "nats://127.0.0.1:4222", "the region's NATS (any core node's client URL; comma-separated for several)")
		edgeFlags(fs, &s.Config, "")
		fs.StringVar(&s.Cert.Dir, "cert-dir", "", "where the dev certificate is kept (default: a new one per run)")
		fs.DurationVar(&s.QUIC.IdleTimeout, "idle-timeout", 0, "close QUIC connections silent this long (default 60s)")
		fs.StringVar(&s.keyFile, "token-keys", "", "token key file shared by the region's edges (see parley keygen)")
		fs.StringVar(&s.Region, "region", "", "region name (default \"local\")")
	})
	if err != nil {
		return nil, nil, err
	}
	if s.keyFile == "" {
		fmt.Fprintln(stderr, "parley edge: --token-keys is required (create one with: parley keygen FILE)")
		return nil, nil, settings.ErrUsage
	}
	return s, proc, nil
}

func runEdge(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	s, proc, err := loadEdge(args, stderr)
	if err != nil {
		return err
	}
	if s.Auth.Keys, err = auth.ReadKeyFile(s.keyFile); err != nil {
		return fmt.Errorf("token keys: %w", err)
	}
	log, err := proc.logger(stderr)
	if err != nil {
		return err
	}
	reg, err := proc.registry(ctx, log)
	if err != nil {
		return err
	}
	if _, err := observe.ServeMetrics(ctx, proc.metrics, reg, nil, log); err != nil {
		return err
	}
	s.Logger, s.Metrics, s.WebApp = log, reg, web.App()
	e, err := edge.New(s.Config)
	if err != nil {
		return err
	}
	fmt.Fprintf(stdout, "parley edge: HTTP API http://%s/v1, WebSocket ws://%s/v1/ws, core via %s\n", e.Addr(), e.Addr(), s.NATSURL)
	if a := e.UDPAddr(); a != nil {
		fmt.Fprintf(stdout, "parley edge: QUIC %s (ALPN parley/1), WebTransport https://%s/v1/wt\n", a, a)
	}
	return e.Run(ctx)
}

// runKeygen writes a new token key file, or with -rotate puts a new key
// first in an existing one (old keys keep verifying until removed).
func runKeygen(args []string, stdout, stderr io.Writer) error {
	fs := settings.NewFlagSet("parley keygen", "[-rotate] [-id ID] FILE | -vapid FILE", stderr, false)
	rotate := fs.Bool("rotate", false, "add a new signing key to an existing file")
	id := fs.String("id", "", "key id (default k<n>)")
	vapid := fs.Bool("vapid", false, "write a VAPID key pair for Web Push instead (see docs/push.md)")
	if err := settings.Parse(fs, args); err != nil {
		return err
	}
	if fs.NArg() != 1 {
		fs.Usage()
		return settings.ErrUsage
	}
	if *vapid {
		return runKeygenVAPID(fs.Arg(0), stdout)
	}
	path := fs.Arg(0)
	var keys []auth.Key
	if *rotate {
		var err error
		if keys, err = auth.ReadKeyFile(path); err != nil {
			return err
		}
	} else if _, err := os.Stat(path); err == nil {
		return fmt.Errorf("%s exists (use -rotate to add a key)", path)
	} else if !errors.Is(err, os.ErrNotExist) {
		return err
	}
	kid := *id
	if kid == "" {
		kid = fmt.Sprintf("k%d", len(keys)+1)
	}
	for _, k := range keys {
		if k.ID == kid {
			return fmt.Errorf("key id %q already in %s", kid, path)
		}
	}
	k, err := auth.GenerateKey(kid)
	if err != nil {
		return err
	}
	if err := auth.WriteKeyFile(path, append([]auth.Key{k}, keys...)); err != nil {
		return err
	}
	fmt.Fprintf(stdout, "wrote %s: key %s signs, %d older keys verify\n", path, kid, len(keys))
	return nil
}
