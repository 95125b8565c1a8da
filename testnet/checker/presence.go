package checker

import (
	"fmt"
	"sort"
	"strings"
)

// Kinds of presence change, reported apart (their convergence targets differ).
const (
	ChangeClean = "clean"    // a device process started or stopped
	ChangeCut   = "edge-cut" // the user's edge was cut off from the cores
	ChangeHeal  = "heal"     // that edge's cut was lifted
)

// PresenceChange is a true change of a user's presence, as the harness
// caused it: at T the user became Online (or not).
type PresenceChange struct {
	User   string `json:"user"` // user id
	Name   string `json:"name"` // for people
	Online bool   `json:"online"`
	T      int64  `json:"t"` // Unix ns
	Kind   string `json:"kind"`
	Cause  string `json:"cause"`
	// Skip are watcher devices not expected to see this change (their
	// own edge was cut off); their final state is still checked.
	Skip []string `json:"skip,omitempty"`
}

// PresenceInput is a presence run's record.
type PresenceInput struct {
	Events []Event // KindPresence events are used; others ignored
	// Watchers maps each watcher device to its own user id (a watcher
	// is not checked on its own user).
	Watchers map[string]string
	// Changes are the true changes, in time order per user.
	Changes []PresenceChange
	// Final is each checked user's true state at End.
	Final map[string]bool
	Names map[string]string // user id -> name, for people
	// Start and End bound the check (Unix ns): changes before Start are
	// not measured, and every watcher's view at End must equal Final.
	Start, End int64
}

// PresenceReport is the presence check's verdict and numbers.
type PresenceReport struct {
	Changes int `json:"changes"`
	// Converge is, per kind of change, the time from each true change to
	// each watcher showing its final state for good (one sample per
	// change and watcher).
	Converge map[string]Percentiles `json:"converge"`
	// Unconverged are (change, watcher) pairs whose watcher did not show
	// the new state by the user's next change or the end; WrongFinal are
	// watchers whose view at the end differs from the truth. Either fails
	// the run.
	Unconverged []string `json:"unconverged,omitempty"`
	WrongFinal  []string `json:"wrong_final,omitempty"`
	// Flaps are moments a watcher showed a user in the wrong state after
	// it had shown the right one, with no true change between (e.g. a
	// user with a device on a healthy edge shown offline for a while).
	// They do not fail the run.
	Flaps []string `json:"flaps,omitempty"`
}

// OK says every watcher converged on every change and ended right.
func (p *PresenceReport) OK() bool { return len(p.Unconverged) == 0 && len(p.WrongFinal) == 0 }

// CheckPresence measures how watchers converged on the true changes.
func CheckPresence(in PresenceInput) *PresenceReport {
	rep := &PresenceReport{Converge: map[string]Percentiles{}}
	// seen[watcher][user]: the watcher's presence events, in its order.
	seen := map[string]map[string][]Event{}
	for _, e := range in.Events {
		if e.Kind != KindPresence || in.Watchers[e.Device] == "" {
			continue
		}
		if seen[e.Device] == nil {
			seen[e.Device] = map[string][]Event{}
		}
		seen[e.Device][e.User] = append(seen[e.Device][e.User], e)
	}
	for _, byUser := range seen {
		for _, evs := range byUser {
			sort.SliceStable(evs, func(i, j int) bool { return evs[i].T < evs[j].T })
		}
	}
	name := func(u string) string {
		if n := in.Names[u]; n != "" {
			return n
		}
		return u
	}
	state := func(b bool) string {
		if b {
			return "online"
		}
		return "offline"
	}
	// view is what w showed for u at t: 0 unknown, 1 offline, 2 online.
	view := func(w, u string, t int64) int {
		v := 0
		for _, e := range seen[w][u] {
			if e.T > t {
				break
			}
			v = 1
			if e.Up {
				v = 2
			}
		}
		return v
	}
	watchers := sortedKeys(in.Watchers)
	samples := map[string][]int64{}
	byUser := map[string][]PresenceChange{}
	for _, c := range in.Changes {
		byUser[c.User] = append(byUser[c.User], c)
	}
	for _, u := range sortedKeys(byUser) {
		cs := byUser[u]
		sort.SliceStable(cs, func(i, j int) bool { return cs[i].T < cs[j].T })
		for i, c := range cs {
			if c.T < in.Start {
				continue
			}
			rep.Changes++
			until := in.End
			if i+1 < len(cs) {
				until = cs[i+1].T
			}
			want := 1
			if c.Online {
				want = 2
			}
			for _, w := range watchers {
				if in.Watchers[w] == u || contains(c.Skip, w) {
					continue
				}
				cur := view(w, u, c.T)
				convT := int64(-1)
				if cur == want {
					convT = c.T
				}
				reached := convT >= 0
				for _, e := range seen[w][u] {
					if e.T <= c.T || e.T > until {
						continue
					}
					v := 1
					if e.Up {
						v = 2
					}
					switch {
					case v == want && cur != want:
						convT = e.T
						reached = true
					case v != want && cur == want && reached:
						rep.Flaps = append(rep.Flaps, fmt.Sprintf("%s showed %s %s at +%.0f ms after %s (%s)",
							w, name(u), state(e.Up), ms(e.T-c.T), c.Cause, state(c.Online)))
						convT = -1
					case v != want:
						convT = -1
					}
					cur = v
				}
				if cur != want || convT < 0 {
					rep.Unconverged = append(rep.Unconverged, fmt.Sprintf("%s never showed %s %s after %s (within %.1f s; showed %s)",
						w, name(u), state(c.Online), c.Cause, float64(until-c.T)/1e9, viewName(cur)))
					continue
				}
				samples[c.Kind] = append(samples[c.Kind], convT-c.T)
			}
		}
	}
	for k, s := range samples {
		rep.Converge[k] = percentiles(s)
	}
	for _, w := range watchers {
		for _, u := range sortedKeys(in.Final) {
			if in.Watchers[w] == u {
				continue
			}
			want := 1
			if in.Final[u] {
				want = 2
			}
			if got := view(w, u, in.End); got != want {
				rep.WrongFinal = append(rep.WrongFinal, fmt.Sprintf("%s shows %s %s at the end, want %s", w, name(u), viewName(got), state(in.Final[u])))
			}
		}
	}
	return rep
}

func viewName(v int) string {
	return [...]string{"nothing", "offline", "online"}[v]
}

func contains(s []string, x string) bool {
	for _, v := range s {
		if v == x {
			return true
		}
	}
	return false
}

// Text renders the presence report for people.
func (p *PresenceReport) Text() string {
	var b strings.Builder
	fmt.Fprintf(&b, "presence: %d true changes; converged: %v\n", p.Changes, p.OK())
	for _, k := range []string{ChangeClean, ChangeCut, ChangeHeal} {
		if c, ok := p.Converge[k]; ok {
			fmt.Fprintf(&b, "presence convergence %s: n %d, p50 %.1f ms, p90 %.1f ms, p99 %.1f ms, max %.1f ms\n", k, c.N, c.P50, c.P90, c.P99, c.Max)
		}
	}
	for _, s := range p.Unconverged {
		fmt.Fprintf(&b, "  error: %s\n", s)
	}
	for _, s := range p.WrongFinal {
		fmt.Fprintf(&b, "  error: %s\n", s)
	}
	for _, s := range p.Flaps {
		fmt.Fprintf(&b, "  warning: flap: %s\n", s)
	}
	return b.String()
}
