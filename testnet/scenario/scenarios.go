package scenario

import (
	"context"
	"errors"
	"fmt"
	"net/netip"
	"strings"
	"sync"
	"time"

	"github.com/parley-chat/parley/testnet/impair"
)

// ErrSkip is returned by scenarios that cannot run yet.
var ErrSkip = errors.New("scenario: skipped")

// Options size the scenarios.
type Options struct {
	Soak       time.Duration // scenario 4's length (default 2 min)
	Blackout   time.Duration // scenario 4's blackout (default 5 s)
	BlackEvery time.Duration // and its period (default 30 s)
	// Scenario 5's rounds of connects and disconnects (default 3) and
	// cuts of e1 (default 2); make test's smoke runs one of each.
	PresenceRounds, PresenceCuts int
}

// Names of the scenarios, in the order they run.
var Names = []string{"1-partition", "2-edge-loss", "3-network-change", "4-mobile-soak", "5-presence", "6-core-crash"}

// Plans returns the scenario of each name.
func Plans(o Options) map[string]Plan {
	if o.Soak <= 0 {
		o.Soak = 2 * time.Minute
	}
	if o.Blackout <= 0 {
		o.Blackout = 5 * time.Second
	}
	if o.BlackEvery <= 0 {
		o.BlackEvery = 30 * time.Second
	}
	if o.PresenceRounds <= 0 {
		o.PresenceRounds = 3
	}
	if o.PresenceCuts <= 0 {
		o.PresenceCuts = 2
	}
	users := []string{"ana", "bo", "cy"}
	groups := map[string][]string{"g1": {"ana", "bo", "cy"}, "g2": {"bo", "ana"}}
	// Devices spread over hosts, transports and edges; ana has two.
	spread := []Device{
		{Name: "ana-quic", User: "ana", Host: "c1", Transport: "quic", Edges: []string{"e1", "e2"}, Send: true},
		{Name: "ana-ws", User: "ana", Host: "c2", Transport: "ws", Edges: []string{"e2", "e1"}},
		{Name: "bo-wt", User: "bo", Host: "c2", Transport: "wt", Edges: []string{"e1", "e2"}, Send: true},
		{Name: "cy-ws", User: "cy", Host: "c3", Transport: "ws", Edges: []string{"e2", "e1"}, Send: true},
	}
	return map[string]Plan{
		"1-partition": {
			Name: "1-partition", Users: users, Groups: groups, Devices: spread, SendEvery: 150 * time.Millisecond,
			Impairment: "the leader of g1's shard cut off from the other cores (nftables drop) for 10 s",
			Act: func(ctx context.Context, r *Run) error {
				if err := sleep(ctx, 5*time.Second); err != nil {
					return err
				}
				leader := r.C.Leader(r.Convs["g1"])
				var others []string
				for _, n := range CoreNames {
					if n != leader {
						others = append(others, n)
					}
				}
				r.C.log.Info("partitioning the shard leader", "node", leader, "from", others)
				start := time.Now()
				if err := r.C.Partition(ctx, "leader-cut", leader, others...); err != nil {
					return err
				}
				err := sleep(ctx, 10*time.Second)
				r.DumpLink(ctx, leader)
				if herr := r.C.Heal(ctx, "leader-cut", leader); herr != nil {
					return errors.Join(err, herr)
				}
				r.Fault("partition of "+leader, start, time.Now())
				return errors.Join(err, sleep(ctx, 10*time.Second))
			},
		},
		"2-edge-loss": {
			Name: "2-edge-loss", Users: users, Groups: groups, SendEvery: 150 * time.Millisecond,
			Devices: []Device{
				{Name: "ana-quic", User: "ana", Host: "c1", Transport: "quic", Edges: []string{"e1", "e2"}, Send: true},
				{Name: "ana-ws", User: "ana", Host: "c2", Transport: "ws", Edges: []string{"e1", "e2"}},
				{Name: "bo-wt", User: "bo", Host: "c2", Transport: "wt", Edges: []string{"e1", "e2"}, Send: true},
				{Name: "cy-ws", User: "cy", Host: "c3", Transport: "ws", Edges: []string{"e2", "e1"}, Send: true},
			},
			Impairment: "edge e1 killed (SIGKILL) with traffic in flight; restarted 20 s later",
			Act: func(ctx context.Context, r *Run) error {
				if err := sleep(ctx, 5*time.Second); err != nil {
					return err
				}
				start := time.Now()
				r.C.KillEdge("e1")
				r.Fault("e1 killed", start, start, "ana-quic", "ana-ws", "bo-wt")
				err := sleep(ctx, 20*time.Second)
				if serr := r.C.StartEdge(ctx, "e1"); serr != nil {
					return errors.Join(err, serr)
				}
				return errors.Join(err, sleep(ctx, 5*time.Second))
			},
		},
		"3-network-change": {
			Name: "3-network-change", Users: users, Groups: groups, SendEvery: 150 * time.Millisecond,
			Devices: []Device{
				{Name: "ana-quic", User: "ana", Host: "c4", Transport: "quic", Send: true},
				{Name: "bo-quic", User: "bo", Host: "c4", Transport: "quic", Edges: []string{"e2", "e1"}, Send: true},
				{Name: "bo-ws", User: "bo", Host: "c4", Transport: "ws", Send: true},
				{Name: "cy-wt", User: "cy", Host: "c3", Transport: "wt", Send: true},
				{Name: "cy-ws", User: "cy", Host: "c3", Transport: "ws", Edges: []string{"e2", "e1"}},
				{Name: "ana-ws", User: "ana", Host: "c1", Transport: "ws"},
			},
			Impairment: "c4 changes address twice (QUIC devices migrate, WS finds out); c4 moves from Wi-Fi to cellular and back (all its devices told: QUIC migrates, WS reconnects); c3's path cut for 30 s",
			Act: func(ctx context.Context, r *Run) error {
				c4 := []string{"ana-quic", "bo-quic", "bo-ws"}
				// migrate tells devs at once that the network changed and
				// notes how each took it: raw QUIC moves its connection to a
				// new socket (or, when the new path fails its probe, drops
				// it and resumes on a new one); a WebSocket drops its
				// connection and resumes on a new one. Resume times count
				// from the change, so they include the migration.
				migrate := func(fault string, devs []string) error {
					var wg sync.WaitGroup
					errs := make([]error, len(devs))
					for i, d := range devs {
						wg.Add(1)
						go func() {
							defer wg.Done()
							line, err := r.Device(ctx, d, "migrate", "migrated", 20*time.Second)
							if err != nil {
								errs[i] = err
								return
							}
							r.C.log.Info("migration", "fault", fault, "device", d, "result", line)
							r.Note("%s: %s %s", fault, d, line)
						}()
					}
					wg.Wait()
					return errors.Join(errs...)
				}
				// change makes a network change of c4's (one that returns
				// its old and new address), records it as a fault of all
				// c4's devices, tells those of them in told, then lets
				// traffic flow for 5 s.
				change := func(fault string, told []string, do func(context.Context) (netip.Addr, netip.Addr, error)) error {
					start := time.Now()
					old, cur, err := do(ctx)
					if err != nil {
						return err
					}
					r.C.log.Info("c4's network changed", "fault", fault, "old", old, "new", cur)
					r.Fault(fault, start, time.Now(), c4...)
					if err := migrate(fault, told); err != nil {
						return err
					}
					return sleep(ctx, 5*time.Second)
				}
				if err := sleep(ctx, 5*time.Second); err != nil {
					return err
				}
				// The address changes tell only the QUIC devices: the
				// WebSocket device finds out by its keepalive.
				for i := 0; i < 2; i++ {
					if err := change(fmt.Sprintf("c4 address change %d", i+1), c4[:2], r.C.hosts["c4"].ChangeAddr); err != nil {
						return err
					}
				}
				// The link moves tell every device, as a phone's system
				// tells its apps when the default network changes.
				for _, to := range []string{"cellular", "Wi-Fi"} {
					if err := change("c4 moved to "+to, c4, r.C.hosts["c4"].MoveLink); err != nil {
						return err
					}
				}
				start := time.Now()
				if err := r.C.Link("c3").Block(ctx, "cut"); err != nil {
					return err
				}
				err := sleep(ctx, 30*time.Second)
				r.DumpLink(ctx, "c3")
				if uerr := r.C.Link("c3").Unblock(ctx, "cut"); uerr != nil {
					return errors.Join(err, uerr)
				}
				r.Fault("c3 cut 30s", start, time.Now(), "cy-wt", "cy-ws")
				return errors.Join(err, sleep(ctx, 10*time.Second))
			},
		},
		"4-mobile-soak": {
			Name: "4-mobile-soak", Users: users, Groups: groups, SendEvery: 500 * time.Millisecond,
			Devices: []Device{
				{Name: "ana-quic", User: "ana", Host: "c5", Transport: "quic", Send: true},
				{Name: "bo-wt", User: "bo", Host: "c5", Transport: "wt", Edges: []string{"e2", "e1"}, Send: true},
				{Name: "cy-ws", User: "cy", Host: "c5", Transport: "ws", Send: true},
				{Name: "ana-ws", User: "ana", Host: "c1", Transport: "ws", Edges: []string{"e2", "e1"}},
			},
			Impairment: fmt.Sprintf("c5 (quic, wt, ws): 75±20 ms each way (150 ms RTT), 3%% loss each way, 1 Mbit/s each way, %s blackout every %s, for %s; ana-ws on c1 unimpaired", o.Blackout, o.BlackEvery, o.Soak),
			Act: func(ctx context.Context, r *Run) error {
				l := r.C.Link("c5")
				shape := impair.Shape{Rate: 1_000_000, Delay: 75 * time.Millisecond, Jitter: 20 * time.Millisecond}
				for _, d := range []impair.Dir{impair.Out, impair.In} {
					if err := l.Shape(ctx, d, shape); err != nil {
						return err
					}
					if err := l.Filter(ctx, d, "loss", impair.Rule{Loss: 0.03}); err != nil {
						return err
					}
				}
				defer func() {
					r.DumpLink(context.Background(), "c5")
					_ = l.Clear(context.Background())
				}()
				end := time.Now().Add(o.Soak)
				affected := []string{"ana-quic", "bo-wt", "cy-ws"}
				for n := 1; time.Until(end) > o.BlackEvery; n++ {
					if err := sleep(ctx, o.BlackEvery-o.Blackout); err != nil {
						return err
					}
					start := time.Now()
					if err := l.Block(ctx, "blackout"); err != nil {
						return err
					}
					err := sleep(ctx, o.Blackout)
					if uerr := l.Unblock(ctx, "blackout"); uerr != nil {
						return errors.Join(err, uerr)
					}
					if err != nil {
						return err
					}
					r.Fault(fmt.Sprintf("blackout %d", n), start, time.Now(), affected...)
				}
				return sleep(ctx, time.Until(end))
			},
		},
		"5-presence": {
			Name: "5-presence", Users: presenceUsers, Groups: map[string][]string{"all": presenceUsers},
			Devices:    presenceDevices,
			Impairment: fmt.Sprintf("devices of a and b connect and disconnect (process start/stop) across e1 and e2, %d rounds; then e1 cut off from every core (nftables drop) for 10 s and healed, %d times, with x's only device and one of y's two on e1", o.PresenceRounds, o.PresenceCuts),
			Act: func(ctx context.Context, r *Run) error {
				step := func(err error) error { // a change, then time for watchers to see it
					if err != nil {
						return err
					}
					return sleep(ctx, 2*time.Second)
				}
				if err := sleep(ctx, 3*time.Second); err != nil { // watchers' catch-up
					return err
				}
				for round := 0; round < o.PresenceRounds; round++ {
					for _, s := range []struct {
						start bool
						dev   string
					}{
						{true, "a-quic"}, // a online (e1)
						{true, "b-wt"},   // b online (e2)
						{true, "a-ws"},   // a's second device (e2): no change
						{false, "a-quic"},
						{false, "b-wt"}, // b offline
						{false, "a-ws"}, // a offline
						{true, "b-ws"},  // b online (e1)
						{false, "b-ws"}, // b offline
					} {
						var err error
						if s.start {
							err = r.StartDevice(ctx, s.dev)
						} else {
							err = r.StopDevice(ctx, s.dev)
						}
						if err := step(err); err != nil {
							return err
						}
					}
				}
				for _, d := range []string{"x-ws", "y-quic", "y-ws"} {
					if err := r.StartDevice(ctx, d); err != nil {
						return err
					}
				}
				if err := sleep(ctx, 3*time.Second); err != nil {
					return err
				}
				for i := 1; i <= o.PresenceCuts; i++ {
					if err := r.CutEdge(ctx, "e1"); err != nil {
						return err
					}
					err := sleep(ctx, 10*time.Second)
					r.DumpLink(ctx, "e1")
					if herr := r.HealEdge(ctx, "e1"); herr != nil {
						return errors.Join(err, herr)
					}
					r.C.log.Info("e1 cut and healed", "time", i)
					if err := errors.Join(err, sleep(ctx, 8*time.Second)); err != nil {
						return err
					}
				}
				return nil
			},
		},
		"6-core-crash": {
			Name: "6-core-crash", Users: users, Groups: groups, Devices: spread, SendEvery: 150 * time.Millisecond,
			Impairment: "the leader of g1's shard killed (SIGKILL) for 10 s, then restarted on its data, while devices send and report reads every second",
			Act: func(ctx context.Context, r *Run) error {
				if err := sleep(ctx, 5*time.Second); err != nil {
					return err
				}
				leader := r.C.Leader(r.Convs["g1"])
				r.C.log.Info("killing the shard leader", "node", leader)
				start := time.Now()
				r.C.KillCore(leader)
				err := sleep(ctx, 10*time.Second)
				if serr := r.C.StartCore(ctx, leader); serr != nil {
					return errors.Join(err, serr)
				}
				r.Fault(leader+" down", start, start) // resume measured from the crash
				return errors.Join(err, sleep(ctx, 10*time.Second))
			},
		},
	}
}

