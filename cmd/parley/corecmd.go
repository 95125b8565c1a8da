package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"time"

	"github.com/parley-chat/parley/cmd/internal/observe"
	"github.com/parley-chat/parley/cmd/internal/settings"
	"github.com/parley-chat/parley/core"
)

// defaultCoreNATS is where a core node's NATS server listens for edges
// unless told otherwise (an empty --nats included).
const defaultCoreNATS = "127.0.0.1:4222"

// shutdownWait bounds a core node's Close after its ctx ends.
const shutdownWait = 30 * time.Second

// loadCore reads core's settings from args, the environment and the
// config file.
func loadCore(args []string, stderr io.Writer) (*core.Config, *processFlags, error) {
	s, proc, err := loadCommand("parley core", args, stderr, coreFileKeys, metricsFlagUsage, func(fs *flag.FlagSet, s *core.Config) {
		fs.StringVar(&s.NodeID, "id", "", "this node's id (e.g. n1)")
		fs.StringVar(&s.Region, "region", "", "region name (default \"local\")")
		fs.StringVar(&s.DataDir, "data", "", "data directory")
		fs.StringVar(&s.RaftAddr, "raft", "", "Raft listen address host:port")
		fs.StringVar(&s.RaftAdvertise, "raft-advertise", "", "Raft address peers dial (default: the listen address)")
		fs.Var(peersValue{&s.Peers}, "peers", "all nodes of the region: id=host:port,... (Raft addresses)")
		coreFlags(fs, s, "; the same on every node")
		fs.StringVar(&s.NATS.ClientAddr, "nats", defaultCoreNATS, "NATS client listen address for edges")
		fs.StringVar(&s.NATS.ClusterAddr, "nats-cluster", "", "NATS cluster (route) listen address")
		fs.Var(settings.List{P: &s.NATS.Routes}, "nats-routes", "other nodes' NATS cluster addresses: host:port,...")
	})
	if err != nil {
		return nil, nil, err
	}
	if s.NATS.ClientAddr == "" {
		s.NATS.ClientAddr = defaultCoreNATS
	}
	return s, proc, nil
}

func runCore(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	s, proc, err := loadCore(args, stderr)
	if err != nil {
		return err
	}
	log, err := proc.logger(stderr)
	if err != nil {
		return err
	}
	reg, err := proc.registry(ctx, log)
	if err != nil {
		return err
	}
	s.Logger, s.Metrics = log, reg
	node, err := core.New(*s)
	if err != nil {
		return err
	}
	defer node.Close()
	// Readiness: every group of the node knows a leader (it has joined
	// the region's groups).
	if _, err := observe.ServeMetrics(ctx, proc.metrics, reg, node.Ready, s.Logger); err != nil {
		return err
	}
	fmt.Fprintf(stdout, "parley core %s: raft %s, nats %s (edges connect here), data %s\n",
		node.NodeID(), node.RaftAddr(), node.NATSURL(), s.DataDir)
	<-ctx.Done()
	fmt.Fprintln(stdout, "parley core: shutting down")
	done := make(chan error, 1)
	go func() { done <- node.Close() }()
	select {
	case err := <-done:
		return err
	case <-time.After(shutdownWait):
		return errors.New("shutdown took longer than 30s")
	}
}
