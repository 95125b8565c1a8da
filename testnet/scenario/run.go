package scenario

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/parley-chat/parley/testnet/checker"
)

const password = "testnet password 1"

// Device is one client device of a scenario.
type Device struct {
	Name      string
	User      string // username
	Host      string // client host (c1..)
	Transport string // quic, wt, ws
	Edges     []string
	Send      bool
	// Deferred devices are not started with the others: the scenario
	// starts and stops them (Run.StartDevice, Run.StopDevice).
	Deferred bool
	// Watch makes the device a presence watcher: the presence check
	// measures how it converges on every true change of other users.
	Watch bool
}

// Plan is what a scenario runs: users, groups, devices, and the faults to
// inject while the devices send.
type Plan struct {
	Name    string
	Users   []string
	Groups  map[string][]string // name -> usernames (first creates it)
	Devices []Device
	// SendEvery is each sending device's pace per conversation.
	SendEvery time.Duration
	// Act injects faults while devices send; it returns the faults it
	// caused, for resume times. convs maps group names to ids.
	Act func(ctx context.Context, r *Run) error
	// Impairment describes the network for the report.
	Impairment string
}

// Run is a scenario in progress.
type Run struct {
	C       *Cluster
	Plan    Plan
	Dir     string
	Convs   map[string]string // group name -> conversation id
	members map[string][]string
	devs    map[string]*proc
	mu      sync.Mutex
	faults  []checker.Fault
	notes   []string
	starts  map[string]int // device -> times started
	ws      string
	convsOf func(user string) []string
	pres    presenceModel
}

// DumpLink writes host's impairment rules and counters to the run
// directory (<scenario>/link-<host>.txt): evidence of what was dropped.
func (r *Run) DumpLink(ctx context.Context, host string) {
	_ = os.WriteFile(filepath.Join(r.Dir, "link-"+host+".txt"), []byte(r.C.Link(host).Dump(ctx)), 0o644)
}

// Fault records a fault window for the report.
func (r *Run) Fault(name string, start, end time.Time, devices ...string) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.faults = append(r.faults, checker.Fault{Name: name, Start: start.UnixNano(), End: end.UnixNano(), Devices: devices})
}

// Note adds a line to the report (a migration's result, say).
func (r *Run) Note(format string, args ...any) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.notes = append(r.notes, fmt.Sprintf(format, args...))
}

// Device sends a command to a device and, with wait, waits for the
// status line starting with it.
func (r *Run) Device(ctx context.Context, name, cmd, wait string, timeout time.Duration) (string, error) {
	p := r.devs[name]
	from := p.lineCount()
	if err := p.send(cmd); err != nil {
		return "", err
	}
	if wait == "" {
		return "", nil
	}
	line, _, err := p.waitLine(ctx, wait, from, timeout)
	return line, err
}

// Result is a scenario's outcome.
type Result struct {
	Scenario   string          `json:"scenario"`
	Impairment string          `json:"impairment"`
	Started    time.Time       `json:"started"`
	Took       string          `json:"took"`
	Report     *checker.Report `json:"report"`
	Notes      []string        `json:"notes,omitempty"`
}

