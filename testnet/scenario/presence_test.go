package scenario

import (
	"testing"

	"github.com/parley-chat/parley/testnet/checker"
)

// The truth model: a user is online while a device of theirs runs on an
// edge that is not cut; a user with a device on each edge stays online
// through one edge's cut.
func TestPresenceModel(t *testing.T) {
	plan := Plans(Options{})["5-presence"]
	m := newPresenceModel(plan)
	m.on = true
	for _, d := range []string{"x-ws", "y-quic", "y-ws", "w2-quic"} {
		m.running[d] = true
		m.update(1, checker.ChangeClean, "start "+d, nil)
	}
	if len(m.changes) != 3 || !m.state["x"] || !m.state["y"] || !m.state["w2"] {
		t.Fatalf("after starts: %+v", m.changes)
	}
	m.cut["e1"] = true
	m.update(2, checker.ChangeCut, "cut", m.watchersOn("e1"))
	if len(m.changes) != 4 || m.changes[3].Name != "x" || m.changes[3].Online || !m.state["y"] {
		t.Fatalf("after the cut: %+v", m.changes)
	}
	if skip := m.changes[3].Skip; len(skip) != 2 {
		t.Fatalf("skip %v: want the two watchers on e1", skip)
	}
	m.running["y-ws"] = false
	m.update(3, checker.ChangeClean, "stop y-ws", nil)
	if m.state["y"] || len(m.changes) != 5 {
		t.Fatalf("y with its e2 device stopped during the cut: %+v", m.changes)
	}
}
