package main

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promhttp"
	dto "github.com/prometheus/client_model/go"
	"github.com/prometheus/common/expfmt"
	"github.com/prometheus/common/model"

	"github.com/parley-chat/parley/bench"
	"github.com/parley-chat/parley/client/rest"
	"github.com/parley-chat/parley/cmd/internal/observe"
	"github.com/parley-chat/parley/syncproto/syncpb"
	"github.com/parley-chat/parley/system"
	"github.com/parley-chat/parley/systest"
)

// TestPrintRaftStats: histograms and summaries print their count and
// mean (seconds as ms), gauges their sum over label sets and processes.
func TestPrintRaftStats(t *testing.T) {
	reg := prometheus.NewRegistry()
	h := prometheus.NewHistogram(prometheus.HistogramOpts{Name: "parley_core_wal_fsync_seconds", Help: "h"})
	g := prometheus.NewGaugeVec(prometheus.GaugeOpts{Name: "parley_core_wal_segments", Help: "g"}, []string{"node"})
	other := prometheus.NewGauge(prometheus.GaugeOpts{Name: "parley_edge_other", Help: "o"})
	reg.MustRegister(h, g, other)
	h.Observe(0.001)
	h.Observe(0.003)
	g.WithLabelValues("n1").Set(2)
	g.WithLabelValues("n2").Set(3)
	// Scraped twice (as from two processes), so each series counts twice.
	var out strings.Builder
	srv := httptest.NewServer(promhttp.HandlerFor(reg, promhttp.HandlerOpts{}))
	defer srv.Close()
	if err := bench.WriteRaftStats(t.Context(), &out, []string{srv.URL, srv.URL}); err != nil {
		t.Fatal(err)
	}
	for _, re := range []string{
		`parley_core_wal_fsync_seconds +4 +2\.000\n`,
		`gauges and counters:\n +parley_core_wal_segments +10\n`,
	} {
		if !regexp.MustCompile(re).MatchString(out.String()) {
			t.Errorf("output does not match %q:\n%s", re, out.String())
		}
	}
	if strings.Contains(out.String(), "parley_edge_other") {
		t.Errorf("printed a series that is not Raft's or storage's:\n%s", out.String())
	}
}

// scrape reads url's Prometheus text format.
func scrape(t *testing.T, url string) map[string]*dto.MetricFamily {
	t.Helper()
	resp, err := http.Get(url)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != 200 {
		t.Fatalf("GET %s: %d", url, resp.StatusCode)
	}
	parser := expfmt.NewTextParser(model.UTF8Validation)
	fams, err := parser.TextToMetricFamilies(resp.Body)
	if err != nil {
		t.Fatalf("parse %s: %v", url, err)
	}
	return fams
}

// metricValue is the value of family name's series with labels (a subset):
// a counter's or gauge's value, a histogram's or summary's count; the
// sum over matching series, and whether any matched.
func metricValue(fams map[string]*dto.MetricFamily, name string, labels map[string]string) (float64, bool) {
	f, ok := fams[name]
	if !ok {
		return 0, false
	}
	var v float64
	found := false
next:
	for _, m := range f.GetMetric() {
		have := map[string]string{}
		for _, l := range m.GetLabel() {
			have[l.GetName()] = l.GetValue()
		}
		for k, want := range labels {
			if have[k] != want {
				continue next
			}
		}
		found = true
		switch {
		case m.Counter != nil:
			v += m.Counter.GetValue()
		case m.Gauge != nil:
			v += m.Gauge.GetValue()
		case m.Histogram != nil:
			v += float64(m.Histogram.GetSampleCount())
		case m.Summary != nil:
			v += float64(m.Summary.GetSampleCount())
		}
	}
	return v, found
}

