package scenario

import (
	"context"
	"errors"
	"fmt"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	"github.com/parley-chat/parley/testnet/checker"
)

// presenceModel is the truth of who is online: a user is online while one
// of its devices has a session on an edge that reaches the cores. The
// harness updates it as it starts and stops devices and cuts edges.
type presenceModel struct {
	devices map[string]Device
	users   []string
	on      bool              // recording changes (after the initial devices)
	start   int64             // when recording began
	running map[string]bool   // device -> session up (started, not stopped)
	cut     map[string]bool   // edge -> cut off from the cores
	state   map[string]bool   // username -> online
	ids     map[string]string // username -> user id (from the devices)
	changes []checker.PresenceChange
}

func newPresenceModel(plan Plan) presenceModel {
	m := presenceModel{devices: map[string]Device{}, users: plan.Users, running: map[string]bool{},
		cut: map[string]bool{}, state: map[string]bool{}, ids: map[string]string{}}
	for _, d := range plan.Devices {
		m.devices[d.Name] = d
	}
	return m
}

// edgeOf is the edge a device's session is on: the first of its list
// (scenario 5's devices have one edge each, so no failover moves them).
func edgeOf(d Device) string {
	if len(d.Edges) == 0 {
		return EdgeNames[0]
	}
	return d.Edges[0]
}

// update recomputes every user's state at t and records the changes.
func (m *presenceModel) update(t int64, kind, cause string, skip []string) {
	online := map[string]bool{}
	for name, up := range m.running {
		d := m.devices[name]
		if up && !m.cut[edgeOf(d)] {
			online[d.User] = true
		}
	}
	for _, u := range m.users {
		if online[u] == m.state[u] {
			continue
		}
		m.state[u] = online[u]
		if m.on {
			m.changes = append(m.changes, checker.PresenceChange{Name: u, Online: online[u], T: t, Kind: kind, Cause: cause, Skip: skip})
		}
	}
}

// watchersOn are the watcher devices whose session is on edge.
func (m *presenceModel) watchersOn(edge string) []string {
	var out []string
	for name, d := range m.devices {
		if d.Watch && edgeOf(d) == edge {
			out = append(out, name)
		}
	}
	return out
}

// launch starts device d's process (its events go to <name>.events, or
// <name>-<n>.events for its n-th start).
func (r *Run) launch(d Device) error {
	edges := d.Edges
	if len(edges) == 0 {
		edges = EdgeNames
	}
	r.starts[d.Name]++
	events := d.Name + ".events"
	if n := r.starts[d.Name]; n > 1 {
		events = d.Name + "-" + strconv.Itoa(n) + ".events"
	}
	httpURLs, udp := r.C.edgeURLs(d.Host, edges)
	args := []string{"client", "--name", d.Name, "--workspace", r.ws, "--user", d.User, "--password", password,
		"--http", strings.Join(httpURLs, ","), "--udp", strings.Join(udp, ","), "--transport", d.Transport,
		"--convs", strings.Join(r.convsOf(d.User), ","), "--read-every", "1s",
		"--events", filepath.Join(r.Dir, events)}
	if d.Send {
		args = append(args, "--send-every", r.Plan.SendEvery.String())
	}
	p, err := startProc(d.Name, r.C.hosts[d.Host].Command(context.Background(), r.C.tnhost, args...), filepath.Join(r.Dir, d.Name+".log"))
	if err != nil {
		return err
	}
	r.devs[d.Name] = p
	return nil
}

// awaitReady waits for d's session and returns when it came up (the
// device's clock, which is the machine's); it notes the user's id.
func (r *Run) awaitReady(ctx context.Context, d Device) (int64, error) {
	line, _, err := r.devs[d.Name].waitLine(ctx, "ready", 0, 90*time.Second)
	if err != nil {
		return 0, err
	}
	t := time.Now().UnixNano()
	for _, f := range strings.Fields(line)[1:] {
		k, v, _ := strings.Cut(f, "=")
		switch k {
		case "user":
			r.pres.ids[d.User] = v
		case "t":
			if n, err := strconv.ParseInt(v, 10, 64); err == nil {
				t = n
			}
		}
	}
	return t, nil
}

