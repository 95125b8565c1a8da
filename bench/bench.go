// Package bench is the load generator behind `parley bench`. It speaks to
// a system only as clients do (the /v1 API with client/rest, device
// sessions with the Go SDK), in two modes:
//
//   - RunHTTP (HTTPConfig): sends over /v1 as fast as acks come back,
//     measuring the send-ack latency.
//   - RunSDK (SDKConfig): device sessions over WebSocket, raw QUIC or
//     WebTransport; send-ack and send-to-delivery latency, every delivery
//     checked for loss, duplicates and order, optionally idle sessions and
//     the edge's memory per session, and typing load.
//
// The system under test is a running edge given by URL, a region of
// `parley core` and `parley edge` processes the bench starts from a
// binary, or a system in this process. The bench cannot build one in this
// process itself (it imports neither edge/ nor core/): the caller passes a
// StartFunc (a serve system) and a LaunchFunc (parley's subcommands), and
// the measures that need the system in-process (the heap and goroutine
// split between edge and clients, the edge's and core's typing counters,
// Raft's metrics, CPU profiles that include the system) come through them.
package bench

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"strings"
	"sync"
	"time"

	"github.com/parley-chat/parley/client/rest"
	"github.com/parley-chat/parley/syncproto/syncpb"
)

// System is a serve system (one core node and an edge) running in this
// process, started by a StartFunc. Its methods are safe to call
// concurrently until Close.
type System interface {
	// URL is the edge's HTTP base URL (http://host:port).
	URL() string
	// UDPAddr is the edge's QUIC and WebTransport address ("" for none).
	UDPAddr() string
	// Sessions counts the edge's live device sessions.
	Sessions() int
	// MetricsURL is where the system serves its Prometheus /metrics ("":
	// nowhere).
	MetricsURL() string
	// TypingStats are the edge's and the core's typing counters.
	TypingStats() (EdgeTypingStats, CoreTypingStats)
	// Close stops the system and waits until it has stopped.
	Close()
}

// SystemConfig is the system a StartFunc starts. Its per-user, per-IP
// and per-device limits are lifted: the bench's clients all come from one
// address and send far faster than a person.
type SystemConfig struct {
	DataDir string
	Shards  int
	UDP     bool // also serve QUIC and WebTransport (on a free loopback port)
	// TypingRate and TypingBurst: the edge's per-device typing limit (0:
	// its default).
	TypingRate  float64
	TypingBurst int
}

// StartFunc starts a System in this process and returns once it is
// ready; on an error nothing is left running.
type StartFunc func(ctx context.Context, cfg SystemConfig) (System, error)

// LaunchFunc runs one parley subcommand in this process, as it would run
// as a process: args as on its command line (args[0] is "core", "edge" or
// "keygen"), its output to out. It returns when the command ends; "core"
// and "edge" end when ctx does.
type LaunchFunc func(ctx context.Context, args []string, out io.Writer) error

// errNoStart is returned for a mode that needs a system in this process
// when the caller passed no StartFunc or LaunchFunc.
var errNoStart = errors.New("bench: no way to start a system in this process (StartFunc or LaunchFunc is nil)")

// Transport returns the value of a -transport flag in args ("" if there
// is none), so that a command can hand the whole command line to the
// mode that owns the other flags: "http" (or "") is RunHTTP's, the others
// RunSDK's.
func Transport(args []string) string {
	for i, a := range args {
		if a == "--" || !strings.HasPrefix(a, "-") {
			return ""
		}
		name := strings.TrimPrefix(strings.TrimPrefix(a, "-"), "-")
		if v, ok := strings.CutPrefix(name, "transport="); ok {
			return v
		}
		if name == "transport" && i+1 < len(args) {
			return args[i+1]
		}
	}
	return ""
}

func ms(d time.Duration) string { return fmt.Sprintf("%.2fms", float64(d)/float64(time.Millisecond)) }

func msf(d time.Duration) float64 { return float64(d) / float64(time.Millisecond) }

func loadAvg() string {
	b, err := os.ReadFile("/proc/loadavg")
	if err != nil {
		return "?"
	}
	f := strings.Fields(string(b))
	if len(f) < 3 {
		return "?"
	}
	return strings.Join(f[:3], " ")
}

// dataDir returns dir, or a new temp dir (prefix) that cleanup removes;
// cleanup leaves a given dir alone.
func dataDir(dir, prefix string) (path string, cleanup func(), err error) {
	if dir != "" {
		return dir, func() {}, nil
	}
	tmp, err := os.MkdirTemp("", prefix)
	if err != nil {
		return "", nil, err
	}
	return tmp, func() { os.RemoveAll(tmp) }, nil
}

// parallel runs f(0..n-1) with at most width at a time and returns the
// first error (the others are cancelled).
func parallel(ctx context.Context, n, width int, f func(ctx context.Context, i int) error) error {
	ctx, cancel := context.WithCancelCause(ctx)
	defer cancel(nil)
	sem := make(chan struct{}, width)
	var wg sync.WaitGroup
	for i := range n {
		select {
		case sem <- struct{}{}:
		case <-ctx.Done():
		}
		if ctx.Err() != nil {
			break
		}
		wg.Go(func() {
			defer func() { <-sem }()
			if err := f(ctx, i); err != nil {
				cancel(err)
			}
		})
	}
	wg.Wait()
	return context.Cause(ctx)
}

// retrying calls f again while it fails with RATE_LIMITED or UNAVAILABLE
// (a running edge's default limits are low for setup traffic), waiting
// what the server asks, until ctx ends.
func retrying(ctx context.Context, f func() error) error {
	for {
		err := f()
		switch rest.Code(err) {
		case syncpb.Code_CODE_RATE_LIMITED, syncpb.Code_CODE_UNAVAILABLE:
		default:
			return err
		}
		wait := 200 * time.Millisecond
		var e *rest.Error
		if errors.As(err, &e) && e.RetryAfter > 0 {
			wait = e.RetryAfter
		}
		t := time.NewTimer(wait)
		select {
		case <-t.C:
		case <-ctx.Done():
			t.Stop()
			return err
		}
	}
}
