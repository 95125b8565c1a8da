package receipts

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"path/filepath"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/dgraph-io/badger/v4"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/parley-chat/parley/core/internal/testaddr"
	"github.com/parley-chat/parley/core/natsembed"
	"github.com/parley-chat/parley/internal/poll"
	"github.com/parley-chat/parley/syncproto/syncpb"
)

// A region as production runs it: three NATS servers clustered by routes,
// each with its own JetStream store; the receipt stream replicated on all
// three (Replicas 3, created by every node's Service as core.New does); a
// Service on each node merging into its own Badger DB.

// clusterTimeout bounds each wait for the cluster to form (routes, a
// JetStream meta leader, the stream's Raft group). A fresh meta group
// elects after 4-9 s (nats-server's election timeout), more on a loaded
// machine.
const clusterTimeout = 60 * time.Second

// freeAddrs picks n loopback addresses that are free when picked. The
// servers' cluster addresses must be known before any starts: a JetStream
// server in a cluster refuses to start without routes to the others.
func freeAddrs(tb testing.TB, n int) []string {
	tb.Helper()
	addrs := make([]string, n)
	for i := range addrs {
		addrs[i] = testaddr.Free(tb)
	}
	return addrs
}

// newJetStreamCluster starts n JetStream servers clustered by routes on
// 127.0.0.1 (random ports, a store each under tb.TempDir) and returns an
// in-process connection to each, once every server routes to every other
// and JetStream has a meta leader.
//
// The servers listen for clients on a random loopback port although only
// in-process connections are used: with natsembed's ClientAddr "-"
// (nats-server's DontListen) a clustered server never opens its route
// listener, because nats-server starts routing only after the client
// accept loop, which DontListen skips. natsembed.Start then times out and
// hangs for good in Shutdown, which waits for that routing goroutine.
func newJetStreamCluster(tb testing.TB, n int) []*nats.Conn {
	tb.Helper()
	servers, err := startServers(tb, n)
	// freeAddrs cannot hold its ports: another test's pick may bind one
	// before its server does. The cluster then starts on new ones.
	for try := 0; errors.Is(err, natsembed.ErrListen) && try < 5; try++ {
		tb.Logf("cluster start, again on new ports: %v", err)
		servers, err = startServers(tb, n)
	}
	if err != nil {
		tb.Fatal(err)
	}
	conns := make([]*nats.Conn, n)
	for i, srv := range servers {
		tb.Cleanup(srv.Close)
		if conns[i], err = srv.Connect(fmt.Sprint("test-n", i)); err != nil {
			tb.Fatal(err)
		}
		tb.Cleanup(conns[i].Close)
	}
	poll.NoError(tb, clusterTimeout, "routes", func() error {
		for i, s := range servers {
			if got := s.NumRoutes(); got < n-1 {
				return fmt.Errorf("server n%d has %d routes, want %d", i, got, n-1)
			}
		}
		return nil
	})
	// Only the meta leader answers an account info request; without one
	// the request goes unanswered (or, after 10 s, fails "JetStream
	// system temporarily unavailable").
	js, err := jetstream.New(conns[0])
	if err != nil {
		tb.Fatal(err)
	}
	poll.NoError(tb, clusterTimeout, "JetStream meta leader", func() error {
		ctx, cancel := context.WithTimeout(tb.Context(), time.Second)
		defer cancel()
		_, err := js.AccountInfo(ctx)
		return err
	})
	return conns
}

// startServers starts n JetStream servers routed to each other on
// addresses from freeAddrs. On an error it closes those it started.
func startServers(tb testing.TB, n int) ([]*natsembed.Server, error) {
	tb.Helper()
	addrs := freeAddrs(tb, n)
	servers := make([]*natsembed.Server, 0, n)
	for i := range n {
		var routes []string
		for j, a := range addrs {
			if j != i {
				routes = append(routes, a)
			}
		}
		srv, err := natsembed.Start(natsembed.Config{
			Name: fmt.Sprint("n", i), ClientAddr: "127.0.0.1:0",
			ClusterName: "parley-r1", ClusterAddr: addrs[i], Routes: routes,
			JetStream: true, StoreDir: filepath.Join(tb.TempDir(), "nats"),
			ReadyTimeout: clusterTimeout,
		})
		if err != nil {
			for _, s := range servers {
				s.Close()
			}
			return nil, err
		}
		servers = append(servers, srv)
	}
	return servers, nil
}

// testNode is one core node of a test region: its DB and Service.
type testNode struct {
	db *badger.DB
	s  *Service
}

