package raftstore

import (
	"github.com/prometheus/client_golang/prometheus"

	"github.com/parley-chat/parley/core/internal/coremetrics"
)

// fsyncBuckets are the fsync time buckets in seconds: 50 µs to 1 s.
var fsyncBuckets = prometheus.ExponentialBuckets(50e-6, 2.5, 12)

// batchBuckets are the buckets of waiters per fsync: 1 to 1024.
var batchBuckets = prometheus.ExponentialBuckets(1, 2, 11)

// walMetrics are the WAL's series: each fdatasync's time, how many
// durability waits it was started for, and the segments on disk and the
// live bytes in them.
type walMetrics struct {
	fsync prometheus.Histogram
	batch prometheus.Histogram
	// unregister removes the series from the registry (WAL.Close), so a
	// WAL opened again may register them anew.
	unregister func()
}

// newWALMetrics makes w's series and registers them on reg (nil: not
// registered).
func newWALMetrics(w *WAL, reg prometheus.Registerer) (*walMetrics, error) {
	m := &walMetrics{
		fsync: prometheus.NewHistogram(prometheus.HistogramOpts{
			Name: "parley_core_wal_fsync_seconds", Help: "Time of each fdatasync of the Raft WAL.", Buckets: fsyncBuckets,
		}),
		batch: prometheus.NewHistogram(prometheus.HistogramOpts{
			Name: "parley_core_wal_writes_per_fsync", Help: "Durability waits (log writes) each WAL fdatasync was started for.", Buckets: batchBuckets,
		}),
	}
	segs := prometheus.NewGaugeFunc(prometheus.GaugeOpts{
		Name: "parley_core_wal_segments", Help: "Segment files of the Raft WAL on disk.",
	}, func() float64 {
		w.imu.RLock()
		defer w.imu.RUnlock()
		return float64(len(w.segs))
	})
	live := prometheus.NewGaugeFunc(prometheus.GaugeOpts{
		Name: "parley_core_wal_live_bytes", Help: "Bytes of the Raft WAL's segments still in use.",
	}, func() float64 {
		w.imu.RLock()
		defer w.imu.RUnlock()
		return float64(w.liveBytesLocked())
	})
	var err error
	if m.unregister, err = coremetrics.Register(reg, m.fsync, m.batch, segs, live); err != nil {
		return nil, err
	}
	return m, nil
}

// syncerMetrics are the Syncer's series: each Badger fsync's time and how
// many Sync calls it was started for.
type syncerMetrics struct {
	fsync prometheus.Histogram
	batch prometheus.Histogram
}

func newSyncerMetrics() *syncerMetrics {
	return &syncerMetrics{
		fsync: prometheus.NewHistogram(prometheus.HistogramOpts{
			Name: "parley_core_badger_fsync_seconds", Help: "Time of each fsync of the Badger state store.", Buckets: fsyncBuckets,
		}),
		batch: prometheus.NewHistogram(prometheus.HistogramOpts{
			Name: "parley_core_badger_syncs_per_fsync", Help: "Sync calls (applied batches) each Badger fsync was started for.", Buckets: batchBuckets,
		}),
	}
}

// Collectors are the Syncer's series, for its owner to register.
func (s *Syncer) Collectors() []prometheus.Collector {
	return []prometheus.Collector{s.m.fsync, s.m.batch}
}
