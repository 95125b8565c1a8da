package bench

// Idle sessions for `parley bench -transport ws -idle K`, and the memory
// they cost the edge.

import (
	"bufio"
	"context"
	"fmt"
	"io"
	"math"
	"os"
	"runtime"
	"runtime/debug"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/parley-chat/parley/client"
)

// selfMemProfileRate is the heap sampling rate with -self -idle: fine
// enough to split a few KiB per session between the edge and the bench's
// clients, cheap enough not to slow the run.
const selfMemProfileRate = 16 << 10

// IdleResult reports the idle sessions.
type IdleResult struct {
	Requested int     `json:"requested"`
	Users     int     `json:"users"`
	Devices   int     `json:"devices"` // sessions share devices round-robin
	Connected int     `json:"connected"`
	Failed    int     `json:"failed"`
	DialSec   float64 `json:"dial_s"`
	// Reconnects is how many idle sessions were re-established by the end
	// of the run (each should have stayed up).
	Reconnects int `json:"reconnects"`
	// Lean: held by leanIdle, which dials a failed or dropped session
	// again: FirstTry connected on the first dial, Redials more dials
	// while connecting (Connected counts them), Reconnects more dials
	// while held, AliveEnd up at the end.
	Lean     bool `json:"lean,omitempty"`
	FirstTry int  `json:"first_try,omitempty"`
	Redials  int  `json:"redials,omitempty"`
	AliveEnd int  `json:"alive_end,omitempty"`
	// EdgeSessions counts all of the edge's sessions (active devices
	// included) after the idle ones connected and at the end; -self only.
	EdgeSessions    int       `json:"edge_sessions,omitempty"`
	EdgeSessionsEnd int       `json:"edge_sessions_end,omitempty"`
	Memory          *MemDelta `json:"memory,omitempty"`

	clients []*client.Client
}

// MemDelta is what connecting the idle sessions cost, in all and per
// connected session.
type MemDelta struct {
	Source        string        `json:"source"`
	RSSDelta      int64         `json:"rss_delta_bytes"`
	RSSPerSession float64       `json:"rss_per_session_bytes"`
	Runtime       *RuntimeDelta `json:"runtime,omitempty"`
}

// RuntimeDelta are Go runtime figures, per session, when the system runs in
// this process: the live heap after GC, goroutine stacks and goroutines,
// each also split by who allocated or runs it (edge: the edge's packages
// and its HTTP server; client: the SDK and the bench; other: the core,
// NATS, the runtime). The heap split is an estimate from the heap profile.
type RuntimeDelta struct {
	HeapDelta                  int64   `json:"heap_delta_bytes"`
	HeapPerSession             float64 `json:"heap_per_session_bytes"`
	StackPerSession            float64 `json:"stack_per_session_bytes"`
	GoroutinesPerSession       float64 `json:"goroutines_per_session"`
	EdgeHeapPerSession         float64 `json:"edge_heap_per_session_bytes"`
	ClientHeapPerSession       float64 `json:"client_heap_per_session_bytes"`
	OtherHeapPerSession        float64 `json:"other_heap_per_session_bytes"`
	EdgeGoroutinesPerSession   float64 `json:"edge_goroutines_per_session"`
	ClientGoroutinesPerSession float64 `json:"client_goroutines_per_session"`
	OtherGoroutinesPerSession  float64 `json:"other_goroutines_per_session"`
}

// memProbe samples the memory of the system under test.
type memProbe interface {
	// sample measures now; it may run the garbage collector.
	sample() (memSample, error)
	// source says what the samples cover.
	source() string
}

type memSample struct {
	rss        int64
	runtime    bool // the fields below are set
	heap       int64
	stack      int64
	goroutines int
	heapBy     [3]int64 // by side
	gBy        [3]int
	sessions   int
}

// side is who allocated memory or runs a goroutine.
type side int

const (
	sideOther side = iota
	sideEdge
	sideClient
)

// selfProbe measures this process, which runs the system (-self).
type selfProbe struct{ sys System }

var _ memProbe = selfProbe{}

