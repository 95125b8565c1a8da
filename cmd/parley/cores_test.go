package main

import (
	"context"
	"errors"
	"fmt"
	"net"
	"path/filepath"
	"sync"
	"time"

	"github.com/parley-chat/parley/core"
)

// startCores starts n core nodes clustered on loopback (real Raft over
// TCP, NATS routes) with base's other settings, waits until they are
// ready, and returns them with their NATS client URLs. Callers close the
// nodes; on an error none is left running.
func startCores(ctx context.Context, dir string, n int, base core.Config) ([]*core.Node, []string, error) {
	free := func() (string, error) {
		ln, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			return "", err
		}
		defer ln.Close()
		return ln.Addr().String(), nil
	}
	var peers []core.Peer
	var clusters, clients []string
	for i := 0; i < n; i++ {
		ra, err1 := free()
		ca, err2 := free()
		na, err3 := free()
		if err := errors.Join(err1, err2, err3); err != nil {
			return nil, nil, err
		}
		peers = append(peers, core.Peer{ID: fmt.Sprintf("n%d", i+1), RaftAddr: ra})
		clusters = append(clusters, ca)
		clients = append(clients, na)
	}
	nodes := make([]*core.Node, n)
	errs := make([]error, n)
	var wg sync.WaitGroup
	for i := range nodes {
		var routes []string
		for j, a := range clusters {
			if j != i {
				routes = append(routes, a)
			}
		}
		cfg := base
		cfg.NodeID, cfg.DataDir, cfg.RaftAddr, cfg.Peers = peers[i].ID, filepath.Join(dir, peers[i].ID), peers[i].RaftAddr, peers
		cfg.NATS = core.NATSConfig{ClientAddr: clients[i], ClusterAddr: clusters[i], Routes: routes}
		wg.Go(func() { nodes[i], errs[i] = core.New(cfg) })
	}
	wg.Wait()
	closeAll := func() {
		for _, nd := range nodes {
			if nd != nil {
				nd.Close()
			}
		}
	}
	if err := errors.Join(errs...); err != nil {
		closeAll()
		return nil, nil, err
	}
	wctx, cancel := context.WithTimeout(ctx, 60*time.Second)
	defer cancel()
	for _, nd := range nodes {
		if err := nd.WaitReady(wctx); err != nil {
			closeAll()
			return nil, nil, err
		}
	}
	urls := make([]string, n)
	for i, c := range clients {
		urls[i] = "nats://" + c
	}
	return nodes, urls, nil
}
