package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"time"

	"golang.org/x/time/rate"

	"github.com/parley-chat/parley/cmd/internal/observe"
	"github.com/parley-chat/parley/edge"
	"github.com/parley-chat/parley/edge/auth"
	"github.com/parley-chat/parley/edge/httpapi"
)

func runEdge(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := flag.NewFlagSet("parley edge", flag.ContinueOnError)
	fs.SetOutput(stderr)
	natsURL := fs.String("nats", "nats://127.0.0.1:4222", "the region's NATS (any core node's client URL; comma-separated for several)")
	httpAddr := fs.String("http", edge.DefaultHTTPAddr, "HTTP API listen address")
	udpAddr := fs.String("udp", "", "QUIC and WebTransport (HTTP/3) UDP listen address (default none)")
	certFile := fs.String("cert", "", "TLS certificate (PEM) for -udp (default: a self-signed dev certificate in -cert-dir)")
	tlsKey := fs.String("key", "", "TLS key (PEM) for -cert")
	certDir := fs.String("cert-dir", "", "where the dev certificate is kept (default: a new one per run)")
	keepalive := fs.Duration("keepalive", 0, "how often idle devices ping (announced in Welcome; 3 missed pings end a session; default 25s)")
	idle := fs.Duration("idle-timeout", 0, "close QUIC connections silent this long (default 60s)")
	keyFile := fs.String("token-keys", "", "token key file shared by the region's edges (see parley keygen)")
	region := fs.String("region", "", "region name (default \"local\")")
	userRate := fs.Float64("user-rate", 0, "API calls per second per user (default 20)")
	userBurst := fs.Int("user-burst", 0, "API call burst per user (default 40)")
	ipRate := fs.Float64("ip-rate", 0, "unauthenticated calls (sign-up, log-in) per second per client IP (default 5)")
	ipBurst := fs.Int("ip-burst", 0, "unauthenticated call burst per client IP (default 20)")
	deviceRate := fs.Float64("device-rate", 0, "frames per second per device session, burst twice that (default 100)")
	typingRate := fs.Float64("typing-rate", 0, "typing indicators per second per device; more are dropped (default 2)")
	typingBurst := fs.Int("typing-burst", 0, "typing indicator burst per device (default 4)")
	typingShedWait := fs.Duration("typing-shed-wait", 0, "shed typing while 10% of the edge's goroutine wake-ups wait this long for a CPU (default 5ms; negative: never)")
	var login auth.ThrottleConfig
	var cors httpapi.CORSConfig
	accessFlags(fs, &login, &cors)
	refreshGrace := fs.Duration("refresh-grace", 0, "how long after a refresh the refresh token it replaced still gets the same new one, for a client whose answer was lost (default 30s, at most 5m; negative: none, so a second use revokes the device)")
	var presInterval, presLease time.Duration
	presenceFlags(fs, &presInterval, &presLease)
	logLevel := fs.String("log-level", "info", "debug, info, warn or error")
	logJSON := fs.Bool("log-json", false, "log as JSON")
	debugAddr := fs.String("debug", "", debugFlagUsage)
	metricsAddr := fs.String("metrics", "", "serve Prometheus metrics (/metrics) and liveness (/livez) on this address, e.g. 127.0.0.1:9090 (default off); the edge's readiness is /readyz on its HTTP API")
	if err := parseFlags(fs, args); err != nil {
		return err
	}
	if *keyFile == "" {
		fmt.Fprintln(stderr, "parley edge: --token-keys is required (create one with: parley keygen FILE)")
		return errUsage
	}
	keys, err := readKeyFile(*keyFile)
	if err != nil {
		return fmt.Errorf("token keys: %w", err)
	}
	log, err := newLogger(stderr, *logLevel, *logJSON)
	if err != nil {
		return err
	}
	reg, err := observe.NewRegistry()
	if err != nil {
		return err
	}
	if err := observe.ServeDebug(ctx, *debugAddr, reg, log); err != nil {
		return err
	}
	if _, err := observe.ServeMetrics(ctx, *metricsAddr, reg, nil, log); err != nil {
		return err
	}
	e, err := edge.New(edge.Config{
		HTTPAddr: *httpAddr, NATSURL: *natsURL, Region: *region, TokenKeys: keys, RefreshGrace: *refreshGrace,
		UserRate: rate.Limit(*userRate), UserBurst: *userBurst, Logger: log,
		IPRate: rate.Limit(*ipRate), IPBurst: *ipBurst, FrameRate: rate.Limit(*deviceRate), FrameBurst: int(2 * *deviceRate),
		TypingRate: rate.Limit(*typingRate), TypingBurst: *typingBurst, TypingShedWait: *typingShedWait,
		UDPAddr: *udpAddr, CertFile: *certFile, KeyFile: *tlsKey, DevCertDir: *certDir, IdleTimeout: *idle, KeepAlive: *keepalive,
		PresenceInterval: presInterval, PresenceLease: presLease, LoginThrottle: login, CORS: cors, Metrics: reg,
	})
	if err != nil {
		return err
	}
	fmt.Fprintf(stdout, "parley edge: HTTP API http://%s/v1, WebSocket ws://%s/v1/ws, core via %s\n", e.Addr(), e.Addr(), *natsURL)
	if a := e.UDPAddr(); a != nil {
		fmt.Fprintf(stdout, "parley edge: QUIC %s (ALPN parley/1), WebTransport https://%s/v1/wt\n", a, a)
	}
	return e.Run(ctx)
}

// runKeygen writes a new token key file, or with -rotate puts a new key
// first in an existing one (old keys keep verifying until removed).
func runKeygen(args []string, stdout, stderr io.Writer) error {
	fs := flag.NewFlagSet("parley keygen", flag.ContinueOnError)
	fs.SetOutput(stderr)
	rotate := fs.Bool("rotate", false, "add a new signing key to an existing file")
	id := fs.String("id", "", "key id (default k<n>)")
	vapid := fs.Bool("vapid", false, "write a VAPID key pair for Web Push instead (see docs/push.md)")
	if err := parseFlags(fs, args); err != nil {
		return err
	}
	if fs.NArg() != 1 {
		fmt.Fprintln(stderr, "usage: parley keygen [-rotate] [-id ID] FILE | parley keygen -vapid FILE")
		return errUsage
	}
	if *vapid {
		return runKeygenVAPID(fs.Arg(0), stdout)
	}
	path := fs.Arg(0)
	var keys []auth.Key
	if *rotate {
		var err error
		if keys, err = readKeyFile(path); err != nil {
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
	if err := writeKeyFile(path, append([]auth.Key{k}, keys...)); err != nil {
		return err
	}
	fmt.Fprintf(stdout, "wrote %s: key %s signs, %d older keys verify\n", path, kid, len(keys))
	return nil
}