func (p selfProbe) source() string {
	return "this process (-self: the bench's clients, the edge and the core)"
}

func (p selfProbe) sample() (memSample, error) {
	// The heap profile is as of the last completed GC: two make it current.
	runtime.GC()
	runtime.GC()
	debug.FreeOSMemory()
	var ms runtime.MemStats
	runtime.ReadMemStats(&ms)
	s := memSample{runtime: true, heap: int64(ms.HeapAlloc), stack: int64(ms.StackInuse),
		heapBy: heapBySide(), sessions: p.sys.Sessions()}
	s.gBy = goroutinesBySide()
	s.goroutines = s.gBy[0] + s.gBy[1] + s.gBy[2]
	var err error
	s.rss, err = vmRSS("self")
	return s, err
}

// pidProbe reads another process's RSS (-edge-pid).
type pidProbe struct{ pid int }

var _ memProbe = pidProbe{}

func (p pidProbe) source() string { return fmt.Sprintf("pid %d (VmRSS)", p.pid) }

func (p pidProbe) sample() (memSample, error) {
	rss, err := vmRSS(strconv.Itoa(p.pid))
	return memSample{rss: rss}, err
}

// vmRSS reads the resident set size of /proc/<pid>/status in bytes.
func vmRSS(pid string) (int64, error) {
	f, err := os.Open("/proc/" + pid + "/status")
	if err != nil {
		return 0, err
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		if v, ok := strings.CutPrefix(sc.Text(), "VmRSS:"); ok {
			kb, err := strconv.ParseInt(strings.TrimSpace(strings.TrimSuffix(strings.TrimSpace(v), "kB")), 10, 64)
			if err != nil {
				return 0, fmt.Errorf("/proc/%s/status: VmRSS %q: %w", pid, v, err)
			}
			return kb << 10, nil
		}
	}
	if err := sc.Err(); err != nil {
		return 0, err
	}
	return 0, fmt.Errorf("/proc/%s/status has no VmRSS", pid)
}

const modulePath = "github.com/parley-chat/parley/"

// classify names the side of a stack by its innermost frame that belongs
// to one.
func classify(pcs []uintptr) side {
	frames := runtime.CallersFrames(pcs)
	for {
		f, more := frames.Next()
		switch fn := f.Function; {
		case strings.HasPrefix(fn, modulePath+"edge/"), strings.HasPrefix(fn, "net/http.(*conn)."):
			return sideEdge
		case strings.HasPrefix(fn, modulePath+"client"), strings.HasPrefix(fn, modulePath+"bench."),
			strings.HasPrefix(fn, "net/http.(*Transport)."), strings.HasPrefix(fn, "net/http.(*persistConn)."):
			return sideClient
		}
		if !more {
			return sideOther
		}
	}
}

// heapBySide is the in-use heap by side, from the heap profile (scaled
// for sampling as pprof does).
func heapBySide() [3]int64 {
	var by [3]int64
	n, _ := runtime.MemProfile(nil, true)
	var recs []runtime.MemProfileRecord
	for {
		recs = make([]runtime.MemProfileRecord, n+64)
		var ok bool
		if n, ok = runtime.MemProfile(recs, true); ok {
			recs = recs[:n]
			break
		}
	}
	rate := float64(runtime.MemProfileRate)
	for i := range recs {
		r := &recs[i]
		count, size := r.InUseObjects(), r.InUseBytes()
		if count <= 0 || size <= 0 {
			continue
		}
		scaled := float64(size)
		if rate > 1 {
			scaled /= 1 - math.Exp(-float64(size)/float64(count)/rate)
		}
		by[classify(r.Stack())] += int64(scaled)
	}
	return by
}

// goroutinesBySide counts the goroutines by side.
func goroutinesBySide() [3]int {
	var by [3]int
	n, _ := runtime.GoroutineProfile(nil)
	var recs []runtime.StackRecord
	for {
		recs = make([]runtime.StackRecord, n+64)
		var ok bool
		if n, ok = runtime.GoroutineProfile(recs); ok {
			recs = recs[:n]
			break
		}
	}
	for i := range recs {
		by[classify(recs[i].Stack())]++
	}
	return by
}

