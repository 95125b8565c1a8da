package main

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"strings"
	"time"

	"github.com/parley-chat/parley/cmd/internal/observe"
	"github.com/parley-chat/parley/core"
)

// errUsage and errHelp end a command whose flags did not parse (exit 2)
// or that was asked for its usage (exit 0); the flag package has printed
// the usage either way.
var (
	errUsage = errors.New("usage")
	errHelp  = errors.New("help")
)

// parseFlags parses args into fs: errHelp for -h or --help, errUsage for
// anything else that does not parse.
func parseFlags(fs *flag.FlagSet, args []string) error {
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return errHelp
		}
		return errUsage
	}
	return nil
}

// coreFile is the JSON config file of `parley core --config`. Flags given
// on the command line override it.
type coreFile struct {
	NodeID        string `json:"node_id"`
	Region        string `json:"region"`
	DataDir       string `json:"data_dir"`
	RaftAddr      string `json:"raft_addr"`
	RaftAdvertise string `json:"raft_advertise"`
	Peers         []struct {
		ID       string `json:"id"`
		RaftAddr string `json:"raft_addr"`
	} `json:"peers"`
	Shards     int `json:"shards"`
	LargeGroup int `json:"large_group"`
	NATS       struct {
		ClientAddr  string   `json:"client_addr"`
		ClusterAddr string   `json:"cluster_addr"`
		Routes      []string `json:"routes"`
	} `json:"nats"`
	LogLevel string    `json:"log_level"`
	Push     *pushFile `json:"push"`
}

func readCoreFile(path string) (*coreFile, error) {
	f := &coreFile{}
	if path == "" {
		return f, nil
	}
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	dec := json.NewDecoder(strings.NewReader(string(b)))
	dec.DisallowUnknownFields()
	if err := dec.Decode(f); err != nil {
		return nil, fmt.Errorf("config %s: %w", path, err)
	}
	return f, nil
}

// parsePeers reads "n1=10.0.0.1:7000,n2=10.0.0.2:7000".
func parsePeers(s string) ([]core.Peer, error) {
	var out []core.Peer
	for _, part := range strings.Split(s, ",") {
		part = strings.TrimSpace(part)
		if part == "" {
			continue
		}
		id, addr, ok := strings.Cut(part, "=")
		if !ok {
			return nil, fmt.Errorf("peer %q: want id=host:port", part)
		}
		out = append(out, core.Peer{ID: id, RaftAddr: addr})
	}
	return out, nil
}

func splitList(s string) []string {
	var out []string
	for _, p := range strings.Split(s, ",") {
		if p = strings.TrimSpace(p); p != "" {
			out = append(out, p)
		}
	}
	return out
}

func runCore(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := flag.NewFlagSet("parley core", flag.ContinueOnError)
	fs.SetOutput(stderr)
	configPath := fs.String("config", "", "JSON config file (flags override it)")
	id := fs.String("id", "", "this node's id (e.g. n1)")
	region := fs.String("region", "", "region name (default \"local\")")
	dataDir := fs.String("data", "", "data directory")
	raftAddr := fs.String("raft", "", "Raft listen address host:port")
	raftAdv := fs.String("raft-advertise", "", "Raft address peers dial (default: the listen address)")
	peers := fs.String("peers", "", "all nodes of the region: id=host:port,... (Raft addresses)")
	shards := fs.Int("shards", 0, "number of shard groups (default 16; the same on every node)")
	large := fs.Int("large-group", 0, "member count above which a group's deliveries go once per edge on its conversation subject (default 100; -1: never)")
	natsAddr := fs.String("nats", "", "NATS client listen address for edges (default 127.0.0.1:4222)")
	natsCluster := fs.String("nats-cluster", "", "NATS cluster (route) listen address")
	natsRoutes := fs.String("nats-routes", "", "other nodes' NATS cluster addresses: host:port,...")
	presenceOff := fs.String("presence-off", "", "workspace ids whose presence is not shown: id,... (the same on every node)")
	logLevel := fs.String("log-level", "", "debug, info, warn or error")
	logJSON := fs.Bool("log-json", false, "log as JSON")
	debugAddr := fs.String("debug", "", debugFlagUsage)
	metricsAddr := fs.String("metrics", "", metricsFlagUsage)
	if err := parseFlags(fs, args); err != nil {
		return err
	}
	f, err := readCoreFile(*configPath)
	if err != nil {
		return err
	}
	set := map[string]bool{}
	fs.Visit(func(fl *flag.Flag) { set[fl.Name] = true })
	pick := func(name, flagVal, fileVal string) string {
		if set[name] || fileVal == "" {
			return flagVal
		}
		return fileVal
	}
	cfg := core.Config{
		NodeID:        pick("id", *id, f.NodeID),
		Region:        pick("region", *region, f.Region),
		DataDir:       pick("data", *dataDir, f.DataDir),
		RaftAddr:      pick("raft", *raftAddr, f.RaftAddr),
		RaftAdvertise: pick("raft-advertise", *raftAdv, f.RaftAdvertise),
		ShardCount:    f.Shards,
		LargeGroup:    f.LargeGroup,
		NATS: core.NATSConfig{
			ClientAddr:  pick("nats", *natsAddr, f.NATS.ClientAddr),
			ClusterAddr: pick("nats-cluster", *natsCluster, f.NATS.ClusterAddr),
			Routes:      f.NATS.Routes,
		},
	}
	if set["shards"] {
		cfg.ShardCount = *shards
	}
	if set["large-group"] {
		cfg.LargeGroup = *large
	}
	if set["nats-routes"] {
		cfg.NATS.Routes = splitList(*natsRoutes)
	}
	cfg.Presence.Off = splitList(*presenceOff)
	if cfg.Push, err = f.Push.config(); err != nil {
		return err
	}
	for _, p := range f.Peers {
		cfg.Peers = append(cfg.Peers, core.Peer{ID: p.ID, RaftAddr: p.RaftAddr})
	}
	if set["peers"] {
		if cfg.Peers, err = parsePeers(*peers); err != nil {
			return err
		}
	}
	if cfg.NATS.ClientAddr == "" {
		cfg.NATS.ClientAddr = "127.0.0.1:4222"
	}
	level := pick("log-level", *logLevel, f.LogLevel)
	if level == "" {
		level = "info"
	}
	if cfg.Logger, err = newLogger(stderr, level, *logJSON); err != nil {
		return err
	}
	reg, err := observe.NewRegistry()
	if err != nil {
		return err
	}
	cfg.Metrics = reg
	if err := observe.ServeDebug(ctx, *debugAddr, reg, cfg.Logger); err != nil {
		return err
	}
	node, err := core.New(cfg)
	if err != nil {
		return err
	}
	defer node.Close()
	// Readiness: every group of the node knows a leader (it has joined
	// the region's groups).
	if _, err := observe.ServeMetrics(ctx, *metricsAddr, reg, node.Ready, cfg.Logger); err != nil {
		return err
	}
	fmt.Fprintf(stdout, "parley core %s: raft %s, nats %s (edges connect here), data %s\n",
		node.NodeID(), node.RaftAddr(), node.NATSURL(), cfg.DataDir)
	<-ctx.Done()
	fmt.Fprintln(stdout, "parley core: shutting down")
	done := make(chan error, 1)
	go func() { done <- node.Close() }()
	select {
	case err := <-done:
		return err
	case <-time.After(30 * time.Second):
		return errors.New("shutdown took longer than 30s")
	}
}
