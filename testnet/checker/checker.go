package checker

import (
	"fmt"
	"slices"
	"sort"
	"strings"
	"time"
)

// Fault is a period of broken network (or a dead process) and the devices
// it hit, for resume times.
type Fault struct {
	Name    string   `json:"name"`
	Start   int64    `json:"start"` // Unix ns
	End     int64    `json:"end"`
	Devices []string `json:"devices"` // affected devices (empty: all)
}

// Input is one run's record.
type Input struct {
	Events []Event
	// Members is, per conversation, the devices that belong to it (all
	// must receive every acknowledged message) and the user ids whose read
	// positions must converge to Final.
	Members map[string][]string
	Users   map[string][]string
	// Final is, per conversation, the read position every member reported
	// at the end.
	Final  map[string]uint64
	Faults []Fault
	// Linearizability bounds Porcupine's check of each conversation.
	LinearizeTimeout time.Duration
}

// Percentiles of a latency sample, in milliseconds.
type Percentiles struct {
	N   int     `json:"n"`
	P50 float64 `json:"p50_ms"`
	P90 float64 `json:"p90_ms"`
	P99 float64 `json:"p99_ms"`
	Max float64 `json:"max_ms"`
}

// Resume is how long devices took to get going after a fault ended.
type Resume struct {
	Fault string `json:"fault"`
	// FirstAck and FirstRecv are the slowest affected device's time from
	// the fault's end to its first ack / first delivery after it (ms;
	// -1: none came).
	FirstAck  float64 `json:"first_ack_ms"`
	FirstRecv float64 `json:"first_recv_ms"`
	Devices   int     `json:"devices"`
	// PerDevice is each affected device's [first ack, first delivery] in
	// ms after the fault's end (-1: none; first ack -1 too for a device
	// that does not send).
	PerDevice map[string][2]float64 `json:"per_device"`
}

// Report is the checker's verdict and numbers.
type Report struct {
	Sent       int `json:"sent"`
	Acked      int `json:"acked"`
	Unacked    int `json:"unacked"`
	Delivered  int `json:"delivered"`  // deliveries of user messages to member devices
	Lost       int `json:"lost"`       // (acked message, member device) pairs never delivered
	Duplicated int `json:"duplicated"` // deliveries of a seq the device already had
	Reordered  int `json:"reordered"`  // deliveries below one already made
	Gaps       int `json:"gaps"`       // deliveries that skipped a seq
	Mismatched int `json:"mismatched"` // seq -> message disagreements (acks vs deliveries vs devices)
	// ReadsConverged says every device saw every member's read position
	// at Final; ReadMismatches lists where not.
	ReadsConverged bool        `json:"reads_converged"`
	ReadMismatches []string    `json:"read_mismatches,omitempty"`
	ReadConverge   Percentiles `json:"read_converge"`
	AckLatency     Percentiles `json:"ack_latency"`
	Delivery       Percentiles `json:"delivery_latency"`
	Resumes        []Resume    `json:"resumes,omitempty"`
	Reconnects     int         `json:"reconnects"`
	// Linearizable per conversation: "ok", "illegal" or "unknown"
	// (Porcupine timed out).
	Linearizable map[string]string `json:"linearizable"`
	Errors       []string          `json:"errors,omitempty"` // the first problems found, for people
	// Warnings are liveness problems, which do not fail a run: sends never
	// answered, devices with no ack or delivery after a fault ended.
	Warnings []string `json:"warnings,omitempty"`
	// Presence is the presence check, for runs that make one.
	Presence *PresenceReport `json:"presence,omitempty"`
}

// OK says the run kept every promise checked.
func (r *Report) OK() bool {
	illegal := false
	for _, v := range r.Linearizable {
		illegal = illegal || v == "illegal"
	}
	return r.Lost == 0 && r.Duplicated == 0 && r.Reordered == 0 && r.Gaps == 0 && r.Mismatched == 0 && r.ReadsConverged && !illegal &&
		(r.Presence == nil || r.Presence.OK())
}

const maxErrors = 20

func (r *Report) errorf(format string, args ...any) {
	if len(r.Errors) < maxErrors {
		r.Errors = append(r.Errors, fmt.Sprintf(format, args...))
	}
}

