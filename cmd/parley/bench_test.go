package main

import (
	"bytes"
	"encoding/json"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"

	"github.com/parley-chat/parley/bench"
	"github.com/parley-chat/parley/systest"
)

// runSDKBench runs `parley bench` with args and decodes its -json output.
func runSDKBench(t *testing.T, args ...string) *bench.SDKResult {
	t.Helper()
	var stdout, stderr bytes.Buffer
	err := runBench(t.Context(), append([]string{"-transport", "ws", "-json"}, args...), &stdout, &stderr)
	t.Logf("progress:\n%s", stderr.String())
	if err != nil {
		t.Fatalf("parley bench %s: %v", strings.Join(args, " "), err)
	}
	dec := json.NewDecoder(&stdout)
	dec.DisallowUnknownFields()
	var r bench.SDKResult
	if err := dec.Decode(&r); err != nil {
		t.Fatalf("decode the JSON result: %v\n%s", err, stdout.String())
	}
	return &r
}

// checkSDKResult asserts what must hold after any clean run: no errors,
// nothing lost, duplicated or reordered, and counts that add up. It makes
// no claim about latencies beyond their order.
func checkSDKResult(t *testing.T, r *bench.SDKResult, clients, groupSize int) {
	t.Helper()
	others := groupSize - 1
	c := r.Check
	switch {
	case r.Errors != 0:
		t.Errorf("%d send errors", r.Errors)
	case c.Missing != 0 || c.Duplicates != 0 || c.OutOfOrder != 0 || c.DeliveredUnacked != 0:
		t.Errorf("delivery check failed: %+v", c)
	case r.Acked == 0 || r.Sent != r.Acked:
		t.Errorf("sent %d, acked %d in the window", r.Sent, r.Acked)
	case r.Deliveries != r.Acked*others:
		t.Errorf("%d deliveries of %d acked messages in groups of %d", r.Deliveries, r.Acked, groupSize)
	case c.AckedMessages < r.Acked:
		t.Errorf("%d acked messages in the whole run, %d in the window", c.AckedMessages, r.Acked)
	case c.Expected != c.AckedMessages*others || c.Expected != c.Delivered+c.Missing:
		t.Errorf("check does not add up: %+v", c)
	case r.Ack.Count != r.Acked || r.Delivery.Count != r.Deliveries:
		t.Errorf("latency samples: %d acks, %d deliveries; want %d and %d", r.Ack.Count, r.Delivery.Count, r.Acked, r.Deliveries)
	case r.Clients != clients || r.Senders != clients || r.GroupSize != groupSize:
		t.Errorf("clients %d senders %d group size %d; want %d, %d, %d", r.Clients, r.Senders, r.GroupSize, clients, clients, groupSize)
	case r.AckedPerSec <= 0 || r.DeliveriesPerSec <= 0:
		t.Errorf("throughput %v acked/s, %v deliveries/s", r.AckedPerSec, r.DeliveriesPerSec)
	}
	for name, l := range map[string]bench.LatencyStats{"ack": r.Ack, "delivery": r.Delivery} {
		if !(0 < l.P50 && l.P50 <= l.P95 && l.P95 <= l.P99 && l.P99 <= l.Max) {
			t.Errorf("%s latency percentiles out of order: %+v", name, l)
		}
	}
	var text bytes.Buffer
	r.WriteText(&text)
	if !strings.Contains(text.String(), " 0 missing") {
		t.Errorf("text output lacks the missing count:\n%s", text.String())
	}
}

// checkSamples reads a -samples file: one line per measured ack and
// delivery, sent within the window of windowMS, ordered by send time, with
// the same maximum latencies as the result.
func checkSamples(t *testing.T, path string, r *bench.SDKResult, windowMS float64) {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	count := map[string]int{}
	maxLat := map[string]float64{}
	prev := -1.0
	for _, l := range strings.Split(strings.TrimSuffix(string(b), "\n"), "\n") {
		f := strings.Fields(l)
		if len(f) != 3 {
			t.Fatalf("sample line %q: want kind, send time and latency", l)
		}
		sent, err1 := strconv.ParseFloat(f[1], 64)
		lat, err2 := strconv.ParseFloat(f[2], 64)
		if err1 != nil || err2 != nil || sent < 0 || sent >= windowMS || lat <= 0 || sent < prev {
			t.Fatalf("sample line %q: send time outside 0..%v ms, latency not positive or out of order", l, windowMS)
		}
		prev = sent
		count[f[0]]++
		maxLat[f[0]] = max(maxLat[f[0]], lat)
	}
	if count["ack"] != r.Ack.Count || count["delivery"] != r.Delivery.Count || len(count) != 2 {
		t.Errorf("samples %v; want %d ack and %d delivery", count, r.Ack.Count, r.Delivery.Count)
	}
	for kind, want := range map[string]float64{"ack": r.Ack.Max, "delivery": r.Delivery.Max} {
		if d := maxLat[kind] - want; d < -0.01 || d > 0.01 {
			t.Errorf("largest %s sample %v ms; the result's max is %v ms", kind, maxLat[kind], want)
		}
	}
}

