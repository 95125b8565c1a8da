package session

import (
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/parley-chat/parley/edge/internal/edgemetrics"
	"github.com/parley-chat/parley/syncproto/syncpb"
)

// Transporter is an optional interface of a Conn: the name of its
// transport ("ws", "quic", "wt"), the label of the session's series.
// Sessions on a Conn without it are labelled "other".
type Transporter interface {
	Transport() string
}

func transportOf(c Conn) string {
	if t, ok := c.(Transporter); ok {
		return t.Transport()
	}
	return "other"
}

// metrics are the Server's series (see docs/metrics.md).
type metrics struct {
	shared     *edgemetrics.Shared
	sessions   *prometheus.GaugeVec
	deliveries *prometheus.CounterVec
	delivery   *prometheus.HistogramVec
	resyncs    *prometheus.CounterVec
	dropped    *prometheus.CounterVec
}

var typingDesc = prometheus.NewDesc("parley_edge_typing_total",
	"Typing indicators through this edge's sessions, by result: received (from devices), published (to the core), pushed (queued for devices), "+
		"and the dropped ones by why: malformed, invalid, rate_limited, overloaded, unpublished (from devices); shed_queue, shed_backlog, shed_load (to devices).",
	[]string{"result"}, nil)

func newMetrics(s *Server, reg prometheus.Registerer, shared *edgemetrics.Shared) (*metrics, error) {
	byTransport := []string{"transport"}
	m := &metrics{
		shared: shared,
		sessions: prometheus.NewGaugeVec(prometheus.GaugeOpts{
			Name: "parley_edge_sessions", Help: "Live device sessions, by transport (ws, quic, wt).",
		}, byTransport),
		deliveries: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "parley_edge_deliveries_total", Help: "Messages pushed live to devices (written to the connection), by transport.",
		}, byTransport),
		delivery: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name:    "parley_edge_delivery_seconds",
			Help:    "Time from a message's commit (its server timestamp) to its live push being written to a device, by transport.",
			Buckets: edgemetrics.LatencyBuckets,
		}, byTransport),
		resyncs: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "parley_edge_resyncs_total", Help: "Resync frames sent to devices (live pushes were dropped or lost), by transport.",
		}, byTransport),
		dropped: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "parley_edge_pushes_dropped_total", Help: "Live pushes dropped because a device's queue was full (the device is owed a Resync), by transport.",
		}, byTransport),
	}
	if err := edgemetrics.Register(reg, m.sessions, m.deliveries, m.delivery, m.resyncs, m.dropped, typingCollector{s}); err != nil {
		return nil, err
	}
	return m, nil
}

// delivered records the messages of a Deliver frame written to a device.
func (m *metrics) delivered(transport string, d *syncpb.Deliver, now time.Time) {
	msgs := d.GetMessages()
	m.deliveries.WithLabelValues(transport).Add(float64(len(msgs)))
	h := m.delivery.WithLabelValues(transport)
	for _, msg := range msgs {
		if ts := msg.GetTsUnixMs(); ts > 0 {
			h.Observe(max(0, now.Sub(time.UnixMilli(ts)).Seconds()))
		}
	}
}

// typingCollector reports the Server's TypingStats.
type typingCollector struct{ s *Server }

func (c typingCollector) Describe(ch chan<- *prometheus.Desc) { ch <- typingDesc }

func (c typingCollector) Collect(ch chan<- prometheus.Metric) {
	st := c.s.TypingStats()
	for _, v := range []struct {
		result string
		n      uint64
	}{
		{"received", st.Received}, {"published", st.Published}, {"pushed", st.Pushed},
		{"malformed", st.Malformed}, {"invalid", st.Invalid}, {"rate_limited", st.RateLimited},
		{"overloaded", st.Overloaded}, {"unpublished", st.Unpublished},
		{"shed_queue", st.ShedQueue}, {"shed_backlog", st.ShedBacklog}, {"shed_load", st.ShedLoad},
	} {
		ch <- prometheus.MustNewConstMetric(typingDesc, prometheus.CounterValue, float64(v.n), v.result)
	}
}
