package corerpc

import (
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/parley-chat/parley/edge/internal/edgemetrics"
)

// metrics are the Client's series: each Call's time (all attempts) and
// its errors by code, by operation, and the attempts retried.
type metrics struct {
	latency *prometheus.HistogramVec
	errors  *prometheus.CounterVec
	retries *prometheus.CounterVec
}

func newMetrics(reg prometheus.Registerer) (*metrics, error) {
	m := &metrics{
		latency: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name:    "parley_edge_core_request_seconds",
			Help:    "Time of each NATS request/reply call from the edge to the core, retries included, by operation (send, history, sync, ...).",
			Buckets: edgemetrics.LatencyBuckets,
		}, []string{"op"}),
		errors: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "parley_edge_core_request_errors_total",
			Help: "Calls to the core that failed, by operation and error code (unavailable, timeout, not_found, ...).",
		}, []string{"op", "code"}),
		retries: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "parley_edge_core_request_retries_total",
			Help: "Attempts of calls to the core that failed and were retried, by operation.",
		}, []string{"op"}),
	}
	if err := edgemetrics.Register(reg, m.latency, m.errors, m.retries); err != nil {
		return nil, err
	}
	return m, nil
}

// done records one Call of op that started at start and ended with err.
func (m *metrics) done(op string, start time.Time, err error) {
	m.latency.WithLabelValues(op).Observe(time.Since(start).Seconds())
	if err != nil {
		m.errors.WithLabelValues(op, edgemetrics.CodeName(err)).Inc()
	}
}
