package main

import (
	"context"
	"errors"
	"flag"
	"io"
	"log/slog"
	"strconv"

	"github.com/prometheus/client_golang/prometheus"
	"golang.org/x/time/rate"

	"github.com/parley-chat/parley/cmd/internal/observe"
	"github.com/parley-chat/parley/cmd/internal/settings"
	"github.com/parley-chat/parley/core"
	"github.com/parley-chat/parley/edge"
)

// coreFileKeys are the config file keys of serve's and core's flags that
// are not the flag's name with _ for -.
var coreFileKeys = map[string]string{
	"id":           "node_id",
	"data":         "data_dir",
	"raft":         "raft_addr",
	"nats":         "nats.client_addr",
	"nats-cluster": "nats.cluster_addr",
	"nats-routes":  "nats.routes",
}

// edgeFileKeys are the edge's.
var edgeFileKeys = map[string]string{"nats": "nats.urls"}

// coreFlags adds the flags serve and core share: the region's layout and
// delivery.
func coreFlags(fs *flag.FlagSet, c *core.Config, onEveryNode string) {
	fs.IntVar(&c.ShardCount, "shards", 0, "number of shard groups (default 16; fixed once data exists"+onEveryNode+")")
	fs.IntVar(&c.LargeGroup, "large-group", 0, "member count above which a group's deliveries go once per edge on its conversation subject (default 100; -1: never)")
	fs.Var(settings.List{P: &c.Presence.Off}, "presence-off", "workspace ids whose presence is not shown: id,..."+onEveryNode)
	pushFlags(fs, c, onEveryNode)
	fs.Func("search", "message search engine: bleve (an index in search/ of the core's data directory), typesense, or off (default bleve)", func(s string) error {
		switch s {
		case "off":
			c.Search.Disabled = true
		case core.SearchBleve, core.SearchTypesense:
			c.Search.Engine = s
		default:
			return errors.New("want bleve, typesense or off")
		}
		return nil
	})
	fs.StringVar(&c.Search.TypesenseURL, "search-typesense-url", "", "the Typesense cluster of --search typesense (http://host:8108)")
	fs.StringVar(&c.Search.TypesenseKey, "search-typesense-key", "", "the Typesense API key of --search typesense")
	fs.IntVar(&c.Search.BatchSize, "search-batch", 0, "most messages indexed in one batch (default 2000)")
}

