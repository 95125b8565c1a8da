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