// Check verifies in and computes the report.
func Check(in Input) *Report {
	r := &Report{Linearizable: map[string]string{}, ReadsConverged: true}
	type sendRec struct {
		conv    string
		t, ackT int64
		seq     uint64
		acked   bool
		device  string
	}
	var ackS, delS, readS []int64  // latencies, ns
	sends := map[string]*sendRec{} // client_msg_id -> send
	ackAt := seqIDs{}              // from acks
	byDevice := map[string][]Event{}
	for _, e := range in.Events {
		byDevice[e.Device] = append(byDevice[e.Device], e)
		switch e.Kind {
		case KindSend:
			r.Sent++
			sends[e.ID] = &sendRec{conv: e.Conv, t: e.T, device: e.Device}
		case KindConn:
			if e.Up {
				r.Reconnects++
			}
		}
	}
	for _, e := range in.Events {
		if e.Kind != KindAck {
			continue
		}
		s := sends[e.ID]
		if s == nil {
			r.Mismatched++
			r.errorf("ack of %s (%s seq %d) that no device sent", e.ID, e.Conv, e.Seq)
			continue
		}
		if s.acked {
			if s.seq != e.Seq {
				r.Mismatched++
				r.errorf("%s acked twice with seq %d and %d", e.ID, s.seq, e.Seq)
			}
			continue
		}
		s.acked, s.seq, s.ackT = true, e.Seq, e.T
		r.Acked++
		ackS = append(ackS, e.T-s.t)
		if prev, clash := ackAt.put(e.Conv, e.Seq, e.ID); clash {
			r.Mismatched++
			r.errorf("%s seq %d acked to both %s and %s", e.Conv, e.Seq, prev, e.ID)
		}
	}
	r.Unacked = r.Sent - r.Acked
	for _, e := range in.Events {
		if e.Kind == KindFail && sends[e.ID] != nil && !sends[e.ID].acked {
			r.Warnings = append(r.Warnings, fmt.Sprintf("%s: send %s to %s unanswered after %.1f s (%s)",
				e.Device, e.ID, e.Conv, float64(e.T-sends[e.ID].t)/1e9, e.Err))
		}
	}
	// Deliveries, per device and conversation, in the order the app got them.
	seen := seqIDs{}                               // from deliveries
	got := map[string]map[string]map[uint64]bool{} // device -> conv -> seqs
	for _, dev := range sortedKeys(byDevice) {
		last := map[string]uint64{}
		got[dev] = map[string]map[uint64]bool{}
		for _, e := range byDevice[dev] {
			if e.Kind != KindRecv {
				continue
			}
			have := got[dev][e.Conv]
			if have == nil {
				have = map[uint64]bool{}
				got[dev][e.Conv] = have
			}
			switch {
			case have[e.Seq]:
				r.Duplicated++
				r.errorf("%s got %s seq %d twice", dev, e.Conv, e.Seq)
			case e.Seq < last[e.Conv]:
				r.Reordered++
				r.errorf("%s got %s seq %d after %d", dev, e.Conv, e.Seq, last[e.Conv])
			case e.Seq > last[e.Conv]+1:
				r.Gaps++
				r.errorf("%s got %s seq %d after %d (gap)", dev, e.Conv, e.Seq, last[e.Conv])
			}
			have[e.Seq] = true
			last[e.Conv] = max(last[e.Conv], e.Seq)
			if !e.System {
				r.Delivered++
			}
			if prev, clash := seen.put(e.Conv, e.Seq, e.ID); clash {
				r.Mismatched++
				r.errorf("%s seq %d delivered as %q and as %q", e.Conv, e.Seq, prev, e.ID)
			}
			if id, ok := ackAt[e.Conv][e.Seq]; ok && id != e.ID {
				r.Mismatched++
				r.errorf("%s seq %d acked as %s but %s got %s", e.Conv, e.Seq, id, dev, e.ID)
			}
			if s := sends[e.ID]; s != nil && !e.System && s.device != dev {
				delS = append(delS, e.T-s.t)
			}
		}
	}
	// Every acknowledged message at every member device.
	for conv, devs := range in.Members {
		for seq, id := range ackAt[conv] {
			for _, dev := range devs {
				if !got[dev][conv][seq] {
					r.Lost++
					r.errorf("%s never got %s seq %d (%s)", dev, conv, seq, id)
				}
			}
		}
	}
	// Read positions.
	for _, dev := range sortedKeys(byDevice) {
		for _, e := range byDevice[dev] {
			if e.Kind == KindFinal && e.Conv != "" {
				want := in.Final[e.Conv]
				for _, u := range in.Users[e.Conv] {
					if e.Reads[u] < want {
						r.ReadsConverged = false
						r.ReadMismatches = append(r.ReadMismatches, fmt.Sprintf("%s sees %s read %s at %d, want %d", dev, u, e.Conv, e.Reads[u], want))
					}
				}
				if e.ReadTook >= 0 {
					readS = append(readS, e.ReadTook)
				}
			}
		}
	}
	// Devices polled at different moments; after the last report they
	// must agree.
	views := map[string]map[uint64]bool{} // conv/user -> values seen
	for _, e := range in.Events {
		if e.Kind == KindFinal {
			for u, v := range e.Reads {
				k := e.Conv + "/" + u
				if views[k] == nil {
					views[k] = map[uint64]bool{}
				}
				views[k][v] = true
			}
		}
	}
	for _, k := range sortedKeys(views) {
		if len(views[k]) > 1 {
			r.ReadsConverged = false
			r.ReadMismatches = append(r.ReadMismatches, fmt.Sprintf("devices disagree on %s: %v", k, views[k]))
		}
	}
	for conv, devs := range in.Members {
		for _, dev := range devs {
			found := false
			for _, e := range byDevice[dev] {
				found = found || (e.Kind == KindFinal && e.Conv == conv)
			}
			if !found && len(in.Final) > 0 {
				r.ReadsConverged = false
				r.ReadMismatches = append(r.ReadMismatches, fmt.Sprintf("%s reported no final read positions for %s", dev, conv))
			}
		}
	}
	// Resume after each fault.
	for _, f := range in.Faults {
		res := Resume{Fault: f.Name, PerDevice: map[string][2]float64{}}
		devs := f.Devices
		if len(devs) == 0 {
			devs = sortedKeys(byDevice)
		}
		for _, dev := range devs {
			ack, recv := int64(-1), int64(-1)
			sends := false
			for _, e := range byDevice[dev] {
				sends = sends || e.Kind == KindSend
				if e.T < f.End {
					continue
				}
				if e.Kind == KindAck && ack < 0 {
					ack = e.T - f.End
				}
				if e.Kind == KindRecv && recv < 0 {
					recv = e.T - f.End
				}
			}
			res.Devices++
			res.PerDevice[dev] = [2]float64{ms(ack), ms(recv)}
			if (sends && ack < 0) || recv < 0 {
				r.Warnings = append(r.Warnings, fmt.Sprintf("%s: no ack or no delivery after %s ended", dev, f.Name))
			}
			if sends { // receive-only devices have no acks to wait for
				res.FirstAck = worst(res.FirstAck, ack)
			}
			res.FirstRecv = worst(res.FirstRecv, recv)
		}
		r.Resumes = append(r.Resumes, res)
	}
	r.AckLatency, r.Delivery, r.ReadConverge = percentiles(ackS), percentiles(delS), percentiles(readS)
	// Linearizability of each conversation's log.
	for conv := range in.Members {
		var ops []logOp
		for id, s := range sends {
			if s.conv != conv {
				continue
			}
			switch {
			case s.acked:
				ops = append(ops, logOp{kind: opAppend, id: id, seq: s.seq, call: s.t, ret: s.ackT})
			default:
				// Pending forever: it took effect iff a device got it.
				for seq, got := range seen[conv] {
					if got == id {
						ops = append(ops, logOp{kind: opAppend, id: id, seq: seq, call: s.t, ret: -1})
					}
				}
			}
		}
		for _, dev := range sortedKeys(byDevice) {
			for _, e := range byDevice[dev] {
				if e.Kind == KindRecv && e.Conv == conv {
					ops = append(ops, logOp{kind: opRead, id: e.ID, seq: e.Seq, call: e.T, ret: e.T, system: e.System})
				}
			}
		}
		r.Linearizable[conv] = linearizable(ops, in.LinearizeTimeout)
		if r.Linearizable[conv] == "illegal" {
			r.errorf("%s: history is not linearizable as an append-only log", conv)
		}
	}
	return r
}

