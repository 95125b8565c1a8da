package main

import (
	"errors"
	"fmt"
	"net"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/parley-chat/parley/cmd/internal/observe"
	"github.com/parley-chat/parley/core"
	"github.com/parley-chat/parley/edge"
	"github.com/parley-chat/parley/edge/auth"
	"github.com/parley-chat/parley/internal/poll"
)

// An edge of a 3-node region whose only running core cannot elect
// leaders (no quorum) answers /readyz 503, as does that core's own
// readiness; once a second core joins and every shard has a leader, both
// answer 200. /livez is 200 throughout.
func TestReadyzWaitsForEveryShardLeader(t *testing.T) {
	free := func() string {
		ln, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		defer ln.Close()
		return ln.Addr().String()
	}
	dir := t.TempDir()
	var peers []core.Peer
	var clusters, clients []string
	for i := range 3 {
		peers = append(peers, core.Peer{ID: fmt.Sprintf("n%d", i+1), RaftAddr: free()})
		clusters, clients = append(clusters, free()), append(clients, free())
	}
	reg := prometheus.NewRegistry() // n1's
	start := func(i int, reg prometheus.Registerer) *core.Node {
		t.Helper()
		var routes []string
		for j, a := range clusters {
			if j != i {
				routes = append(routes, a)
			}
		}
		n, err := core.New(core.Config{NodeID: peers[i].ID, DataDir: filepath.Join(dir, peers[i].ID), RaftAddr: peers[i].RaftAddr,
			Peers: peers, ShardCount: 4, BalanceInterval: -1, Metrics: reg,
			NATS: core.NATSConfig{ClientAddr: clients[i], ClusterAddr: clusters[i], Routes: routes, NoJetStream: true}})
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { n.Close() })
		return n
	}
	n1 := start(0, reg)
	key, err := auth.GenerateKey("k")
	if err != nil {
		t.Fatal(err)
	}
	e, err := edge.New(edge.Config{HTTPAddr: "127.0.0.1:0", NATSURL: "nats://" + clients[0],
		Auth: auth.Config{Keys: []auth.Key{key}}})
	if err != nil {
		t.Fatal(err)
	}
	go func() { _ = e.Run(t.Context()) }()
	t.Cleanup(func() { _ = e.Close() })
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
	start(1, nil)
	deadline := time.Now().Add(60 * time.Second)
	for status(base+"/readyz") != 200 || status(coreReady.URL+"/readyz") != 200 {
		if time.Now().After(deadline) {
			t.Fatalf("not ready 60s after a second core joined: edge %d, core %d (%v)", status(base+"/readyz"), status(coreReady.URL+"/readyz"), n1.Ready())
		}
		time.Sleep(50 * time.Millisecond)
	}
	if err := n1.Ready(); err != nil {
		t.Fatalf("edge ready but core not: %v", err)
	}
	if c := status(base + "/livez"); c != 200 {
		t.Fatalf("livez: %d", c)
	}
}
