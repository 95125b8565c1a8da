package e2e_test

import (
	"testing"
	"time"

	"github.com/parley-chat/parley/core"
	"github.com/parley-chat/parley/edge"
	"github.com/parley-chat/parley/edge/auth"
	"github.com/parley-chat/parley/system"
	"github.com/parley-chat/parley/systest"
)

const testPassword = systest.Password

// testFamily places the refresh tokens of pairs issued in tests; no
// directory knows it.
var testFamily = auth.Family{ID: "0123456789abcdef", Generation: 1}

// testSystem is a one-node system (systest.System) under the short names
// the tests use.
type testSystem struct {
	*systest.System
	node *core.Node
	edge *edge.Edge
	base string
	dir  string
}

// startTestSystem starts a system on dir ("": a new one) with mod's
// changes to the test defaults; see systest.Start.
func startTestSystem(t testing.TB, dir string, mod func(*system.Config)) *testSystem {
	t.Helper()
	s := systest.Start(t, systest.Options{Dir: dir, Config: mod})
	return &testSystem{System: s, node: s.Node(), edge: s.Edge(), base: s.URL(), dir: s.Dir()}
}

// stop shuts the system down and returns Run's error; only once.
func (s *testSystem) stop() error { return s.Stop() }

// startExtraEdge starts a second edge on the system's core (as `parley
// edge` would), sharing its token keys.
func (s *testSystem) startExtraEdge(t *testing.T, shutdown time.Duration) (*edge.Edge, func()) {
	t.Helper()
	e := s.StartEdge(t, systest.EdgeOptions{Config: func(c *edge.Config) { c.ShutdownTimeout = shutdown }})
	return e.Edge, e.Stop
}

// startEdgeVia starts another edge on the system's core that reaches NATS
// at url (through a proxy, say), sharing the system's token keys.
func (s *testSystem) startEdgeVia(t *testing.T, url string) *edge.Edge {
	t.Helper()
	return s.StartEdge(t, systest.EdgeOptions{NATSURL: url, Config: func(c *edge.Config) {
		c.QUIC.Addr, c.RequestTimeout, c.ShutdownTimeout = "", 2*time.Second, time.Second
	}}).Edge
}
