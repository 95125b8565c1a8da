package e2e_test

import (
	"context"
	"fmt"
	"slices"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/nats-io/nats.go"

	"github.com/parley-chat/parley/core"
	"github.com/parley-chat/parley/edge/presence"
	"github.com/parley-chat/parley/syncproto/syncpb"
)

// allowAll is a core that lets the watcher watch anyone (the lookup is
// not what this benchmark measures); every user starts offline.
type allowAll struct{}

func (allowAll) Call(_ context.Context, req *syncpb.CoreRequest) (*syncpb.CoreResponse, error) {
	list := &syncpb.PresenceList{}
	for _, id := range req.GetGetPresence().GetUserIds() {
		list.Users = append(list.Users, &syncpb.PresenceUpdate{UserId: id})
	}
	return &syncpb.CoreResponse{Result: &syncpb.CoreResponse_Presence{Presence: list}}, nil
}

// convergence records, per user, when a change was made and when the
// watcher heard of it.
type convergence struct {
	mu     sync.Mutex
	want   bool // the state being waited for
	start  map[string]time.Time
	lat    []time.Duration
	done   chan struct{}
	wanted int
}

func (c *convergence) begin(want bool, n int) {
	c.mu.Lock()
	c.want, c.start, c.lat, c.wanted, c.done = want, map[string]time.Time{}, nil, n, make(chan struct{})
	c.mu.Unlock()
}

func (c *convergence) mark(user string, at time.Time) {
	c.mu.Lock()
	c.start[user] = at
	c.mu.Unlock()
}

func (c *convergence) on(p *syncpb.PresenceUpdate) {
	now := time.Now()
	c.mu.Lock()
	defer c.mu.Unlock()
	if p.Online != c.want {
		return
	}
	if t0, ok := c.start[p.UserId]; ok {
		delete(c.start, p.UserId)
		c.lat = append(c.lat, now.Sub(t0))
		if len(c.lat) == c.wanted {
			close(c.done)
		}
	}
}

// wait returns the latencies once every user converged or the deadline
// passed (then some are missing).
func (c *convergence) wait(d time.Duration) []time.Duration {
	select {
	case <-c.done:
	case <-time.After(d):
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	out := slices.Clone(c.lat)
	slices.Sort(out)
	return out
}

func pct(l []time.Duration, p float64) time.Duration {
	if len(l) == 0 {
		return 0
	}
	return l[min(len(l)-1, int(float64(len(l))*p))]
}

func cpuTime() time.Duration {
	var ru syscall.Rusage
	_ = syscall.Getrusage(syscall.RUSAGE_SELF, &ru)
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

// BenchmarkPresence10k measures presence convergence with 10,000 users on
// one edge of a 3-core region (real Raft, clustered NATS, the real edge
// reporter and watch), watched from a second edge: connect, disconnect
// (paced at 2,000 per second, then all at once) and edge kill (its NATS connection cut, no
// closing batch); and the CPU the whole process spends idle with 0 and
// with 10,000 users connected. Run: go test -run '^$' -bench Presence10k
// -benchtime 1x ./e2e/ (not part of make test).
func BenchmarkPresence10k(b *testing.B) {
	const users = 10_000
	const rate = 2000 // connects or disconnects per second
	for range b.N {
		r := startPresenceRegion(b, core.PresenceConfig{})
		ncA, err := nats.Connect(r.NATSURLs()[0])
		if err != nil {
			b.Fatal(err)
		}
		ncW, err := nats.Connect(r.NATSURLs()[2])
		if err != nil {
			b.Fatal(err)
		}
		defer ncW.Close()
		edgeA, err := presence.New(presence.Config{Conn: ncA, Core: allowAll{}, EdgeID: "edge-a"})
		if err != nil {
			b.Fatal(err)
		}
		watcher, err := presence.New(presence.Config{Conn: ncW, Core: allowAll{}, EdgeID: "edge-w"})
		if err != nil {
			b.Fatal(err)
		}
		ctxA, stopA := context.WithCancel(context.Background())
		ctxW, stopW := context.WithCancel(context.Background())
		var wg sync.WaitGroup
		wg.Go(func() { _ = edgeA.Run(ctxA) })
		wg.Go(func() { _ = watcher.Run(ctxW) })
		conv := &convergence{}
		ids := make([]string, users)
		for i := range ids {
			ids[i] = fmt.Sprintf("u%05d", i)
		}
		ws := watcher.Join(&syncpb.Caller{WorkspaceId: "w", UserId: "watcher", DeviceId: "d"}, conv.on)
		if _, err := ws.Watch(context.Background(), ids); err != nil {
			b.Fatal(err)
		}

		idle := func(what string) {
			time.Sleep(2 * time.Second) // settle
			c0, t0 := cpuTime(), time.Now()
			time.Sleep(10 * time.Second)
			cpu := cpuTime() - c0
			b.Logf("idle CPU with %s: %.1f ms/s of CPU (whole process: 3 cores, 2 edges' presence)", what, float64(cpu)/float64(time.Since(t0))*1000)
			b.ReportMetric(float64(cpu)/float64(time.Since(t0))*1000, "idle-cpu-ms/s-"+what)
		}
		idle("0-users")

		report := func(phase string, l []time.Duration, n int) {
			b.Logf("%-10s %5d/%d converged: p50 %v  p99 %v  max %v", phase, len(l), n, pct(l, 0.5).Round(time.Millisecond),
				pct(l, 0.99).Round(time.Millisecond), pct(l, 1).Round(time.Millisecond))
			b.ReportMetric(float64(pct(l, 0.99).Milliseconds()), "p99-ms-"+phase)
			b.ReportMetric(float64(n-len(l)), "missing-"+phase)
		}
		sessions := make([]*presence.Session, users)
		// each connects (or disconnects) every user, paced at rate per
		// second, or all at once (burst).
		each := func(phase string, online, burst bool) {
			conv.begin(online, users)
			tick := time.NewTicker(time.Second / rate)
			for i, id := range ids {
				if !burst {
					<-tick.C
				}
				conv.mark(id, time.Now())
				if online {
					sessions[i] = edgeA.Join(&syncpb.Caller{WorkspaceId: "w", UserId: id, DeviceId: "d"}, func(*syncpb.PresenceUpdate) {})
				} else {
					sessions[i].Leave()
				}
			}
			tick.Stop()
			report(phase, conv.wait(30*time.Second), users)
		}
		each("connect", true, false)
		idle("10k-users")
		each("disconnect", false, false)
		each("connect-burst", true, true)
		each("disconnect-burst", false, true)
		each("reconnect", true, true)
		time.Sleep(time.Second)
		conv.begin(false, users)
		now := time.Now()
		for _, id := range ids {
			conv.mark(id, now)
		}
		ncA.Close() // edge a dies: no closing batch reaches the cores
		report("edge-kill", conv.wait(30*time.Second), users)

		stopA()
		stopW()
		wg.Wait()
		ws.Leave()
	}
}
