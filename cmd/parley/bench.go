package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"runtime"
	"runtime/pprof"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/prometheus/client_golang/prometheus"
	dto "github.com/prometheus/client_model/go"
	"golang.org/x/time/rate"

	"github.com/parley-chat/parley/client/rest"
	"github.com/parley-chat/parley/core"
	"github.com/parley-chat/parley/edge"
	"github.com/parley-chat/parley/edge/auth"
)

// benchConfig is one `parley bench` run: HTTP sends against an edge.
type benchConfig struct {
	Target    string // edge base URL; empty with Spawn
	Spawn     string // "serve" or "region3": start the system in-process
	Senders   int
	Convs     int
	BodyBytes int
	Duration  time.Duration
	Warmup    time.Duration
	Shards    int
	DataDir   string
	CPUProf   string
	BlockProf string
	RaftStats bool
}

// benchResult is what one run measured.
type benchResult struct {
	Sends    int
	Errors   int
	Elapsed  time.Duration
	P50, P95 time.Duration
	P99, Max time.Duration
}

func (r benchResult) rate() float64 { return float64(r.Sends) / r.Elapsed.Seconds() }

func runBench(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	if t := benchTransport(args); t != "" && t != "http" {
		return runBenchSDK(ctx, args, stdout, stderr) // benchsdk.go
	}
	fs := flag.NewFlagSet("parley bench", flag.ContinueOnError)
	fs.SetOutput(stderr)
	var cfg benchConfig
	fs.String("transport", "http", "http: sends over the /v1 HTTP API (these flags); ws: device sessions over WebSocket with the Go SDK (see -transport ws -h)")
	fs.StringVar(&cfg.Target, "target", "", "edge base URL (e.g. http://127.0.0.1:8080); users need user-rate headroom")
	fs.StringVar(&cfg.Spawn, "spawn", "serve", "start the system in-process: serve (one node) or region3 (3 core nodes on loopback); ignored with -target")
	fs.IntVar(&cfg.Senders, "senders", 64, "concurrent senders (one user and session each)")
	fs.IntVar(&cfg.Convs, "convs", 16, "group conversations the senders share (spread over shards)")
	fs.IntVar(&cfg.BodyBytes, "body", 200, "message body bytes")
	fs.DurationVar(&cfg.Duration, "duration", 20*time.Second, "measured run time")
	fs.DurationVar(&cfg.Warmup, "warmup", 3*time.Second, "unmeasured run time first")
	fs.IntVar(&cfg.Shards, "shards", 16, "shards of a spawned system")
	fs.StringVar(&cfg.DataDir, "data", "", "data directory of a spawned system (default: a temp dir, removed after)")
	fs.StringVar(&cfg.CPUProf, "cpuprofile", "", "write a CPU profile of the measured run (spawned systems run in this process)")
	fs.StringVar(&cfg.BlockProf, "blockprofile", "", "write a blocking profile (where goroutines wait) of the run")
	fs.BoolVar(&cfg.RaftStats, "raftstats", false, "print the Raft, WAL and fsync metrics of a spawned system (the series its /metrics shows)")
	if err := parseFlags(fs, args); err != nil {
		return err
	}
	if cfg.Senders < 1 || cfg.Convs < 1 || cfg.BodyBytes < 1 || cfg.Duration <= 0 {
		return errors.New("senders, convs, body and duration must be positive")
	}
	var reg *prometheus.Registry
	if cfg.RaftStats {
		var err error
		if reg, err = newRegistry(); err != nil {
			return err
		}
	}
	target := cfg.Target
	if target == "" {
		dir, cleanup, err := benchDataDir(cfg.DataDir, "parley-bench-")
		if err != nil {
			return err
		}
		defer cleanup()
		stop, url, err := spawn(ctx, cfg.Spawn, dir, cfg.Shards, reg)
		if err != nil {
			return err
		}
		defer stop()
		target = url
	}
	fmt.Fprintf(stdout, "parley bench: %s, %d senders, %d conversations, %d-byte bodies, %v (after %v warmup), GOMAXPROCS %d, load %s\n",
		benchTargetName(cfg, target), cfg.Senders, cfg.Convs, cfg.BodyBytes, cfg.Duration, cfg.Warmup, runtime.GOMAXPROCS(0), loadAvg())
	res, err := bench(ctx, target, cfg, stderr)
	if err != nil {
		return err
	}
	fmt.Fprintf(stdout, "sends %d in %.1fs = %.0f/s, errors %d; ack latency p50 %v p95 %v p99 %v max %v; load after %s\n",
		res.Sends, res.Elapsed.Seconds(), res.rate(), res.Errors, ms(res.P50), ms(res.P95), ms(res.P99), ms(res.Max), loadAvg())
	if reg != nil && cfg.Target == "" {
		if err := printRaftStats(stdout, reg); err != nil {
			return err
		}
	}
	return nil
}

