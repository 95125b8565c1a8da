package push

import (
	"github.com/prometheus/client_golang/prometheus"

	"github.com/parley-chat/parley/core/internal/coremetrics"
)

// metrics are the pusher's series.
type metrics struct {
	sent    *prometheus.CounterVec
	failed  *prometheus.CounterVec
	removed *prometheus.CounterVec
	latency *prometheus.HistogramVec
}

func newMetrics() *metrics {
	return &metrics{
		sent: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "parley_push_sent_total", Help: "Pushes a push service or gateway accepted, by target kind (webpush, gateway) and type (message, clear).",
		}, []string{"kind", "type"}),
		failed: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "parley_push_failed_total", Help: "Pushes that failed or were not queued, by reason (4xx, 5xx, network, gone, gave_up, queue_full, store, directory, no_sender); a retried push counts each failure.",
		}, []string{"reason"}),
		removed: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "parley_push_subscriptions_removed_total", Help: "Push targets removed because their service said they are gone (404/410, a rejected push key), by kind.",
		}, []string{"kind"}),
		latency: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name: "parley_push_commit_to_push_seconds", Help: "Time from a message's commit (a read, for a clear) to the push request, grace delay included, by type.",
			Buckets: prometheus.ExponentialBuckets(0.05, 2, 14),
		}, []string{"type"}),
	}
}

func (m *metrics) register(reg prometheus.Registerer, p *Pusher) (func(), error) {
	return coremetrics.Register(reg, m.sent, m.failed, m.removed, m.latency,
		prometheus.NewGaugeFunc(prometheus.GaugeOpts{
			Name: "parley_push_pending", Help: "Pushes queued or in flight on this node.",
		}, func() float64 { return float64(p.Pending()) }))
}