// Execute runs plan on the cluster and checks it. The report is written
// to <run dir>/<scenario>/report.{json,txt}.
func (c *Cluster) Execute(ctx context.Context, plan Plan) (*Result, error) {
	if len(plan.Devices) == 0 { // a stub
		return nil, plan.Act(ctx, nil)
	}
	start := time.Now()
	r := &Run{C: c, Plan: plan, Dir: filepath.Join(c.cfg.Dir, plan.Name), devs: map[string]*proc{}, starts: map[string]int{}}
	if err := os.MkdirAll(r.Dir, 0o755); err != nil {
		return nil, err
	}
	if plan.SendEvery <= 0 {
		plan.SendEvery = 250 * time.Millisecond
	}
	r.Plan = plan
	ws := fmt.Sprintf("%s-%d", plan.Name, start.UnixNano()%1e9)
	// Accounts and conversations, made from the first client host.
	var groups []string
	for name, ms := range plan.Groups {
		groups = append(groups, name+":"+strings.Join(ms, "+"))
	}
	httpURLs, _ := c.edgeURLs("c1", EdgeNames)
	out, err := c.output(ctx, "c1", "setup", "--http", httpURLs[0], "--workspace", ws, "--password", password,
		"--users", strings.Join(plan.Users, ","), "--groups", strings.Join(groups, ";"))
	if err != nil {
		return nil, fmt.Errorf("scenario %s: setup: %w", plan.Name, err)
	}
	var setup struct {
		Convs   map[string]string   `json:"convs"`
		Members map[string][]string `json:"members"`
	}
	if err := json.Unmarshal(out, &setup); err != nil {
		return nil, fmt.Errorf("scenario %s: setup output %q: %w", plan.Name, out, err)
	}
	r.Convs = setup.Convs
	// Devices.
	defer r.stopDevices()
	convsOf := func(user string) []string {
		var ids []string
		for g, ms := range plan.Groups {
			for _, m := range ms {
				if m == user {
					ids = append(ids, r.Convs[g])
				}
			}
		}
		return ids
	}
	members := map[string][]string{} // deferred devices miss messages by design
	for _, d := range plan.Devices {
		if d.Deferred {
			continue
		}
		for _, id := range convsOf(d.User) {
			members[id] = append(members[id], d.Name)
		}
	}
	r.members = members
	r.ws, r.convsOf = ws, convsOf
	r.pres = newPresenceModel(plan)
	var initial []Device
	for _, d := range plan.Devices {
		if d.Deferred {
			continue
		}
		initial = append(initial, d)
		if err := r.launch(d); err != nil {
			return nil, err
		}
	}
	for _, d := range initial {
		if _, err := r.awaitReady(ctx, d); err != nil {
			return nil, fmt.Errorf("scenario %s: %w", plan.Name, err)
		}
		r.pres.running[d.Name] = true
	}
	r.pres.update(time.Now().UnixNano(), "", "", nil) // the initial state: not a change
	r.pres.on, r.pres.start = true, time.Now().UnixNano()
	for _, d := range plan.Devices {
		if d.Send && !d.Deferred {
			if _, err := r.Device(ctx, d.Name, "send on", "", 0); err != nil {
				return nil, err
			}
		}
	}
	c.log.Info("scenario running", "scenario", plan.Name, "devices", len(plan.Devices))
	actErr := plan.Act(ctx, r)
	actEnd := time.Now()
	// Stop sending, wait for answers, then for every device to hold and
	// read everything acknowledged.
	marks := map[string]uint64{}
	var mu sync.Mutex
	err = r.all(ctx, func(name string) error {
		line, err := r.Device(ctx, name, "drain", "drained", 3*time.Minute)
		if err != nil {
			return err
		}
		mu.Lock()
		defer mu.Unlock()
		for _, p := range strings.Split(strings.TrimSpace(strings.TrimPrefix(line, "drained")), ",") {
			if conv, n, ok := strings.Cut(p, "="); ok {
				v, _ := strconv.ParseUint(n, 10, 64)
				marks[conv] = max(marks[conv], v)
			}
		}
		return nil
	})
	if err != nil {
		return nil, errors.Join(actErr, err)
	}
	err = r.all(ctx, func(name string) error {
		var own []string
		for conv, devs := range members {
			for _, d := range devs {
				if d == name {
					own = append(own, conv+"="+strconv.FormatUint(marks[conv], 10))
				}
			}
		}
		_, err := r.Device(ctx, name, "finish "+strings.Join(own, ","), "finished", 4*time.Minute)
		return err
	})
	if err != nil {
		return nil, errors.Join(actErr, err)
	}
	r.stopDevices()
	// Check.
	in := checker.Input{Members: members, Users: map[string][]string{}, Final: marks, Faults: r.faults, LinearizeTimeout: 60 * time.Second}
	for g, id := range r.Convs {
		in.Users[id] = setup.Members[g]
	}
	files, err := filepath.Glob(filepath.Join(r.Dir, "*.events")) // a device started n times has n
	if err != nil {
		return nil, err
	}
	for _, f := range files {
		evs, err := checker.ReadFile(f)
		if err != nil {
			return nil, err
		}
		in.Events = append(in.Events, evs...)
	}
	res := &Result{Scenario: plan.Name, Impairment: plan.Impairment, Started: start.UTC(), Took: time.Since(start).Round(time.Second).String(),
		Report: checker.Check(in)}
	if pin, ok := r.presenceInput(in.Events, actEnd); ok {
		res.Report.Presence = checker.CheckPresence(pin)
		if b, err := json.MarshalIndent(pin.Changes, "", "  "); err == nil {
			_ = os.WriteFile(filepath.Join(r.Dir, "presence-truth.json"), b, 0o644)
		}
	}
	r.mu.Lock()
	res.Notes = append(res.Notes, r.notes...)
	r.mu.Unlock()
	if actErr != nil {
		res.Notes = append(res.Notes, "fault injection: "+actErr.Error())
	}
	if err := writeResult(r.Dir, res); err != nil {
		return res, err
	}
	return res, actErr
}

// all runs f for every device at once and joins the errors.
func (r *Run) all(ctx context.Context, f func(name string) error) error {
	var wg sync.WaitGroup
	var mu sync.Mutex
	var errs []error
	for name, p := range r.devs {
		if p.exited() { // stopped by the scenario
			continue
		}
		wg.Add(1)
		go func() {
			defer wg.Done()
			if err := f(name); err != nil {
				mu.Lock()
				errs = append(errs, err)
				mu.Unlock()
			}
		}()
	}
	wg.Wait()
	return errors.Join(errs...)
}

func (r *Run) stopDevices() {
	var wg sync.WaitGroup
	for _, p := range r.devs {
		if p.exited() {
			continue
		}
		wg.Add(1)
		go func() {
			defer wg.Done()
			_ = p.send("quit")
			_ = p.Stop(30 * time.Second)
		}()
	}
	wg.Wait()
}

func writeResult(dir string, res *Result) error {
	b, err := json.MarshalIndent(res, "", "  ")
	if err != nil {
		return err
	}
	if err := os.WriteFile(filepath.Join(dir, "report.json"), b, 0o644); err != nil {
		return err
	}
	return os.WriteFile(filepath.Join(dir, "report.txt"), []byte(res.Text()), 0o644)
}

// Text is the result for people.
func (res *Result) Text() string {
	var b strings.Builder
	fmt.Fprintf(&b, "== %s (%s, took %s)\n", res.Scenario, res.Impairment, res.Took)
	b.WriteString(res.Report.Text())
	for _, n := range res.Notes {
		fmt.Fprintf(&b, "note: %s\n", n)
	}
	return b.String()
}

// sleep waits d or until ctx ends (the scenario's timeline, not a
// synchronization).
func sleep(ctx context.Context, d time.Duration) error {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}
