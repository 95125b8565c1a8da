package checker

import (
	"bytes"
	"os"
	"testing"
	"time"
)

// history builds the events of a 2-device conversation: a sends n
// messages, both devices receive them.
func history(n int) []Event {
	var evs []Event
	t := int64(1000)
	for i := 1; i <= n; i++ {
		id := "m" + string(rune('a'+i))
		evs = append(evs,
			Event{Kind: KindSend, Device: "a", Conv: "c", ID: id, T: t},
			Event{Kind: KindRecv, Device: "b", Conv: "c", ID: id, Seq: uint64(i), T: t + 5},
			Event{Kind: KindRecv, Device: "a", Conv: "c", ID: id, Seq: uint64(i), T: t + 6},
			Event{Kind: KindAck, Device: "a", Conv: "c", ID: id, Seq: uint64(i), T: t + 10},
		)
		t += 100
	}
	return append(evs,
		Event{Kind: KindFinal, Device: "a", Conv: "c", Reads: map[string]uint64{"ua": uint64(n), "ub": uint64(n)}},
		Event{Kind: KindFinal, Device: "b", Conv: "c", Reads: map[string]uint64{"ua": uint64(n), "ub": uint64(n)}})
}

func input(evs []Event, n int) Input {
	return Input{Events: evs, Members: map[string][]string{"c": {"a", "b"}}, Users: map[string][]string{"c": {"ua", "ub"}},
		Final: map[string]uint64{"c": uint64(n)}, LinearizeTimeout: 10 * time.Second}
}

func TestCheck(t *testing.T) {
	for _, tc := range []struct {
		name  string
		edit  func([]Event) []Event
		check func(*Report) bool
	}{
		{"clean", func(e []Event) []Event { return e }, func(r *Report) bool {
			return r.OK() && r.Sent == 5 && r.Acked == 5 && r.Delivered == 10 && r.Linearizable["c"] == "ok"
		}},
		{"lost", func(e []Event) []Event { return append(e[:1], e[2:]...) }, // b never gets seq 1
			func(r *Report) bool { return !r.OK() && r.Lost == 1 }},
		{"duplicate", func(e []Event) []Event {
			return append(e, Event{Kind: KindRecv, Device: "b", Conv: "c", ID: e[0].ID, Seq: 1, T: 99999})
		}, func(r *Report) bool { return !r.OK() && r.Duplicated == 1 }},
		{"reordered", func(e []Event) []Event {
			e[1], e[5] = e[5], e[1] // b gets seq 2 before seq 1
			return e
		}, func(r *Report) bool { return !r.OK() && r.Reordered == 1 && r.Gaps == 1 }},
		{"read before the send", func(e []Event) []Event {
			e[5].T = 500 // b reads seq 2 before anyone sent it
			return e
		}, func(r *Report) bool { return !r.OK() && r.Linearizable["c"] == "illegal" }},
		{"wrong message", func(e []Event) []Event {
			e[1].ID = "other"
			return e
		}, func(r *Report) bool { return !r.OK() && r.Mismatched > 0 }},
		{"reads apart", func(e []Event) []Event {
			e[len(e)-1].Reads = map[string]uint64{"ua": 5, "ub": 4}
			return e
		}, func(r *Report) bool { return !r.OK() && !r.ReadsConverged }},
	} {
		t.Run(tc.name, func(t *testing.T) {
			r := Check(input(tc.edit(history(5)), 5))
			if !tc.check(r) {
				t.Errorf("unexpected report:\n%s", r.Text())
			}
		})
	}
}

func TestEventsRoundTrip(t *testing.T) {
	var b bytes.Buffer
	w := NewWriter(&b)
	for _, e := range history(2) {
		if err := w.Write(e); err != nil {
			t.Fatal(err)
		}
	}
	if err := w.Flush(); err != nil {
		t.Fatal(err)
	}
	path := t.TempDir() + "/e"
	if err := writeFile(path, b.Bytes()); err != nil {
		t.Fatal(err)
	}
	got, err := ReadFile(path)
	if err != nil || len(got) != len(history(2)) {
		t.Fatalf("read %d events, %v", len(got), err)
	}
}

func writeFile(path string, b []byte) error { return os.WriteFile(path, b, 0o644) }

func TestCheckPresence(t *testing.T) {
	const s = int64(1e9)
	ev := func(w, u string, up bool, t int64) Event {
		return Event{Kind: KindPresence, Device: w, User: u, Up: up, T: t}
	}
	base := PresenceInput{
		Watchers: map[string]string{"w1": "uw1", "w2": "uw2"},
		Changes: []PresenceChange{
			{User: "ua", Online: true, T: 10 * s, Kind: ChangeClean, Cause: "a start"},
			{User: "ua", Online: false, T: 20 * s, Kind: ChangeCut, Cause: "cut", Skip: []string{"w2"}},
		},
		Final: map[string]bool{"ua": false, "uy": true},
		Start: 5 * s, End: 30 * s,
	}
	good := []Event{
		ev("w1", "ua", false, 1*s), ev("w1", "uy", true, 1*s), ev("w2", "ua", false, 1*s), ev("w2", "uy", true, 1*s),
		ev("w1", "ua", true, 10*s+100e6), ev("w2", "ua", true, 10*s+200e6),
		ev("w1", "ua", false, 21*s+500e6), ev("w2", "ua", false, 25*s),
		ev("w1", "uw2", true, 1*s), ev("w2", "uw1", true, 1*s), // not checked: no change, not in Final
	}
	in := base
	in.Events = good
	rep := CheckPresence(in)
	if !rep.OK() || rep.Changes != 2 || rep.Converge[ChangeClean].N != 2 || rep.Converge[ChangeClean].Max != 200 ||
		rep.Converge[ChangeCut].N != 1 || rep.Converge[ChangeCut].Max != 1500 || len(rep.Flaps) != 0 {
		t.Fatalf("good run: %+v", rep)
	}
	// w1 shows y offline for a while: a flap, not a failure.
	in.Events = append(append([]Event{}, good...), ev("w1", "uy", false, 22*s), ev("w1", "uy", true, 23*s))
	in.Changes = append(append([]PresenceChange{}, base.Changes...), PresenceChange{User: "uy", Online: true, T: 6 * s, Kind: ChangeClean, Cause: "y start"})
	rep = CheckPresence(in)
	if !rep.OK() || len(rep.Flaps) != 1 {
		t.Fatalf("flap: %+v", rep)
	}
	// w1 never sees a go offline; w2 ends with y offline.
	in = base
	in.Events = append(append([]Event{}, good[:6]...), ev("w2", "ua", false, 25*s), ev("w2", "uy", false, 26*s))
	rep = CheckPresence(in)
	if rep.OK() || len(rep.Unconverged) != 1 || len(rep.WrongFinal) != 2 {
		t.Fatalf("bad run: %+v", rep)
	}
	r := &Report{ReadsConverged: true, Presence: rep}
	if r.OK() || !bytes.Contains([]byte(r.Text()), []byte("never showed")) {
		t.Fatalf("report: %s", r.Text())
	}
}