// holdIdle registers the idle users, logs in their devices, and connects
// the idle sessions, sampling memory before and after connecting.
func (b *sdkBench) holdIdle(ctx context.Context, probe memProbe) (*IdleResult, error) {
	sctx, cancel := context.WithTimeout(ctx, 30*time.Minute)
	defer cancel()
	users := min(b.cfg.IdleUsers, b.cfg.Idle)
	devices := max(min(b.cfg.IdleDevices, b.cfg.Idle), users)
	r := &IdleResult{Requested: b.cfg.Idle, Users: users, Devices: devices}
	names := make([]string, users)
	for i := range names {
		names[i] = fmt.Sprintf("idle%d", i)
	}
	logins := make([]string, devices)
	for i := range logins {
		logins[i] = names[i%users]
	}
	t0 := time.Now()
	b.progress("idle: registering %d users, logging in %d devices", users, devices)
	rcs, sessions, err := b.users(sctx, names, logins)
	if err != nil {
		return nil, fmt.Errorf("idle sessions: %w", err)
	}
	toks := make([]*tokenSource, devices)
	for i := range toks {
		toks[i] = &tokenSource{rc: rcs[i], at: time.Now()}
	}
	b.progress("idle: devices ready in %.1fs; connecting %d sessions", time.Since(t0).Seconds(), b.cfg.Idle)
	var before memSample
	if probe != nil {
		if before, err = probe.sample(); err != nil {
			return nil, fmt.Errorf("idle sessions: memory: %w", err)
		}
	}
	t0 = time.Now()
	if b.lean != nil {
		// From the start: the first sessions must ping while the rest connect.
		b.lean.startPing(b.cfg.IdlePing)
	}
	var mu sync.Mutex
	var failed atomic.Int64
	dialLean := func(ctx context.Context, i int) error {
		tok, err := toks[i%devices].token(ctx)
		if err == nil {
			err = b.lean.dial(ctx, i, tok, sessions[i%devices].Device.ID)
		}
		return err
	}
	err = parallel(sctx, b.cfg.Idle, 32, func(ctx context.Context, i int) error {
		d := i % devices
		if b.lean != nil {
			if err := dialLean(ctx, i); err != nil && ctx.Err() == nil && failed.Add(1) <= 5 {
				b.progress("idle session %d: %v", i, err)
			}
			return nil
		}
		dial := b.dialer
		if len(b.idleDialers) > 0 {
			dial = b.idleDialers[i%len(b.idleDialers)]
		}
		c, err := b.dialWith(ctx, dial, toks[d], sessions[d].Device.ID, nil)
		if err != nil {
			if ctx.Err() != nil {
				return err
			}
			if failed.Add(1) <= 5 {
				b.progress("idle session %d: %v", i, err)
			}
			return nil
		}
		mu.Lock()
		r.clients = append(r.clients, c)
		mu.Unlock()
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("idle sessions: %w", err)
	}
	r.Connected, r.Failed = len(r.clients), int(failed.Load())
	if b.lean != nil {
		// Sessions that failed or dropped meanwhile dial again, as a
		// device would; up to five rounds, then every 5 s while held.
		r.FirstTry = b.lean.alive()
		for range 5 {
			if b.lean.redial(sctx, dialLean) == 0 {
				break
			}
		}
		r.Redials = int(b.lean.redials.Load())
		r.Connected = b.lean.alive()
		r.Lean = true
		b.lean.keep(ctx, 5*time.Second, dialLean) // for the whole run, not just sctx
	}
	r.DialSec = time.Since(t0).Seconds()
	b.progress("idle: %d sessions connected in %.1fs, %d failed", r.Connected, r.DialSec, r.Failed)
	if probe == nil {
		return r, nil
	}
	after, err := probe.sample()
	if err != nil {
		return nil, fmt.Errorf("idle sessions: memory: %w", err)
	}
	r.EdgeSessions = after.sessions
	r.Memory = memDiff(probe.source(), before, after, r.Connected)
	return r, nil
}

// finishIdle records the idle sessions' state at the end of the run.
func (b *sdkBench) finishIdle(r *IdleResult, probe memProbe) {
	for _, c := range r.clients {
		r.Reconnects += c.Connections() - 1
	}
	if b.lean != nil {
		r.AliveEnd = b.lean.alive()
		r.Reconnects = int(b.lean.redials.Load()) - r.Redials
	}
	if p, ok := probe.(selfProbe); ok {
		r.EdgeSessionsEnd = p.sys.Sessions()
	}
}

func memDiff(source string, before, after memSample, n int) *MemDelta {
	per := func(v int64) float64 {
		if n == 0 {
			return 0
		}
		return float64(v) / float64(n)
	}
	m := &MemDelta{Source: source, RSSDelta: after.rss - before.rss}
	m.RSSPerSession = per(m.RSSDelta)
	if !after.runtime {
		return m
	}
	m.Runtime = &RuntimeDelta{
		HeapDelta:                  after.heap - before.heap,
		HeapPerSession:             per(after.heap - before.heap),
		StackPerSession:            per(after.stack - before.stack),
		GoroutinesPerSession:       per(int64(after.goroutines - before.goroutines)),
		EdgeHeapPerSession:         per(after.heapBy[sideEdge] - before.heapBy[sideEdge]),
		ClientHeapPerSession:       per(after.heapBy[sideClient] - before.heapBy[sideClient]),
		OtherHeapPerSession:        per(after.heapBy[sideOther] - before.heapBy[sideOther]),
		EdgeGoroutinesPerSession:   per(int64(after.gBy[sideEdge] - before.gBy[sideEdge])),
		ClientGoroutinesPerSession: per(int64(after.gBy[sideClient] - before.gBy[sideClient])),
		OtherGoroutinesPerSession:  per(int64(after.gBy[sideOther] - before.gBy[sideOther])),
	}
	return m
}

func kib(v float64) string { return fmt.Sprintf("%.1f KiB", v/1024) }

func printIdle(w io.Writer, r *IdleResult) {
	fmt.Fprintf(w, "idle: %d of %d sessions connected in %.1fs (%d failed; %d users, %d devices)",
		r.Connected, r.Requested, r.DialSec, r.Failed, r.Users, r.Devices)
	if r.Lean {
		fmt.Fprintf(w, "; %d on the first dial, %d dials again while connecting, %d while held; %d up at the end (bare QUIC, -idle-lean)",
			r.FirstTry, r.Redials, r.Reconnects, r.AliveEnd)
	} else {
		fmt.Fprintf(w, ", %d reconnects by the end", r.Reconnects)
	}
	if r.EdgeSessions > 0 {
		fmt.Fprintf(w, "; edge sessions (all) %d after connecting, %d at the end", r.EdgeSessions, r.EdgeSessionsEnd)
	}
	fmt.Fprintln(w)
	m := r.Memory
	if m == nil {
		fmt.Fprintln(w, "idle memory: not measured (use -self, or -edge-pid with -url)")
		return
	}
	fmt.Fprintf(w, "idle memory per session, %s: RSS %s (%.1f MiB in all)", m.Source, kib(m.RSSPerSession), float64(m.RSSDelta)/(1<<20))
	if rt := m.Runtime; rt != nil {
		fmt.Fprintf(w, ", live heap %s (allocated by the edge %s, the clients %s, other %s; a heap-profile estimate), stacks %s, goroutines %.1f (edge %.1f, clients %.1f, other %.1f)",
			kib(rt.HeapPerSession), kib(rt.EdgeHeapPerSession), kib(rt.ClientHeapPerSession), kib(rt.OtherHeapPerSession), kib(rt.StackPerSession),
			rt.GoroutinesPerSession, rt.EdgeGoroutinesPerSession, rt.ClientGoroutinesPerSession, rt.OtherGoroutinesPerSession)
	} else {
		// Another process cannot be made to collect and return its free
		// pages first (the logins' argon2 buffers leave tens of MiB).
		fmt.Fprint(w, " (free heap pages are reused before RSS grows: use thousands of sessions)")
	}
	fmt.Fprintln(w)
}
