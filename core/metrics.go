package core

import (
	"fmt"
	"strings"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/parley-chat/parley/core/internal/coremetrics"
)

// applyBuckets are the buckets of a Raft apply in seconds: 250 µs to ~4 s.
var applyBuckets = prometheus.ExponentialBuckets(250e-6, 2, 15)

// nodeMetrics are the node's series. Every one carries the label node
// (the node id), so several nodes can share one registry.
type nodeMetrics struct {
	// apply is the time from proposing a command on the leader to its
	// result (commit on a quorum, fsync'd, and applied), per group.
	apply *prometheus.HistogramVec
}

func newNodeMetrics() *nodeMetrics {
	return &nodeMetrics{
		apply: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name:    "parley_core_raft_apply_seconds",
			Help:    "Time from proposing a command on a group's leader to its applied result (commit on a quorum included), by group (dir, s0, s1, ...).",
			Buckets: applyBuckets,
		}, []string{"group"}),
	}
}

func (m *nodeMetrics) observeApply(group string, start time.Time) {
	m.apply.WithLabelValues(group).Observe(time.Since(start).Seconds())
}

// registerMetrics registers the node's series on reg (which labels them
// with the node id): the apply histogram, gauges and counters read from
// the node's parts, and the Syncer's histograms. Close unregisters them.
func (n *Node) registerMetrics(reg prometheus.Registerer) error {
	cs := []prometheus.Collector{
		n.metrics.apply,
		prometheus.NewGaugeFunc(prometheus.GaugeOpts{
			Name: "parley_core_groups_leaderless", Help: "Raft groups of this node that know no leader.",
		}, func() float64 { return float64(len(n.leaderless())) }),
		prometheus.NewGaugeFunc(prometheus.GaugeOpts{
			Name: "parley_core_groups_led", Help: "Raft groups this node leads.",
		}, func() float64 {
			led := 0
			for _, name := range n.order {
				if n.groups[name].g.IsLeader() {
					led++
				}
			}
			return float64(led)
		}),
		prometheus.NewGaugeFunc(prometheus.GaugeOpts{
			Name: "parley_core_presence_edge_leases", Help: "Edges holding a live presence lease in this node's table.",
		}, func() float64 { _, edges := n.PresenceOnline(); return float64(edges) }),
		prometheus.NewGaugeFunc(prometheus.GaugeOpts{
			Name: "parley_core_presence_users_online", Help: "Users online (a device under a live lease) in this node's table.",
		}, func() float64 { users, _ := n.PresenceOnline(); return float64(users) }),
		prometheus.NewCounterFunc(prometheus.CounterOpts{
			Name: "parley_core_deliveries_published_total", Help: "Delivery messages this node published to edges after commits it led.",
		}, func() float64 { published, _ := n.fanout.DeliveryStats(); return float64(published) }),
		prometheus.NewCounterFunc(prometheus.CounterOpts{
			Name: "parley_core_deliveries_dropped_total", Help: "Deliveries dropped (queue full or publish failed); devices resync.",
		}, func() float64 { _, dropped := n.fanout.DeliveryStats(); return float64(dropped) }),
	}
	typing := prometheus.NewDesc("parley_core_typing_total",
		"Typing indicators this node handled, by result: received, fanned (published to members), stranger (sender not a member), dropped (malformed, wrong shard, queue full).",
		[]string{"result"}, nil)
	cs = append(cs, funcCollector{desc: typing, collect: func(ch chan<- prometheus.Metric) {
		st := n.TypingStats()
		for _, v := range []struct {
			result string
			n      uint64
		}{{"received", st.Received}, {"fanned", st.Fanned}, {"stranger", st.Strangers}, {"dropped", st.Dropped}} {
			ch <- prometheus.MustNewConstMetric(typing, prometheus.CounterValue, float64(v.n), v.result)
		}
	}})
	if n.receipts != nil {
		cs = append(cs, prometheus.NewCounterFunc(prometheus.CounterOpts{
			Name: "parley_core_receipts_merged_total", Help: "Receipt deltas merged into this node's max-registers from the receipt stream.",
		}, func() float64 { return float64(n.receipts.Merged()) }))
	}
	cs = append(cs, n.searchCollectors()...)
	cs = append(cs, n.syncer.Collectors()...)
	unregister, err := coremetrics.Register(reg, cs...)
	if err != nil {
		return fmt.Errorf("core: metrics: %w", err)
	}
	n.unregister = append(n.unregister, unregister)
	return nil
}

// funcCollector collects the metrics of one Desc from a function.
type funcCollector struct {
	desc    *prometheus.Desc
	collect func(chan<- prometheus.Metric)
}

func (c funcCollector) Describe(ch chan<- *prometheus.Desc) { ch <- c.desc }
func (c funcCollector) Collect(ch chan<- prometheus.Metric) { c.collect(ch) }

// leaderless names the groups of this node that know no leader.
func (n *Node) leaderless() []string {
	var out []string
	for _, name := range n.order {
		if id, _ := n.groups[name].g.Leader(); id == "" {
			out = append(out, name)
		}
	}
	return out
}

// NotReadyError is returned by Ready while groups have no leader.
type NotReadyError struct {
	Leaderless []string // group names (dir, s0, s1, ...)
}

func (e *NotReadyError) Error() string {
	return "core: groups without a leader: " + strings.Join(e.Leaderless, ", ")
}

// Ready returns nil when every group of this node knows a leader, so the
// node can serve every request; else a *NotReadyError. It does not block.
func (n *Node) Ready() error {
	if l := n.leaderless(); len(l) > 0 {
		return &NotReadyError{Leaderless: l}
	}
	return nil
}
