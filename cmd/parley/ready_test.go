package main

import (
	"errors"
	"fmt"
	"net/http"
	"net/http/httptest"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/parley-chat/parley/cmd/internal/observe"
	"github.com/parley-chat/parley/core"
	"github.com/parley-chat/parley/core/coretest"
	"github.com/parley-chat/parley/edge"
	"github.com/parley-chat/parley/internal/poll"
	"github.com/parley-chat/parley/systest"
)

// An edge of a 3-node region whose only running core cannot elect
// leaders (no quorum) answers /readyz 503, as does that core's own
// readiness; once a second core joins and every shard has a leader, both
// answer 200. /livez is 200 throughout.
func TestReadyzWaitsForEveryShardLeader(t *testing.T) {
	reg := prometheus.NewRegistry() // n1's
	r := systest.StartRegion(t, 3, systest.RegionOptions{Core: coretest.Options{
		Base: core.Config{BalanceInterval: -1, NATS: core.NATSConfig{NoJetStream: true}},
		Node: func(i int, c *core.Config) {
			if i == 0 {
				c.Metrics = reg
			}
		},
		Down: []int{1, 2},
	}})
	n1 := r.Node(0)
	e := r.StartEdge(t, 0, systest.EdgeOptions{NATSURL: r.NATSURLs()[0], Config: func(c *edge.Config) { c.QUIC.Addr = "" }})
	coreReady := httptest.NewServer(observe.Mux(reg, n1.Ready))
	t.Cleanup(coreReady.Close)
	base := "http://" + e.Addr().String()
	status := func(url string) int {
		resp, err := http.Get(url)
		if err != nil {
			return 0
		}
		resp.Body.Close()
		return resp.StatusCode
	}
	// The edge serves (livez) while it cannot be ready.
	poll.Until(t, 20*time.Second, "edge livez", func() bool { return status(base+"/livez") == 200 })
	for _, url := range []string{base + "/readyz", coreReady.URL + "/readyz"} {
		if c := status(url); c != 503 {
			t.Fatalf("%s with one of three cores: %d, want 503", url, c)
		}
	}
	var nre *core.NotReadyError
	if err := n1.Ready(); err == nil || !errors.As(err, &nre) || len(nre.Leaderless) != 5 {
		t.Fatalf("Ready with one of three cores: %v", err)
	}
	r.Restart(1)
	poll.NoError(t, 60*time.Second, "ready after a second core joined", func() error {
		if e, c := status(base+"/readyz"), status(coreReady.URL+"/readyz"); e != 200 || c != 200 {
			return fmt.Errorf("edge %d, core %d (%v)", e, c, n1.Ready())
		}
		return nil
	})
	if err := n1.Ready(); err != nil {
		t.Fatalf("edge ready but core not: %v", err)
	}
	if c := status(base + "/livez"); c != 200 {
		t.Fatalf("livez: %d", c)
	}
}
