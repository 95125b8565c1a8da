package bench

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"maps"
	"net/http"
	"os"
	"runtime"
	"runtime/pprof"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/hashicorp/go-metrics"

	"github.com/parley-chat/parley/client/rest"
)

// HTTPConfig is one RunHTTP run (`parley bench`, -transport http): sends
// over the /v1 API against an edge.
type HTTPConfig struct {
	Target    string // edge base URL; empty: start the Spawn system
	Spawn     string // "serve" (with Start) or "region3" (3 cores and an edge, with Launch), in this process
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

	// Start and Launch start the Spawn systems in this process.
	Start  StartFunc
	Launch LaunchFunc
}

// AddFlags binds c's fields to fs as the flags of `parley bench`
// (-transport http), with their defaults.
func (c *HTTPConfig) AddFlags(fs *flag.FlagSet) {
	fs.String("transport", "http", "http: sends over the /v1 HTTP API (these flags); ws: device sessions over WebSocket with the Go SDK (see -transport ws -h)")
	fs.StringVar(&c.Target, "target", "", "edge base URL (e.g. http://127.0.0.1:8080); users need user-rate headroom")
	fs.StringVar(&c.Spawn, "spawn", "serve", "start the system in-process: serve (one node) or region3 (3 core nodes on loopback); ignored with -target")
	fs.IntVar(&c.Senders, "senders", 64, "concurrent senders (one user and session each)")
	fs.IntVar(&c.Convs, "convs", 16, "group conversations the senders share (spread over shards)")
	fs.IntVar(&c.BodyBytes, "body", 200, "message body bytes")
	fs.DurationVar(&c.Duration, "duration", 20*time.Second, "measured run time")
	fs.DurationVar(&c.Warmup, "warmup", 3*time.Second, "unmeasured run time first")
	fs.IntVar(&c.Shards, "shards", 16, "shards of a spawned system")
	fs.StringVar(&c.DataDir, "data", "", "data directory of a spawned system (default: a temp dir, removed after)")
	fs.StringVar(&c.CPUProf, "cpuprofile", "", "write a CPU profile of the measured run (spawned systems run in this process)")
	fs.StringVar(&c.BlockProf, "blockprofile", "", "write a blocking profile (where goroutines wait) of the run")
	fs.BoolVar(&c.RaftStats, "raftstats", false, "print raft's timing metrics (store, commit, apply) of a spawned system")
}

// Validate names the first bad field.
func (c HTTPConfig) Validate() error {
	if c.Senders < 1 || c.Convs < 1 || c.BodyBytes < 1 || c.Duration <= 0 {
		return errors.New("senders, convs, body and duration must be positive")
	}
	if c.Target == "" && c.Spawn != "serve" && c.Spawn != "region3" {
		return fmt.Errorf("-spawn %q: want serve or region3", c.Spawn)
	}
	return nil
}

// httpResult is what one run measured.
type httpResult struct {
	Sends    int
	Errors   int
	Elapsed  time.Duration
	P50, P95 time.Duration
	P99, Max time.Duration
}

func (r httpResult) rate() float64 { return float64(r.Sends) / r.Elapsed.Seconds() }

// RunHTTP runs cfg, printing the result to stdout and the first send
// errors to stderr.
func RunHTTP(ctx context.Context, cfg HTTPConfig, stdout, stderr io.Writer) error {
	if err := cfg.Validate(); err != nil {
		return err
	}
	var sink *metrics.InmemSink
	if cfg.RaftStats {
		// Raft and the WAL report to go-metrics' global sink: the spawned
		// system's, since it runs in this process.
		sink = metrics.NewInmemSink(time.Hour, time.Hour)
		mc := metrics.DefaultConfig("parley")
		mc.EnableHostname, mc.EnableRuntimeMetrics = false, false
		if _, err := metrics.NewGlobal(mc, sink); err != nil {
			return err
		}
	}
	target := cfg.Target
	if target == "" {
		dir, cleanup, err := dataDir(cfg.DataDir, "parley-bench-")
		if err != nil {
			return err
		}
		defer cleanup()
		stop, url, err := cfg.spawn(ctx, dir)
		if err != nil {
			return err
		}
		defer stop()
		target = url
	}
	fmt.Fprintf(stdout, "parley bench: %s, %d senders, %d conversations, %d-byte bodies, %v (after %v warmup), GOMAXPROCS %d, load %s\n",
		cfg.targetName(target), cfg.Senders, cfg.Convs, cfg.BodyBytes, cfg.Duration, cfg.Warmup, runtime.GOMAXPROCS(0), loadAvg())
	res, err := sendLoad(ctx, target, cfg, stderr)
	if err != nil {
		return err
	}
	fmt.Fprintf(stdout, "sends %d in %.1fs = %.0f/s, errors %d; ack latency p50 %v p95 %v p99 %v max %v; load after %s\n",
		res.Sends, res.Elapsed.Seconds(), res.rate(), res.Errors, ms(res.P50), ms(res.P95), ms(res.P99), ms(res.Max), loadAvg())
	if sink != nil {
		WriteRaftStats(stdout, sink)
	}
	return nil
}

