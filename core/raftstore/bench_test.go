package raftstore

import (
	"fmt"
	"slices"
	"sync/atomic"
	"testing"
	"time"

	"github.com/dgraph-io/badger/v4"
	"github.com/hashicorp/raft"
	raftbench "github.com/hashicorp/raft/bench"
)

// benchStores are the stores the benchmarks run against.
var benchStores = []struct {
	name string
	new  func(b *testing.B) logStore
}{
	{"wal", func(b *testing.B) logStore {
		return mustStore(b, openTestWAL(b, WALConfig{Dir: b.TempDir()}), "s0")
	}},
}

// BenchmarkStoreLogs appends batches of 256-byte entries; each op includes
// the fsync.
func BenchmarkStoreLogs(b *testing.B) {
	for _, st := range benchStores {
		for _, batch := range []int{1, 64} {
			b.Run(fmt.Sprintf("store=%s/batch=%d", st.name, batch), func(b *testing.B) {
				benchStoreLogs(b, st.new(b), batch)
			})
		}
	}
}

func benchStoreLogs(b *testing.B, s raft.LogStore, batch int) {
	logs := make([]*raft.Log, batch)
	for i := range logs {
		logs[i] = &raft.Log{Term: 1, Data: make([]byte, 256)}
	}
	next := uint64(1)
	b.SetBytes(int64(256 * batch))
	b.ReportAllocs()
	for b.Loop() {
		for _, l := range logs {
			l.Index = next
			next++
		}
		if err := s.StoreLogs(logs); err != nil {
			b.Fatal(err)
		}
	}
	b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(int(next-1)), "ns/entry")
}

func BenchmarkGetLog(b *testing.B) {
	for _, st := range benchStores {
		b.Run("store="+st.name, func(b *testing.B) { benchGetLog(b, st.new(b)) })
	}
}

func benchGetLog(b *testing.B, s raft.LogStore) {
	const n = 4096
	logs := make([]*raft.Log, n)
	for i := range logs {
		logs[i] = &raft.Log{Index: uint64(i + 1), Term: 1, Data: make([]byte, 256)}
	}
	if err := s.StoreLogs(logs); err != nil {
		b.Fatal(err)
	}
	b.ReportAllocs()
	var l raft.Log
	i := uint64(0)
	for b.Loop() {
		if err := s.GetLog(i%n+1, &l); err != nil {
			b.Fatal(err)
		}
		i++
	}
}

// BenchmarkSyncerConcurrent has many goroutines each write a key and wait
// for it to be durable; fsyncs/call below 1 is coalescing.
func BenchmarkSyncerConcurrent(b *testing.B) {
	for _, par := range []int{1, 8, 64} {
		b.Run(fmt.Sprintf("goroutines=%d", par), func(b *testing.B) {
			db, s := openTestDB(b, b.TempDir(), nil)
			var key atomic.Uint64
			b.SetParallelism(par) // par x GOMAXPROCS goroutines
			b.ResetTimer()
			b.RunParallel(func(pb *testing.PB) {
				for pb.Next() {
					k := fmt.Appendf(nil, "k%d", key.Add(1))
					if err := db.Update(func(txn *badger.Txn) error { return txn.Set(k, k) }); err != nil {
						b.Error(err)
						return
					}
					if err := s.Sync(); err != nil {
						b.Error(err)
						return
					}
				}
			})
			fsyncs, calls := s.stats()
			b.ReportMetric(float64(fsyncs)/float64(calls), "fsyncs/call")
		})
	}
}

// The hashicorp/raft store benchmarks, as raft-boltdb runs them.
func BenchmarkRaftbench(b *testing.B) {
	logBenches := []struct {
		name string
		f    func(*testing.B, raft.LogStore)
	}{
		{"FirstIndex", raftbench.FirstIndex}, {"LastIndex", raftbench.LastIndex},
		{"GetLog", raftbench.GetLog}, {"StoreLog", raftbench.StoreLog},
		{"StoreLogs", raftbench.StoreLogs}, {"DeleteRange", raftbench.DeleteRange},
	}
	for _, st := range benchStores {
		for _, bb := range logBenches {
			b.Run("store="+st.name+"/"+bb.name, func(b *testing.B) { bb.f(b, st.new(b)) })
		}
	}
	stableBenches := []struct {
		name string
		f    func(*testing.B, raft.StableStore)
	}{
		{"Set", raftbench.Set}, {"Get", raftbench.Get},
		{"SetUint64", raftbench.SetUint64}, {"GetUint64", raftbench.GetUint64},
	}
	for _, st := range benchStores {
		for _, bb := range stableBenches {
			b.Run("store="+st.name+"/"+bb.name, func(b *testing.B) { bb.f(b, st.new(b)) })
		}
	}
}

// BenchmarkRaftCommit proposes one command at a time to a 3-node group
// (each node its own WAL on disk, in-memory transport) and reports the
// commit latency percentiles: what a send waits for in the store.
func BenchmarkRaftCommit(b *testing.B) {
	b.Run("store=wal", func(b *testing.B) { benchRaftCommit(b) })
}

func benchRaftCommit(b *testing.B) {
	c := newRaftCluster(b, 3)
	leader := c.leader()
	cmd := make([]byte, 300)
	lat := make([]time.Duration, 0, b.N)
	for b.Loop() {
		start := time.Now()
		if err := leader.raft.Apply(cmd, 5*time.Second).Error(); err != nil {
			b.Fatal(err)
		}
		lat = append(lat, time.Since(start))
	}
	slices.Sort(lat)
	q := func(p float64) float64 {
		return float64(lat[min(len(lat)-1, int(p*float64(len(lat))))].Microseconds()) / 1000
	}
	b.ReportMetric(q(0.50), "p50-ms")
	b.ReportMetric(q(0.99), "p99-ms")
	b.ReportMetric(q(0.999), "p999-ms")
}