// edgeFlags adds the flags serve and edge share: the edge's listeners,
// limits, tokens and presence timing. udp is the UDP port's default.
func edgeFlags(fs *flag.FlagSet, c *edge.Config, udp string) {
	fs.StringVar(&c.HTTPAddr, "http", edge.DefaultHTTPAddr, "HTTP API listen address")
	fs.StringVar(&c.QUIC.Addr, "udp", udp, "QUIC and WebTransport (HTTP/3) UDP listen address (\"\": none)")
	fs.StringVar(&c.Cert.CertFile, "cert", "", "TLS certificate (PEM) for the UDP port (default: a self-signed dev certificate)")
	fs.StringVar(&c.Cert.KeyFile, "key", "", "TLS key (PEM) for -cert")
	fs.DurationVar(&c.Session.KeepAlive, "keepalive", 0, "how often idle devices ping (announced in Welcome; 3 missed pings end a session; default 25s)")
	fs.Float64Var((*float64)(&c.HTTP.IPRate), "ip-rate", 0, "unauthenticated calls (sign-up, log-in) per second per client IP (default 5)")
	fs.IntVar(&c.HTTP.IPBurst, "ip-burst", 0, "unauthenticated call burst per client IP (default 20)")
	fs.Func("device-rate", "frames per second per device session, burst twice that (default 100)", func(s string) error {
		r, err := strconv.ParseFloat(s, 64)
		c.Session.FrameRate, c.Session.FrameBurst = rate.Limit(r), int(2*r)
		return err
	})
	fs.Float64Var((*float64)(&c.HTTP.UserRate), "user-rate", 0, "API calls per second per user (default 20)")
	fs.IntVar(&c.HTTP.UserBurst, "user-burst", 0, "API call burst per user (default 40)")
	fs.Float64Var((*float64)(&c.Session.TypingRate), "typing-rate", 0, "typing indicators per second per device; more are dropped (default 2)")
	fs.IntVar(&c.Session.TypingBurst, "typing-burst", 0, "typing indicator burst per device (default 4)")
	fs.DurationVar(&c.TypingShedWait, "typing-shed-wait", 0, "shed typing while 10% of the edge's goroutine wake-ups wait this long for a CPU (default 5ms; negative: never)")
	login := &c.HTTP.LoginThrottle
	fs.IntVar(&login.FreeFailures, "login-free-failures", 0, "failed log-ins in a row an account may have, from any IP, before its next attempt waits (default 3)")
	fs.DurationVar(&login.BaseDelay, "login-delay", 0, "an account's wait after its first failed log-in beyond the free ones, doubling with each further one (default 1s)")
	fs.DurationVar(&login.MaxDelay, "login-delay-max", 0, "the longest wait before an account's next log-in (default 1m; negative: no per-account throttle)")
	fs.Func("cors-origins", "origins whose pages may call /v1 from a browser: https://app.example.com,... or * for any (default none: same-origin only)", func(s string) error {
		c.HTTP.CORS.AllowedOrigins = settings.SplitList(s)
		return c.HTTP.CORS.Validate()
	})
	fs.DurationVar(&c.Auth.RefreshGrace, "refresh-grace", 0, "how long after a refresh the refresh token it replaced still gets the same new one, for a client whose answer was lost (default 30s, at most 5m; negative: none, so a second use revokes the device)")
	fs.DurationVar(&c.Presence.Interval, "presence-interval", 0, "how often the edge renews its presence lease with the cores (default 500ms)")
	fs.DurationVar(&c.Presence.Lease, "presence-lease", 0, "how long the cores keep a silent edge's users online (default 1.5s; at least twice -presence-interval)")
}

// loadCommand reads the settings S of serve, core or edge: flags adds the
// command's own to fs, bound to S's fields; then come the process flags,
// and settings.Load reads them all from args, the environment and the
// config file.
func loadCommand[S any](name string, args []string, stderr io.Writer, fileKeys map[string]string, metricsUsage string,
	flags func(*flag.FlagSet, *S)) (*S, *processFlags, error) {
	fs := settings.NewFlagSet(name, "[flags]", stderr, true)
	s := new(S)
	flags(fs, s)
	proc := addProcessFlags(fs, metricsUsage)
	if err := settings.Load(fs, args, fileKeys); err != nil {
		return nil, nil, err
	}
	return s, proc, nil
}

const metricsFlagUsage = "serve Prometheus metrics (/metrics), liveness (/livez) and readiness (/readyz) on this address, e.g. 127.0.0.1:9090 (default off)"

// processFlags are what every long-running command has: logging and the
// metrics and debug listeners.
type processFlags struct {
	logLevel, debug, metrics string
	logJSON                  bool
}

func addProcessFlags(fs *flag.FlagSet, metricsUsage string) *processFlags {
	p := &processFlags{}
	fs.StringVar(&p.logLevel, "log-level", "info", "debug, info, warn or error")
	fs.BoolVar(&p.logJSON, "log-json", false, "log as JSON")
	fs.StringVar(&p.debug, "debug", "", "serve Go profiles (/debug/pprof/), counters (/debug/vars) and the Prometheus metrics (/metrics) on this address, e.g. 127.0.0.1:6060 (default off); keep it on loopback")
	fs.StringVar(&p.metrics, "metrics", "", metricsUsage)
	return p
}

// logger is the process's logger, to stderr.
func (p *processFlags) logger(stderr io.Writer) (*slog.Logger, error) {
	return newLogger(stderr, p.logLevel, p.logJSON)
}

// registry makes the process's metrics registry and serves the debug
// address while ctx lasts.
func (p *processFlags) registry(ctx context.Context, log *slog.Logger) (*prometheus.Registry, error) {
	reg, err := observe.NewRegistry()
	if err != nil {
		return nil, err
	}
	if err := observe.ServeDebug(ctx, p.debug, reg, log); err != nil {
		return nil, err
	}
	return reg, nil
}