func (r *Run) device(name string) (Device, error) {
	d, ok := r.pres.devices[name]
	if !ok {
		return d, fmt.Errorf("scenario %s: no device %q", r.Plan.Name, name)
	}
	return d, nil
}

// StartDevice starts a (deferred or stopped) device and waits until its
// session is up: a connect, and the user's change to online if it was
// offline, at the session's start.
func (r *Run) StartDevice(ctx context.Context, name string) error {
	d, err := r.device(name)
	if err != nil {
		return err
	}
	if p := r.devs[name]; p != nil && !p.exited() {
		return fmt.Errorf("scenario %s: device %s already runs", r.Plan.Name, name)
	}
	if err := r.launch(d); err != nil {
		return err
	}
	t, err := r.awaitReady(ctx, d)
	if err != nil {
		return err
	}
	r.pres.running[name] = true
	r.pres.update(t, checker.ChangeClean, "start "+name, nil)
	return nil
}

// StopDevice ends a device's process cleanly (its session closes): a
// disconnect, and the user's change to offline if it was the user's last
// session, from the moment the harness asks.
func (r *Run) StopDevice(ctx context.Context, name string) error {
	p := r.devs[name]
	if p == nil || p.exited() {
		return fmt.Errorf("scenario %s: device %s does not run", r.Plan.Name, name)
	}
	t := time.Now().UnixNano()
	r.pres.running[name] = false
	r.pres.update(t, checker.ChangeClean, "stop "+name, nil)
	if err := p.send("quit"); err != nil {
		return err
	}
	select { // quit closes the session and ends the process
	case <-p.done:
		return nil
	case <-time.After(20 * time.Second):
		return p.Stop(10 * time.Second)
	case <-ctx.Done():
		return errors.Join(ctx.Err(), p.Stop(10*time.Second))
	}
}

// CutEdge partitions edge from every core node (nftables drops both
// ways): its users with no session elsewhere go offline, from the moment
// the drops are in place. Watchers on that edge are not expected to see
// it (nothing reaches them).
func (r *Run) CutEdge(ctx context.Context, edge string) error {
	if err := r.C.Partition(ctx, "presence-cut", edge, CoreNames...); err != nil {
		return err
	}
	t := time.Now().UnixNano()
	r.pres.cut[edge] = true
	r.pres.update(t, checker.ChangeCut, "cut of "+edge, r.pres.watchersOn(edge))
	return nil
}

// HealEdge lifts CutEdge: the edge's users come back online from the
// moment the drops are gone.
func (r *Run) HealEdge(ctx context.Context, edge string) error {
	if err := r.C.Heal(ctx, "presence-cut", edge); err != nil {
		return err
	}
	t := time.Now().UnixNano()
	r.pres.cut[edge] = false
	r.pres.update(t, checker.ChangeHeal, "heal of "+edge, r.pres.watchersOn(edge))
	return nil
}

// presenceInput is the presence check's input, for plans with watchers.
func (r *Run) presenceInput(events []checker.Event, end time.Time) (checker.PresenceInput, bool) {
	in := checker.PresenceInput{Events: events, Watchers: map[string]string{}, Final: map[string]bool{},
		Names: map[string]string{}, Start: r.pres.start, End: end.UnixNano()}
	for _, d := range r.Plan.Devices {
		if d.Watch && r.pres.ids[d.User] != "" {
			in.Watchers[d.Name] = r.pres.ids[d.User]
		}
	}
	if len(in.Watchers) == 0 {
		return in, false
	}
	for u, id := range r.pres.ids {
		in.Names[id] = u
		in.Final[id] = r.pres.state[u]
	}
	for _, c := range r.pres.changes {
		if c.User = r.pres.ids[c.Name]; c.User != "" {
			in.Changes = append(in.Changes, c)
		}
	}
	return in, true
}