func (c HTTPConfig) targetName(target string) string {
	if c.Target != "" {
		return target
	}
	return "spawned " + c.Spawn + " at " + target
}

// spawn starts the Spawn system in this process and returns its edge's
// URL: serve through Start; region3 as three `parley core` and one
// `parley edge` through Launch, with Raft over loopback TCP and clustered
// NATS servers, as a region's processes would run.
func (c HTTPConfig) spawn(ctx context.Context, dir string) (stop func(), url string, err error) {
	switch c.Spawn {
	case "serve":
		if c.Start == nil {
			return nil, "", errNoStart
		}
		s, err := c.Start(ctx, SystemConfig{DataDir: dir, Shards: c.Shards})
		if err != nil {
			return nil, "", err
		}
		return s.Close, s.URL(), nil
	case "region3":
		if c.Launch == nil {
			return nil, "", errNoStart
		}
		r, err := startRegion(ctx, regionConfig{Dir: dir, Cores: 3, Edges: 1, Shards: c.Shards, Launch: c.Launch})
		if err != nil {
			return nil, "", err
		}
		return r.Close, r.urls[0], nil
	}
	return nil, "", fmt.Errorf("-spawn %q: want serve or region3", c.Spawn)
}

// sendLoad sets up users and conversations, then sends from cfg.Senders
// goroutines as fast as acks come back and measures each ack.
func sendLoad(ctx context.Context, target string, cfg HTTPConfig, stderr io.Writer) (httpResult, error) {
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
		return httpResult{}, fmt.Errorf("setup users: %w", err)
	}
	convs := make([]string, cfg.Convs)
	for i := range convs {
		c, err := clients[0].CreateConversation(setup, rest.NewConversation{Type: "group", Title: fmt.Sprintf("bench %d", i), MemberUsernames: names[1:]})
		if err != nil {
			return httpResult{}, fmt.Errorf("setup conversations: %w", err)
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
			return httpResult{}, err
		}
		defer f.Close()
		if err := pprof.StartCPUProfile(f); err != nil {
			return httpResult{}, err
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
		return httpResult{}, errors.New("no send was acknowledged")
	}
	slices.Sort(all)
	q := func(p float64) time.Duration { return all[min(len(all)-1, int(p*float64(len(all))))] }
	return httpResult{Sends: len(all), Errors: int(nErr.Load()), Elapsed: elapsed,
		P50: q(0.50), P95: q(0.95), P99: q(0.99), Max: all[len(all)-1]}, nil
}

// WriteRaftStats writes the timers of sink (Raft's and the WAL's, all
// groups and nodes together: count, mean and max in ms) and its gauges'
// latest values, as -raftstats prints them.
func WriteRaftStats(w io.Writer, sink *metrics.InmemSink) {
	data := sink.Data()
	if len(data) == 0 {
		return
	}
	var names []string
	agg := map[string]metrics.AggregateSample{}
	for _, iv := range data {
		iv.RLock()
		for name, s := range iv.Samples {
			a, ok := agg[name]
			if !ok {
				names = append(names, name)
				a.Min = s.Min
			}
			a.Count += s.Count
			a.Sum += s.Sum
			a.Min = min(a.Min, s.Min)
			a.Max = max(a.Max, s.Max)
			agg[name] = a
		}
		iv.RUnlock()
	}
	slices.Sort(names)
	fmt.Fprintln(w, "raft and fsync metrics (timers in ms): name count mean max")
	for _, n := range names {
		a := agg[n]
		fmt.Fprintf(w, "  %-60s %8d %8.3f %8.3f\n", n, a.Count, a.Sum/float64(max(a.Count, 1)), a.Max)
	}
	// Gauges: the latest value set.
	gauges := map[string]float32{}
	for _, iv := range data {
		iv.RLock()
		for name, g := range iv.Gauges {
			gauges[name] = g.Value
		}
		iv.RUnlock()
	}
	if len(gauges) == 0 {
		return
	}
	fmt.Fprintln(w, "gauges (latest):")
	for _, n := range slices.Sorted(maps.Keys(gauges)) {
		fmt.Fprintf(w, "  %-60s %14.0f\n", n, gauges[n])
	}
}