// Scenario 5's users and devices: four watchers that stay connected (two
// on each edge), a and b whose devices come and go, x with one device on
// e1 (the edge that is cut), y with one device on each edge (stays
// online through the cut). Each device is pinned to one edge. No device
// sends.
var (
	presenceUsers   = []string{"w1", "w2", "w3", "w4", "a", "b", "x", "y"}
	presenceDevices = []Device{
		{Name: "w1-ws", User: "w1", Host: "c1", Transport: "ws", Edges: []string{"e1"}, Watch: true},
		{Name: "w2-quic", User: "w2", Host: "c2", Transport: "quic", Edges: []string{"e2"}, Watch: true},
		{Name: "w3-wt", User: "w3", Host: "c3", Transport: "wt", Edges: []string{"e2"}, Watch: true},
		{Name: "w4-quic", User: "w4", Host: "c4", Transport: "quic", Edges: []string{"e1"}, Watch: true},
		{Name: "a-quic", User: "a", Host: "c1", Transport: "quic", Edges: []string{"e1"}, Deferred: true},
		{Name: "a-ws", User: "a", Host: "c2", Transport: "ws", Edges: []string{"e2"}, Deferred: true},
		{Name: "b-wt", User: "b", Host: "c3", Transport: "wt", Edges: []string{"e2"}, Deferred: true},
		{Name: "b-ws", User: "b", Host: "c4", Transport: "ws", Edges: []string{"e1"}, Deferred: true},
		{Name: "x-ws", User: "x", Host: "c2", Transport: "ws", Edges: []string{"e1"}, Deferred: true},
		{Name: "y-quic", User: "y", Host: "c3", Transport: "quic", Edges: []string{"e1"}, Deferred: true},
		{Name: "y-ws", User: "y", Host: "c4", Transport: "ws", Edges: []string{"e2"}, Deferred: true},
	}
)

// Select expands "all" or a comma list of numbers or names.
func Select(s string) ([]string, error) {
	if s == "" || s == "all" {
		return Names, nil
	}
	var out []string
	for _, p := range strings.Split(s, ",") {
		found := false
		for _, n := range Names {
			if n == p || strings.HasPrefix(n, p+"-") {
				out = append(out, n)
				found = true
			}
		}
		if !found {
			return nil, fmt.Errorf("scenario: unknown scenario %q (have %s)", p, strings.Join(Names, ", "))
		}
	}
	return out, nil
}
