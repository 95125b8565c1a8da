package bench

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"net/http"
	"os"
	"runtime"
	"runtime/pprof"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	dto "github.com/prometheus/client_model/go"
	"github.com/prometheus/common/expfmt"
	"github.com/prometheus/common/model"

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
	fs.BoolVar(&c.RaftStats, "raftstats", false, "print the Raft, WAL and fsync series of a spawned system (scraped from its /metrics)")
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
	target := cfg.Target
	var scrape []string // the spawned system's /metrics URLs
	if target == "" {
		dir, cleanup, err := dataDir(cfg.DataDir, "parley-bench-")
		if err != nil {
			return err
		}
		defer cleanup()
		stop, url, metricsURLs, err := cfg.spawn(ctx, dir)
		if err != nil {
			return err
		}
		defer stop()
		target, scrape = url, metricsURLs
	}
	fmt.Fprintf(stdout, "parley bench: %s, %d senders, %d conversations, %d-byte bodies, %v (after %v warmup), GOMAXPROCS %d, load %s\n",
		cfg.targetName(target), cfg.Senders, cfg.Convs, cfg.BodyBytes, cfg.Duration, cfg.Warmup, runtime.GOMAXPROCS(0), loadAvg())
	res, err := sendLoad(ctx, target, cfg, stderr)
	if err != nil {
		return err
	}
	fmt.Fprintf(stdout, "sends %d in %.1fs = %.0f/s, errors %d; ack latency p50 %v p95 %v p99 %v max %v; load after %s\n",
		res.Sends, res.Elapsed.Seconds(), res.rate(), res.Errors, ms(res.P50), ms(res.P95), ms(res.P99), ms(res.Max), loadAvg())
	if cfg.RaftStats && cfg.Target == "" {
		return WriteRaftStats(ctx, stdout, scrape)
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
// URL and the URLs of its /metrics: serve through Start; region3 as three `parley core` and one
// `parley edge` through Launch, with Raft over loopback TCP and clustered
// NATS servers, as a region's processes would run.
func (c HTTPConfig) spawn(ctx context.Context, dir string) (stop func(), url string, metrics []string, err error) {
	switch c.Spawn {
	case "serve":
		if c.Start == nil {
			return nil, "", nil, errNoStart
		}
		s, err := c.Start(ctx, SystemConfig{DataDir: dir, Shards: c.Shards})
		if err != nil {
			return nil, "", nil, err
		}
		if m := s.MetricsURL(); m != "" {
			metrics = []string{m}
		}
		return s.Close, s.URL(), metrics, nil
	case "region3":
		if c.Launch == nil {
			return nil, "", nil, errNoStart
		}
		r, err := startRegion(ctx, regionConfig{Dir: dir, Cores: 3, Edges: 1, Shards: c.Shards, Launch: c.Launch})
		if err != nil {
			return nil, "", nil, err
		}
		return r.Close, r.urls[0], r.metrics, nil
	}
	return nil, "", nil, fmt.Errorf("-spawn %q: want serve or region3", c.Spawn)
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

// WriteRaftStats scrapes the /metrics of each URL and writes the Raft,
// WAL and fsync series, summed over the processes: histograms and
// summaries as count and mean (seconds as ms), gauges and counters as
// their sum over label sets.
func WriteRaftStats(ctx context.Context, w io.Writer, urls []string) error {
	type agg struct {
		typ        dto.MetricType
		count      uint64
		sum, value float64
	}
	byName := map[string]*agg{}
	var names []string
	for _, u := range urls {
		fams, err := scrapeMetrics(ctx, u)
		if err != nil {
			return err
		}
		for name, f := range fams {
			if !raftSeries(name) {
				continue
			}
			a := byName[name]
			if a == nil {
				a = &agg{typ: f.GetType()}
				byName[name] = a
				names = append(names, name)
			}
			for _, m := range f.GetMetric() {
				switch {
				case m.Summary != nil:
					a.count += m.Summary.GetSampleCount()
					a.sum += m.Summary.GetSampleSum()
				case m.Histogram != nil:
					a.count += m.Histogram.GetSampleCount()
					a.sum += m.Histogram.GetSampleSum()
				case m.Gauge != nil:
					a.value += m.Gauge.GetValue()
				case m.Counter != nil:
					a.value += m.Counter.GetValue()
				}
			}
		}
	}
	slices.Sort(names)
	fmt.Fprintln(w, "raft and fsync metrics (timers in ms): name count mean")
	var gauges []string
	for _, n := range names {
		a := byName[n]
		if a.typ == dto.MetricType_GAUGE || a.typ == dto.MetricType_COUNTER {
			gauges = append(gauges, fmt.Sprintf("  %-60s %14.0f", n, a.value))
			continue
		}
		mean := a.sum / float64(max(a.count, 1))
		if strings.HasSuffix(n, "_seconds") {
			mean *= 1000
		}
		fmt.Fprintf(w, "  %-60s %8d %8.3f\n", n, a.count, mean)
	}
	if len(gauges) > 0 {
		fmt.Fprintln(w, "gauges and counters:")
		for _, l := range gauges {
			fmt.Fprintln(w, l)
		}
	}
	return nil
}

// raftSeries picks the series -raftstats shows.
func raftSeries(name string) bool {
	for _, p := range []string{"parley_raft_", "parley_core_raft_", "parley_core_wal_", "parley_core_badger_"} {
		if strings.HasPrefix(name, p) {
			return true
		}
	}
	return false
}

// scrapeMetrics reads the Prometheus text at url.
func scrapeMetrics(ctx context.Context, url string) (map[string]*dto.MetricFamily, error) {
	ctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
	if err != nil {
		return nil, err
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return nil, fmt.Errorf("bench: scrape %s: %w", url, err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return nil, fmt.Errorf("bench: scrape %s: %s", url, resp.Status)
	}
	parser := expfmt.NewTextParser(model.UTF8Validation)
	fams, err := parser.TextToMetricFamilies(resp.Body)
	if err != nil {
		return nil, fmt.Errorf("bench: scrape %s: %w", url, err)
	}
	return fams, nil
}