// Against a running system by URL, at a set rate, with idle sessions
// measured through /proc (the system runs in this process).
func TestBenchSDKByURL(t *testing.T) {
	s := systest.Start(t, systest.Options{})
	samples := filepath.Join(t.TempDir(), "samples.txt")
	r := runSDKBench(t, "-url", s.URL(), "-clients", "4", "-group-size", "3", "-convs", "3", "-rate", "200",
		"-warmup", "200ms", "-duration", "1500ms", "-straggle", "20s", "-samples", samples,
		"-idle", "6", "-idle-users", "2", "-idle-devices", "3", "-edge-pid", strconv.Itoa(os.Getpid()))
	checkSDKResult(t, r, 4, 3)
	checkSamples(t, samples, r, 1500)
	if r.TargetRate != 200 || r.Convs != 3 {
		t.Errorf("rate %v, convs %d; want 200 and 3", r.TargetRate, r.Convs)
	}
	i := r.Idle
	switch {
	case i == nil:
		t.Fatal("no idle report")
	case i.Connected != 6 || i.Failed != 0 || i.Users != 2 || i.Devices != 3:
		t.Errorf("idle: %+v", i)
	case i.Memory == nil || !strings.Contains(i.Memory.Source, strconv.Itoa(os.Getpid())) || i.Memory.Runtime != nil:
		t.Errorf("idle memory: %+v", i.Memory)
	}
}

// -self starts its own system; 1:1 conversations, unthrottled.
func TestBenchSDKSelf(t *testing.T) {
	r := runSDKBench(t, "-self", "-shards", "2", "-clients", "3", "-group-size", "2",
		"-warmup", "0s", "-duration", "1s", "-straggle", "20s", "-idle", "4", "-idle-users", "1")
	checkSDKResult(t, r, 3, 2)
	if r.Convs != 2 || r.TargetRate != 0 {
		t.Errorf("convs %d rate %v; want 2 and unthrottled", r.Convs, r.TargetRate)
	}
	i := r.Idle
	if i == nil || i.Connected != 4 || i.Devices != 4 || i.Memory == nil || i.Memory.Runtime == nil {
		t.Fatalf("idle: %+v", i)
	}
	if i.EdgeSessions != 3+4 {
		t.Errorf("edge sessions %d after the idle ones connected; want %d", i.EdgeSessions, 3+4)
	}
}

// -region starts 3 core and 2 edge processes (this test binary, run as
// parley), spreads the clients over both edges and stops them after.
func TestBenchSDKRegion(t *testing.T) {
	if testing.Short() {
		t.Skip("starts five processes; skipped with -short")
	}
	t.Setenv(asParleyEnv, "1")
	dir := t.TempDir()
	r := runSDKBench(t, "-region", "-data", dir, "-clients", "4", "-group-size", "2", "-rate", "100",
		"-warmup", "500ms", "-duration", "2s", "-straggle", "20s")
	checkSDKResult(t, r, 4, 2)
	if !strings.Contains(r.Target, "3 core and 2 edge processes") {
		t.Errorf("target %q", r.Target)
	}
	if r.Machine == nil {
		t.Error("no CPU split of the measured window")
	}
	for _, name := range []string{"n1", "n2", "n3", "e1", "e2"} {
		if _, err := os.Stat(filepath.Join(dir, name+".log")); err != nil {
			t.Errorf("log of %s: %v", name, err)
		}
	}
}

// Raw QUIC and WebTransport sessions, by URL (the certificate is pinned
// by the hashes the edge publishes).
func TestBenchSDKOverQUICAndWebTransport(t *testing.T) {
	s := systest.Start(t, systest.Options{})
	for _, tr := range []string{"quic", "wt"} {
		t.Run(tr, func(t *testing.T) {
			r := runSDKBench(t, "-transport", tr, "-url", s.URL(), "-udp", s.UDPAddr().String(),
				"-clients", "4", "-group-size", "2", "-warmup", "0s", "-duration", "1s", "-straggle", "20s")
			checkSDKResult(t, r, 4, 2)
			if r.Transport != tr {
				t.Errorf("transport %q, want %q", r.Transport, tr)
			}
		})
	}
}

// -spawn serve and -spawn region3 run the system in this process through
// the bench's hooks; -raftstats reads its Raft metrics.
func TestBenchHTTPSpawn(t *testing.T) {
	for _, kind := range []string{"serve", "region3"} {
		t.Run(kind, func(t *testing.T) {
			if kind == "region3" && testing.Short() {
				t.Skip("three core nodes; skipped with -short")
			}
			var stdout, stderr bytes.Buffer
			err := runBench(t.Context(), []string{"-spawn", kind, "-shards", "2", "-senders", "2", "-convs", "2",
				"-warmup", "200ms", "-duration", "1s", "-raftstats"}, &stdout, &stderr)
			t.Logf("stdout:\n%s\nstderr:\n%s", stdout.String(), stderr.String())
			if err != nil {
				t.Fatalf("parley bench -spawn %s: %v", kind, err)
			}
			out := stdout.String()
			for _, want := range []string{"spawned " + kind + " at http://127.0.0.1:", ", errors 0; ack latency p50 ", "raft and fsync metrics"} {
				if !strings.Contains(out, want) {
					t.Errorf("output lacks %q", want)
				}
			}
		})
	}
}
