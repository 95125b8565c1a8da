// Package edgemetrics holds the Prometheus series that more than one of
// the edge's packages measure: sends and their ACK latency by transport
// (httpapi for http, session for ws, quic and wt) and calls refused by a
// rate limit. Each package defines the rest of its series itself.
package edgemetrics

import (
	"strings"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/parley-chat/parley/syncproto"
)

// LatencyBuckets are the buckets of request and delivery latencies in
// seconds: 500 µs to ~16 s.
var LatencyBuckets = prometheus.ExponentialBuckets(500e-6, 2, 16)

// Shared are the shared series. A nil *Shared measures nothing.
type Shared struct {
	sendAck     *prometheus.HistogramVec
	sendErrors  *prometheus.CounterVec
	rateLimited *prometheus.CounterVec
}

// New returns the shared series, registered on reg (nil: not registered).
func New(reg prometheus.Registerer) (*Shared, error) {
	s := &Shared{
		sendAck: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name:    "parley_edge_send_ack_seconds",
			Help:    "Time from a send reaching the edge to its ACK (committed on a quorum), by transport (http, ws, quic, wt); its _count is the sends acknowledged.",
			Buckets: LatencyBuckets,
		}, []string{"transport"}),
		sendErrors: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "parley_edge_send_errors_total",
			Help: "Sends answered with an error, by transport and error code (syncproto code name, lower case).",
		}, []string{"transport", "code"}),
		rateLimited: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "parley_edge_rate_limited_total",
			Help: "Calls refused by a rate limit, by limit: ip (unauthenticated HTTP calls), user (authenticated HTTP calls), frame (device session frames), typing (typing indicators).",
		}, []string{"limit"}),
	}
	if err := Register(reg, s.sendAck, s.sendErrors, s.rateLimited); err != nil {
		return nil, err
	}
	return s, nil
}

// Register registers cs on reg; a nil reg registers nothing.
func Register(reg prometheus.Registerer, cs ...prometheus.Collector) error {
	if reg == nil {
		return nil
	}
	for _, c := range cs {
		if err := reg.Register(c); err != nil {
			return err
		}
	}
	return nil
}

// Send records one send over transport that started at start and ended
// with err (nil: acknowledged).
func (s *Shared) Send(transport string, start time.Time, err error) {
	if s == nil {
		return
	}
	if err != nil {
		s.sendErrors.WithLabelValues(transport, CodeName(err)).Inc()
		return
	}
	s.sendAck.WithLabelValues(transport).Observe(time.Since(start).Seconds())
}

// RateLimited records one call refused by limit.
func (s *Shared) RateLimited(limit string) {
	if s == nil {
		return
	}
	s.rateLimited.WithLabelValues(limit).Inc()
}

// CodeName is err's syncproto code as a label value: "unavailable",
// "timeout", ... ("internal" for an error without a code).
func CodeName(err error) string {
	return strings.ToLower(strings.TrimPrefix(syncproto.AsError(err).Code.String(), "CODE_"))
}