func benchTargetName(cfg benchConfig, target string) string {
	if cfg.Target != "" {
		return target
	}
	return "spawned " + cfg.Spawn + " at " + target
}

func ms(d time.Duration) string { return fmt.Sprintf("%.2fms", float64(d)/float64(time.Millisecond)) }

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

// benchDataDir returns dir, or a new temp dir (prefix) that cleanup
// removes; cleanup leaves a given dir alone.
func benchDataDir(dir, prefix string) (path string, cleanup func(), err error) {
	if dir != "" {
		return dir, func() {}, nil
	}
	tmp, err := os.MkdirTemp("", prefix)
	if err != nil {
		return "", nil, err
	}
	return tmp, func() { os.RemoveAll(tmp) }, nil
}

// spawn starts a system in this process and returns its edge's URL.
func spawn(ctx context.Context, kind, dir string, shards int, reg *prometheus.Registry) (stop func(), url string, err error) {
	quiet := slog.New(slog.DiscardHandler)
	var mreg prometheus.Registerer // nil unless reg is set (a nil *Registry is not nil)
	if reg != nil {
		mreg = reg
	}
	switch kind {
	case "serve":
		s, err := startSystem(ctx, serveConfig{DataDir: dir, HTTPAddr: "127.0.0.1:0", NATSAddr: "-", RaftAddr: "127.0.0.1:0",
			Shards: shards, UserRate: 1e6, UserBurst: 1e6, IPRate: 1e6, IPBurst: 1e6, Logger: quiet, Metrics: mreg})
		if err != nil {
			return nil, "", err
		}
		rctx, cancel := context.WithCancel(ctx)
		done := make(chan struct{})
		go func() { defer close(done); _ = s.Run(rctx) }()
		return func() { cancel(); <-done }, "http://" + s.HTTPAddr(), nil
	case "region3":
		return spawnRegion(ctx, dir, 3, shards, quiet, mreg)
	}
	return nil, "", fmt.Errorf("-spawn %q: want serve or region3", kind)
}

// startCores starts n core nodes clustered on loopback (real Raft over
// TCP, NATS routes) with base's other settings, waits until they are
// ready, and returns them with their NATS client URLs. Callers close the
// nodes; on an error none is left running.
func startCores(ctx context.Context, dir string, n int, base core.Config) ([]*core.Node, []string, error) {
	free := func() (string, error) {
		ln, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			return "", err
		}
		defer ln.Close()
		return ln.Addr().String(), nil
	}
	var peers []core.Peer
	var clusters, clients []string
	for i := 0; i < n; i++ {
		ra, err1 := free()
		ca, err2 := free()
		na, err3 := free()
		if err := errors.Join(err1, err2, err3); err != nil {
			return nil, nil, err
		}
		peers = append(peers, core.Peer{ID: fmt.Sprintf("n%d", i+1), RaftAddr: ra})
		clusters = append(clusters, ca)
		clients = append(clients, na)
	}
	nodes := make([]*core.Node, n)
	errs := make([]error, n)
	var wg sync.WaitGroup
	for i := range nodes {
		var routes []string
		for j, a := range clusters {
			if j != i {
				routes = append(routes, a)
			}
		}
		cfg := base
		cfg.NodeID, cfg.DataDir, cfg.RaftAddr, cfg.Peers = peers[i].ID, filepath.Join(dir, peers[i].ID), peers[i].RaftAddr, peers
		cfg.NATS = core.NATSConfig{ClientAddr: clients[i], ClusterAddr: clusters[i], Routes: routes}
		wg.Go(func() { nodes[i], errs[i] = core.New(cfg) })
	}
	wg.Wait()
	closeAll := func() {
		for _, nd := range nodes {
			if nd != nil {
				nd.Close()
			}
		}
	}
	if err := errors.Join(errs...); err != nil {
		closeAll()
		return nil, nil, err
	}
	wctx, cancel := context.WithTimeout(ctx, 60*time.Second)
	defer cancel()
	for _, nd := range nodes {
		if err := nd.WaitReady(wctx); err != nil {
			closeAll()
			return nil, nil, err
		}
	}
	urls := make([]string, n)
	for i, c := range clients {
		urls[i] = "nats://" + c
	}
	return nodes, urls, nil
}

