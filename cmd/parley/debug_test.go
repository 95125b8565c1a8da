package main

import (
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/hashicorp/go-metrics"

	"github.com/parley-chat/parley/bench"
)

// TestPrintRaftStats: timers aggregate over intervals (count, mean, max);
// gauges show their latest value.
func TestPrintRaftStats(t *testing.T) {
	sink := metrics.NewInmemSink(time.Hour, time.Hour)
	sink.AddSample([]string{"raftstore", "wal", "fsync"}, 1)
	sink.AddSample([]string{"raftstore", "wal", "fsync"}, 3)
	sink.SetGauge([]string{"raftstore", "wal", "segments"}, 2)
	sink.SetGauge([]string{"raftstore", "wal", "segments"}, 5)
	var out strings.Builder
	bench.WriteRaftStats(&out, sink)
	for _, re := range []string{
		`raftstore\.wal\.fsync +2 +2\.000 +3\.000\n`,
		`gauges \(latest\):\n +raftstore\.wal\.segments +5\n`,
	} {
		if !regexp.MustCompile(re).MatchString(out.String()) {
			t.Errorf("output does not match %q:\n%s", re, out.String())
		}
	}
}