// newTestRegion runs a receipts Service on each of n clustered servers,
// configured as core.New configures it, and returns once the stream's
// Raft group has a leader and every replica is current.
func newTestRegion(tb testing.TB, n int, openDB func(tb testing.TB, dir string) *badger.DB) []testNode {
	tb.Helper()
	conns := newJetStreamCluster(tb, n)
	peers := make([]string, n)
	for i := range peers {
		peers[i] = fmt.Sprint("n", i)
	}
	nodes := make([]testNode, n)
	for i := range nodes {
		db := openDB(tb, tb.TempDir())
		tb.Cleanup(func() { db.Close() })
		// Every node creates (or finds) the stream with the same config,
		// as core.New sets it up: Replicas min(3, peers).
		s, stop := runService(tb, db, conns[i], Config{Region: "r1", NodeID: peers[i], Peers: peers, Replicas: min(3, n)})
		tb.Cleanup(stop)
		nodes[i] = testNode{db: db, s: s}
	}
	s := nodes[0].s
	poll.NoError(tb, clusterTimeout, "receipt stream replicas", func() error {
		ictx, cancel := context.WithTimeout(tb.Context(), time.Second)
		defer cancel()
		st, err := s.js.Stream(ictx, s.stream)
		if err != nil {
			return err
		}
		ci := st.CachedInfo().Cluster
		switch {
		case st.CachedInfo().Config.Replicas != min(3, n):
			return fmt.Errorf("stream has %d replicas", st.CachedInfo().Config.Replicas)
		case ci == nil || ci.Leader == "":
			return errors.New("stream has no leader")
		case len(ci.Replicas) != min(3, n)-1:
			return fmt.Errorf("stream leader %s has %d followers", ci.Leader, len(ci.Replicas))
		}
		for _, p := range ci.Replicas {
			if !p.Current {
				return fmt.Errorf("replica %s is not current (lag %d)", p.Name, p.Lag)
			}
		}
		return nil
	})
	return nodes
}

// storeDump is every key of a node's receipt state (registers and
// position).
func storeDump(tb testing.TB, db *badger.DB) map[string][]byte {
	tb.Helper()
	out := map[string][]byte{}
	err := db.View(func(txn *badger.Txn) error {
		it := txn.NewIterator(badger.IteratorOptions{Prefix: []byte("rc/"), PrefetchValues: true})
		defer it.Close()
		for it.Rewind(); it.Valid(); it.Next() {
			v, err := it.Item().ValueCopy(nil)
			if err != nil {
				return err
			}
			out[string(it.Item().KeyCopy(nil))] = v
		}
		return nil
	})
	if err != nil {
		tb.Fatal(err)
	}
	return out
}

// sameStores fails tb unless every node's receipt state is byte-identical
// to the first's, and returns the first's.
func sameStores(tb testing.TB, nodes []testNode) map[string][]byte {
	tb.Helper()
	want := storeDump(tb, nodes[0].db)
	for i, n := range nodes[1:] {
		got := storeDump(tb, n.db)
		if len(got) != len(want) {
			tb.Fatalf("node %d holds %d keys, node 0 %d", i+1, len(got), len(want))
		}
		for k, v := range want {
			if !bytes.Equal(got[k], v) {
				tb.Fatalf("node %d differs from node 0 at %s", i+1, k)
			}
		}
	}
	return want
}

// publishAll has publishers goroutines publish reports 1..n (made by mk)
// through the nodes' Services, publisher p on node p%len(nodes): a report
// is published by its conversation's shard leader, and leaders are spread
// over the nodes. It returns the highest stream sequence acknowledged.
func publishAll(ctx context.Context, nodes []*Service, publishers, n int, mk func(i int) *syncpb.ReceiptUpdate) (uint64, error) {
	var next atomic.Int64
	var last atomic.Uint64
	errs := make(chan error, publishers)
	var wg sync.WaitGroup
	for p := range publishers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			s := nodes[p%len(nodes)]
			for {
				i := next.Add(1)
				if i > int64(n) {
					return
				}
				seq, err := s.Publish(ctx, mk(int(i)))
				if err != nil {
					errs <- fmt.Errorf("publish report %d on node %d: %w", i, p%len(nodes), err)
					return
				}
				for cur := last.Load(); seq > cur && !last.CompareAndSwap(cur, seq); cur = last.Load() {
				}
			}
		}()
	}
	wg.Wait()
	close(errs)
	return last.Load(), <-errs
}