// spawnRegion starts n core nodes (startCores) and one edge connected to
// all of their NATS servers.
func spawnRegion(ctx context.Context, dir string, n, shards int, log *slog.Logger, reg prometheus.Registerer) (func(), string, error) {
	nodes, urls, err := startCores(ctx, dir, n, core.Config{ShardCount: shards, Logger: log, Metrics: reg})
	if err != nil {
		return nil, "", err
	}
	closeAll := func() {
		for _, nd := range nodes {
			nd.Close()
		}
	}
	nc, err := nats.Connect(strings.Join(urls, ","), nats.MaxReconnects(-1))
	if err != nil {
		closeAll()
		return nil, "", err
	}
	key, err := auth.GenerateKey("bench")
	if err != nil {
		closeAll()
		return nil, "", err
	}
	e, err := edge.New(edge.Config{HTTPAddr: "127.0.0.1:0", NATS: nc, TokenKeys: []auth.Key{key},
		UserRate: rate.Inf, UserBurst: 1e6, IPRate: rate.Inf, IPBurst: 1e6, Logger: log, Metrics: reg})
	if err != nil {
		nc.Close()
		closeAll()
		return nil, "", err
	}
	rctx, rcancel := context.WithCancel(ctx)
	done := make(chan struct{})
	go func() { defer close(done); _ = e.Run(rctx) }()
	return func() { rcancel(); <-done; nc.Close(); closeAll() }, "http://" + e.Addr().String(), nil
}

// bench sets up users and conversations, then sends from cfg.Senders
// goroutines as fast as acks come back and measures each ack.
func bench(ctx context.Context, target string, cfg benchConfig, stderr io.Writer) (benchResult, error) {
	hc := &http.Client{Timeout: 30 * time.Second, Transport: &http.Transport{
		MaxIdleConns: cfg.Senders * 2, MaxIdleConnsPerHost: cfg.Senders * 2, IdleConnTimeout: time.Minute}}
	ws := fmt.Sprintf("bench%d", time.Now().UnixNano()%1e9)
	clients := make([]*rest.Client, cfg.Senders)
	names := make([]string, cfg.Senders)
	setup, cancel := context.WithTimeout(ctx, 5*time.Minute)
	defer cancel()
	var wg sync.WaitGroup
	errs := make([]error, cfg.Senders)
	sem := make(chan struct{}, 4) // argon2 is deliberately expensive
	for i := range clients {
		names[i] = fmt.Sprintf("u%d", i)
		clients[i] = rest.New(target, rest.WithHTTPClient(hc))
		wg.Add(1)
		go func(i int) {
			defer wg.Done()
			sem <- struct{}{}
			defer func() { <-sem }()
			const pw = "bench password 123"
			if _, err := clients[i].Register(setup, ws, names[i], pw); err != nil {
				errs[i] = err
				return
			}
			_, errs[i] = clients[i].Login(setup, rest.LoginRequest{Workspace: ws, Username: names[i], Password: pw, DeviceName: "bench"})
		}(i)
	}
	wg.Wait()
	if err := errors.Join(errs...); err != nil {
		return benchResult{}, fmt.Errorf("setup users: %w", err)
	}
	convs := make([]string, cfg.Convs)
	for i := range convs {
		c, err := clients[0].CreateConversation(setup, rest.NewConversation{Type: "group", Title: fmt.Sprintf("bench %d", i), MemberUsernames: names[1:]})
		if err != nil {
			return benchResult{}, fmt.Errorf("setup conversations: %w", err)
		}
		convs[i] = c.ID
	}
	body := strings.Repeat("x", cfg.BodyBytes)

	var measuring atomic.Bool
	var nErr atomic.Int64
	lat := make([][]time.Duration, cfg.Senders)
	runCtx, stop := context.WithCancel(ctx)
	defer stop()
	for i := range clients {
		wg.Add(1)
		go func(i int) {
			defer wg.Done()
			for k := 0; runCtx.Err() == nil; k++ {
				conv := convs[(i+k)%len(convs)]
				t0 := time.Now()
				sctx, c := context.WithTimeout(runCtx, 10*time.Second)
				_, err := clients[i].Send(sctx, rest.SendRequest{ConvID: conv, Body: body})
				c()
				d := time.Since(t0)
				if !measuring.Load() || runCtx.Err() != nil {
					continue
				}
				if err != nil {
					if nErr.Add(1) <= 5 {
						fmt.Fprintf(stderr, "send: %v\n", err)
					}
					continue
				}
				lat[i] = append(lat[i], d)
			}
		}(i)
	}
	select {
	case <-time.After(cfg.Warmup):
	case <-ctx.Done():
	}
	if cfg.CPUProf != "" {
		f, err := os.Create(cfg.CPUProf)
		if err != nil {
			return benchResult{}, err
		}
		defer f.Close()
		if err := pprof.StartCPUProfile(f); err != nil {
			return benchResult{}, err
		}
		defer pprof.StopCPUProfile()
	}
	if cfg.BlockProf != "" {
		runtime.SetBlockProfileRate(int(100 * time.Microsecond))
		defer func() {
			runtime.SetBlockProfileRate(0)
			if f, err := os.Create(cfg.BlockProf); err == nil {
				_ = pprof.Lookup("block").WriteTo(f, 0)
				f.Close()
			}
		}()
	}
	measuring.Store(true)
	start := time.Now()
	select {
	case <-time.After(cfg.Duration):
	case <-ctx.Done():
	}
	measuring.Store(false)
	elapsed := time.Since(start)
	stop()
	wg.Wait()
	var all []time.Duration
	for _, l := range lat {
		all = append(all, l...)
	}
	if len(all) == 0 {
		return benchResult{}, errors.New("no send was acknowledged")
	}
	slices.Sort(all)
	q := func(p float64) time.Duration { return all[min(len(all)-1, int(p*float64(len(all))))] }
	return benchResult{Sends: len(all), Errors: int(nErr.Load()), Elapsed: elapsed,
		P50: q(0.50), P95: q(0.95), P99: q(0.99), Max: all[len(all)-1]}, nil
}