func ms(d int64) float64 {
	if d < 0 {
		return -1
	}
	return float64(d) / 1e6
}

func worst(cur float64, d int64) float64 {
	if cur < 0 {
		return cur
	}
	if d < 0 {
		return -1
	}
	return max(cur, float64(d)/1e6)
}

func sortedKeys[V any](m map[string]V) []string {
	out := make([]string, 0, len(m))
	for k := range m {
		out = append(out, k)
	}
	sort.Strings(out)
	return out
}

// percentiles summarizes latencies (ns).
func percentiles(s []int64) Percentiles {
	p := Percentiles{N: len(s)}
	if len(s) == 0 {
		return p
	}
	slices.Sort(s)
	at := func(q float64) float64 { return float64(s[min(len(s)-1, int(q*float64(len(s))))]) / 1e6 }
	p.P50, p.P90, p.P99, p.Max = at(0.50), at(0.90), at(0.99), float64(s[len(s)-1])/1e6
	return p
}

// Text renders the report for people.
func (r *Report) Text() string {
	var b strings.Builder
	verdict := "OK"
	if !r.OK() {
		verdict = "FAILED"
	}
	fmt.Fprintf(&b, "verdict %s\n", verdict)
	fmt.Fprintf(&b, "messages: sent %d, acked %d, unacked %d, delivered %d, lost %d, duplicated %d, reordered %d, gaps %d, mismatched %d\n",
		r.Sent, r.Acked, r.Unacked, r.Delivered, r.Lost, r.Duplicated, r.Reordered, r.Gaps, r.Mismatched)
	pct := func(name string, p Percentiles) {
		fmt.Fprintf(&b, "%s: n %d, p50 %.1f ms, p90 %.1f ms, p99 %.1f ms, max %.1f ms\n", name, p.N, p.P50, p.P90, p.P99, p.Max)
	}
	pct("send->ack", r.AckLatency)
	pct("send->delivery", r.Delivery)
	pct("read convergence", r.ReadConverge)
	fmt.Fprintf(&b, "reads converged: %v; reconnects: %d\n", r.ReadsConverged, r.Reconnects)
	for _, m := range r.ReadMismatches {
		fmt.Fprintf(&b, "  %s\n", m)
	}
	for _, res := range r.Resumes {
		fmt.Fprintf(&b, "resume after %s (%d devices, slowest): first ack %.0f ms, first delivery %.0f ms;", res.Fault, res.Devices, res.FirstAck, res.FirstRecv)
		for _, d := range sortedKeys(res.PerDevice) {
			fmt.Fprintf(&b, " %s %.0f/%.0f", d, res.PerDevice[d][0], res.PerDevice[d][1])
		}
		b.WriteString("\n")
	}
	for _, c := range sortedKeys(r.Linearizable) {
		fmt.Fprintf(&b, "linearizable %s: %s\n", c, r.Linearizable[c])
	}
	if r.Presence != nil {
		b.WriteString(r.Presence.Text())
	}
	for _, e := range r.Errors {
		fmt.Fprintf(&b, "  error: %s\n", e)
	}
	for _, w := range r.Warnings {
		fmt.Fprintf(&b, "  warning: %s\n", w)
	}
	return b.String()
}

// seqIDs maps a conversation's seqs to message ids.
type seqIDs map[string]map[uint64]string

// put records id at conv's seq; clash reports another id already there
// (prev), which put replaces, as the checks before it did.
func (m seqIDs) put(conv string, seq uint64, id string) (prev string, clash bool) {
	if m[conv] == nil {
		m[conv] = map[uint64]string{}
	}
	prev, ok := m[conv][seq]
	m[conv][seq] = id
	return prev, ok && prev != id
}