// Reports published through all three nodes of a region (R3 stream,
// duplicates and stale reports among them) are merged by every node, and
// the three stores end byte-identical and equal to merging the reports
// directly.
func TestRegionStoresConverge(t *testing.T) {
	nodes := newTestRegion(t, 3, openDB)
	services := []*Service{nodes[0].s, nodes[1].s, nodes[2].s}
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	deltas := randDeltas(rand.New(rand.NewPCG(10, 11)), 300)
	// Retried publishes: JetStream stores each once (same message id).
	deltas = append(deltas, deltas[:50]...)
	last, err := publishAll(ctx, services, 8, len(deltas), func(i int) *syncpb.ReceiptUpdate { return deltas[i-1] })
	if err != nil {
		t.Fatal(err)
	}
	for i, s := range services {
		if err := s.WaitApplied(ctx, last); err != nil {
			t.Fatalf("node %d merged up to %d of %d: %v", i, s.Applied(), last, err)
		}
	}
	got := sameStores(t, nodes)
	ref := store{openDB(t, t.TempDir())}
	defer ref.db.Close()
	if _, err := ref.merge(deltas, last); err != nil {
		t.Fatal(err)
	}
	want := storeDump(t, ref.db)
	if len(got) != len(want) {
		t.Fatalf("the nodes hold %d keys, merging directly %d", len(got), len(want))
	}
	for k, v := range want {
		if !bytes.Equal(got[k], v) {
			t.Fatalf("the nodes differ from merging directly at %s", k)
		}
	}
}

// BenchmarkPublishAndMergeR3: reports stored on the region's receipt
// stream replicated on three clustered servers, published by 32
// publishers spread over the three nodes, and merged by all three nodes
// into their own Badger DBs. reports/s counts a report once it is merged
// on every node; lag-max is how far the slowest node's merge was behind
// the stream when the last publish was acknowledged.
func BenchmarkPublishAndMergeR3(b *testing.B) {
	nodes := newTestRegion(b, 3, openDBB)
	benchPublishAndMerge(b, nodes)
}

// benchPublishAndMerge publishes b.N reports through the nodes with 32
// publishers, waits until every node has merged them, and checks that the
// nodes' stores are identical. The clock starts once every node has
// merged a first report.
func benchPublishAndMerge(b *testing.B, nodes []testNode) {
	const publishers = 32
	services := make([]*Service, len(nodes))
	for i, n := range nodes {
		services[i] = n.s
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Minute)
	defer cancel()
	mk := func(i int) *syncpb.ReceiptUpdate {
		return &syncpb.ReceiptUpdate{ConvId: fmt.Sprint("c", i%1000), UserId: fmt.Sprint("u", i%50), DeviceId: "d1",
			Type: read, Seq: uint64(i), AtUnixMs: int64(i)}
	}
	// Every node's merge must be flowing before the clock starts: a
	// node's first ordered consumer can sit without messages until its
	// missed heartbeats make nats.go recreate it (about 10 s; seen on
	// R3 at start).
	start := time.Now()
	warm, err := services[0].Publish(ctx, &syncpb.ReceiptUpdate{ConvId: "warmup", UserId: "u0", DeviceId: "d1", Type: read, Seq: 1, AtUnixMs: 1})
	if err != nil {
		b.Fatal(err)
	}
	for i, s := range services {
		wctx, cancel := context.WithTimeout(ctx, clusterTimeout)
		err := s.WaitApplied(wctx, warm)
		cancel()
		if err != nil {
			b.Fatalf("node %d did not merge the first report: %v", i, err)
		}
	}
	if d := time.Since(start); d > time.Second {
		b.Logf("every node merged the first report after %s", d.Round(time.Millisecond))
	}
	b.ResetTimer()
	last, err := publishAll(ctx, services, publishers, b.N, mk)
	if err != nil {
		b.Fatal(err)
	}
	var lagMax uint64
	for _, s := range services {
		lagMax = max(lagMax, last-min(last, s.Applied()))
	}
	for i, s := range services {
		if err := s.WaitApplied(ctx, last); err != nil {
			b.Fatalf("node %d merged up to %d of %d: %v", i, s.Applied(), last, err)
		}
	}
	b.StopTimer()
	b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "reports/s")
	b.ReportMetric(float64(lagMax), "lag-max")
	for i, s := range services {
		if s.Merged() != uint64(b.N)+1 || s.Applied() != last {
			b.Fatalf("node %d merged %d reports up to stream seq %d; published 1+%d up to %d", i, s.Merged(), s.Applied(), b.N, last)
		}
	}
	sameStores(b, nodes)
}