// printRaftStats prints the Raft, WAL and fsync series of g (all groups
// and nodes together), as /metrics shows them: for each summary and
// histogram its count and mean (in ms; go-metrics' raft timers are in ms
// already, the _seconds histograms are converted), and each gauge's sum.
func printRaftStats(w io.Writer, g prometheus.Gatherer) error {
	fams, err := g.Gather()
	if err != nil {
		return err
	}
	picked := func(name string) bool {
		for _, p := range []string{"parley_raft_", "parley_core_raft_", "parley_core_wal_", "parley_core_badger_"} {
			if strings.HasPrefix(name, p) {
				return true
			}
		}
		return false
	}
	var gauges []string
	fmt.Fprintln(w, "raft and fsync metrics (timers in ms): name count mean")
	for _, f := range fams {
		name := f.GetName()
		if !picked(name) {
			continue
		}
		var count uint64
		var sum, gauge float64
		for _, m := range f.GetMetric() {
			switch {
			case m.Summary != nil:
				count += m.Summary.GetSampleCount()
				sum += m.Summary.GetSampleSum()
			case m.Histogram != nil:
				count += m.Histogram.GetSampleCount()
				sum += m.Histogram.GetSampleSum()
			case m.Gauge != nil:
				gauge += m.Gauge.GetValue()
			case m.Counter != nil:
				gauge += m.Counter.GetValue()
			}
		}
		if f.GetType() == dto.MetricType_GAUGE || f.GetType() == dto.MetricType_COUNTER {
			gauges = append(gauges, fmt.Sprintf("  %-60s %14.0f", name, gauge))
			continue
		}
		mean := sum / float64(max(count, 1))
		if strings.HasSuffix(name, "_seconds") {
			mean *= 1000
		}
		fmt.Fprintf(w, "  %-60s %8d %8.3f\n", name, count, mean)
	}
	if len(gauges) > 0 {
		fmt.Fprintln(w, "gauges and counters:")
		for _, l := range gauges {
			fmt.Fprintln(w, l)
		}
	}
	return nil
}