// TestMetricsAfterTraffic: after sends over HTTP and WebSocket and QUIC
// sessions, /metrics shows them moved: send ACK latency by transport,
// deliveries and their latency, live sessions, core request latency, Raft
// apply time per group and raft's own timers (through the go-metrics
// sink), WAL fsyncs, presence leases.
func TestMetricsAfterTraffic(t *testing.T) {
	reg, err := observe.NewRegistry()
	if err != nil {
		t.Fatal(err)
	}
	s := systest.Start(t, systest.Options{Config: func(c *system.Config) { c.Metrics = reg }})
	srv := httptest.NewServer(observe.Mux(reg, s.Node().Ready))
	t.Cleanup(srv.Close)
	ctx := t.Context()

	anaRC, _ := s.User(t, "acme", "ana")
	boRC, boSess := s.User(t, "acme", "bo")
	cyRC, cySess := s.User(t, "acme", "cy")
	bo := s.Device(t, "ws", boRC, boSess, nil)
	cy := s.Device(t, "quic", cyRC, cySess, nil)
	g, err := anaRC.CreateConversation(ctx, rest.NewConversation{Type: "group", Title: "metrics", MemberIDs: []string{boSess.User.ID, cySess.User.ID}})
	if err != nil {
		t.Fatal(err)
	}
	for i := range 3 {
		if _, err := anaRC.Send(ctx, rest.SendRequest{ConvID: g.ID, Body: fmt.Sprintf("http %d", i)}); err != nil {
			t.Fatal(err)
		}
		if _, err := bo.C.Send(ctx, &syncpb.SendRequest{ConvId: g.ID, Body: fmt.Appendf(nil, "ws %d", i)}); err != nil {
			t.Fatal(err)
		}
		if _, err := cy.C.Send(ctx, &syncpb.SendRequest{ConvId: g.ID, Body: fmt.Appendf(nil, "quic %d", i)}); err != nil {
			t.Fatal(err)
		}
	}
	bo.Box.WaitFor(t, g.ID, 9, "bo")
	cy.Box.WaitFor(t, g.ID, 9, "cy")

	type want struct {
		name   string
		labels map[string]string
		min    float64
	}
	wants := []want{
		{"parley_edge_send_ack_seconds", map[string]string{"transport": "http"}, 3},
		{"parley_edge_send_ack_seconds", map[string]string{"transport": "ws"}, 3},
		{"parley_edge_send_ack_seconds", map[string]string{"transport": "quic"}, 3},
		{"parley_edge_sessions", map[string]string{"transport": "ws"}, 1},
		{"parley_edge_sessions", map[string]string{"transport": "quic"}, 1},
		{"parley_edge_deliveries_total", map[string]string{"transport": "ws"}, 6},
		{"parley_edge_delivery_seconds", map[string]string{"transport": "quic"}, 6},
		{"parley_edge_core_request_seconds", map[string]string{"op": "send"}, 9},
		{"parley_core_raft_apply_seconds", map[string]string{"node": "n1"}, 9},
		{"parley_core_wal_fsync_seconds", map[string]string{"node": "n1"}, 1},
		{"parley_core_wal_writes_per_fsync", nil, 1},
		{"parley_core_badger_fsync_seconds", nil, 0},
		{"parley_core_deliveries_published_total", nil, 1},
		{"parley_core_presence_edge_leases", nil, 1},
		{"parley_raft_commitTime", nil, 1},
		{"parley_edge_typing_total", map[string]string{"result": "received"}, 0},
		{"parley_core_typing_total", map[string]string{"result": "received"}, 0},
		{"parley_edge_rate_limited_total", nil, 0},
		{"parley_core_groups_leaderless", nil, 0},
	}
	// Deliveries, presence leases and raft's timers come a moment after
	// the sends are acknowledged: poll with a deadline.
	deadline := time.Now().Add(30 * time.Second)
	for {
		fams := scrape(t, srv.URL+"/metrics")
		var missing []string
		for _, w := range wants {
			v, ok := metricValue(fams, w.name, w.labels)
			if w.min == 0 && w.name != "parley_edge_rate_limited_total" && !ok {
				missing = append(missing, fmt.Sprintf("%s%v absent", w.name, w.labels))
			} else if w.min > 0 && v < w.min {
				missing = append(missing, fmt.Sprintf("%s%v = %v, want at least %v", w.name, w.labels, v, w.min))
			}
		}
		if len(missing) == 0 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("after traffic:\n  %s", strings.Join(missing, "\n  "))
		}
		time.Sleep(50 * time.Millisecond)
	}
	for _, path := range []string{"/livez", "/readyz"} {
		resp, err := http.Get(srv.URL + path)
		if err != nil {
			t.Fatal(err)
		}
		b, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if resp.StatusCode != 200 {
			t.Fatalf("%s: %d %s", path, resp.StatusCode, b)
		}
	}
}

// TestServeMetricsFlag: parley serve --metrics serves /metrics with the
// parley_ series and names the address in its banner.
func TestServeMetricsFlag(t *testing.T) {
	var out syncBuffer
	dir := t.TempDir() // removed after the cleanup below has stopped serve
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() {
		done <- runServe(ctx, []string{"--data", dir, "--http", "127.0.0.1:0", "--udp", "", "--nats", "-",
			"--metrics", "127.0.0.1:0"}, &out, io.Discard)
	}()
	t.Cleanup(func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("serve: %v", err)
		}
	})
	re := regexp.MustCompile(`metrics   (http://127\.0\.0\.1:\d+)/metrics`)
	deadline := time.Now().Add(60 * time.Second)
	var base string
	for {
		if m := re.FindStringSubmatch(out.String()); m != nil {
			base = m[1]
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("no metrics address in the banner within 60s: %q", out.String())
		}
		time.Sleep(20 * time.Millisecond)
	}
	fams := scrape(t, base+"/metrics")
	for _, name := range []string{"parley_core_groups_leaderless", "parley_core_wal_segments", "parley_core_presence_edge_leases", "go_goroutines"} {
		if _, ok := fams[name]; !ok {
			t.Errorf("/metrics lacks %s", name)
		}
	}
	resp, err := http.Get(base + "/readyz")
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != 200 {
		t.Fatalf("readyz after the banner: %d", resp.StatusCode)
	}
}

// Every parley_ series the Grafana dashboard queries is one docs/metrics.md
// lists.
func TestDashboardSeriesAreDocumented(t *testing.T) {
	dash, err := os.ReadFile(filepath.Join("..", "..", "docs", "grafana", "parley.json"))
	if err != nil {
		t.Fatal(err)
	}
	doc, err := os.ReadFile(filepath.Join("..", "..", "docs", "metrics.md"))
	if err != nil {
		t.Fatal(err)
	}
	var d struct {
		Panels []struct {
			Title   string `json:"title"`
			Targets []struct {
				Expr string `json:"expr"`
			} `json:"targets"`
		} `json:"panels"`
	}
	if err := json.Unmarshal(dash, &d); err != nil {
		t.Fatalf("parley.json: %v", err)
	}
	series := regexp.MustCompile(`parley_[a-z_]+`)
	n := 0
	for _, p := range d.Panels {
		for _, tg := range p.Targets {
			for _, s := range series.FindAllString(tg.Expr, -1) {
				n++
				for _, suffix := range []string{"_bucket", "_count", "_sum"} {
					s = strings.TrimSuffix(s, suffix)
				}
				if !strings.Contains(string(doc), "`"+s+"`") {
					t.Errorf("panel %q queries %s, which docs/metrics.md does not list", p.Title, s)
				}
			}
		}
	}
	if n == 0 {
		t.Fatal("the dashboard queries no parley_ series")
	}
}
