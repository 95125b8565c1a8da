package receipts

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"path/filepath"
	"testing"
	"time"

	"github.com/dgraph-io/badger/v4"
	"github.com/nats-io/nats.go"

	"github.com/parley-chat/parley/core/natsembed"
	"github.com/parley-chat/parley/crdt"
	"github.com/parley-chat/parley/internal/poll"
	"github.com/parley-chat/parley/syncproto/syncpb"
)

// openDB opens a test DB with small memtables; openDBB one for
// benchmarks, with larger ones.
func openDB(tb testing.TB, dir string) *badger.DB  { return openDBSized(tb, dir, 8<<20) }
func openDBB(tb testing.TB, dir string) *badger.DB { return openDBSized(tb, dir, 32<<20) }

func openDBSized(tb testing.TB, dir string, memtable int64) *badger.DB {
	tb.Helper()
	db, err := badger.Open(badger.DefaultOptions(dir).WithLogger(nil).WithMemTableSize(memtable))
	if err != nil {
		tb.Fatal(err)
	}
	return db
}

// newJetStream starts a single-node JetStream server and connects to it.
func newJetStream(tb testing.TB) *nats.Conn {
	tb.Helper()
	srv, err := natsembed.Start(natsembed.Config{Name: "n1", ClientAddr: "-", JetStream: true, StoreDir: filepath.Join(tb.TempDir(), "nats")})
	if err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(srv.Close)
	nc, err := srv.Connect("test")
	if err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(nc.Close)
	return nc
}

// runService runs a Service on db until stop is called, and waits until
// its stream is ready.
func runService(tb testing.TB, db *badger.DB, nc *nats.Conn, cfg Config) (s *Service, stop func()) {
	tb.Helper()
	s, err := New(db, nc, cfg)
	if err != nil {
		tb.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { defer close(done); _ = s.Run(ctx) }()
	stop = func() { cancel(); <-done }
	ok := false
	defer func() {
		if !ok {
			stop()
		}
	}()
	poll.NoError(tb, clusterTimeout, "receipt stream ready", func() error {
		if !s.ready.Load() {
			return errors.New("the service has not created or found its stream")
		}
		return nil
	})
	ok = true
	return s, stop
}

const (
	read      = syncpb.ReceiptType_RECEIPT_TYPE_READ
	delivered = syncpb.ReceiptType_RECEIPT_TYPE_DELIVERED
)

func randDeltas(rng *rand.Rand, n int) []*syncpb.ReceiptUpdate {
	var out []*syncpb.ReceiptUpdate
	for i := 0; i < n; i++ {
		typ := delivered
		if rng.IntN(2) == 0 {
			typ = read
		}
		out = append(out, &syncpb.ReceiptUpdate{
			ConvId: fmt.Sprint("c", rng.IntN(3)), UserId: fmt.Sprint("u", rng.IntN(4)), DeviceId: fmt.Sprint("d", rng.IntN(3)),
			Type: typ, Seq: uint64(rng.IntN(50)), AtUnixMs: int64(1000 + rng.IntN(20)),
		})
	}
	return out
}

func dump(t *testing.T, st store) map[string]string {
	t.Helper()
	out := map[string]string{}
	for c := 0; c < 3; c++ {
		conv := fmt.Sprint("c", c)
		if err := st.scan(conv, func(user string, d crdt.Devices) bool {
			out[conv+"/"+user] = string(d.Encode())
			return true
		}); err != nil {
			t.Fatal(err)
		}
	}
	return out
}

// The same deltas reach three cores' stores in different orders, in
// different batches, with duplicates: the stores end byte-identical.
func TestStoresConvergeInAnyOrder(t *testing.T) {
	rng := rand.New(rand.NewPCG(1, 2))
	deltas := randDeltas(rng, 400)
	var want map[string]string
	for core := 0; core < 3; core++ {
		st := store{openDB(t, t.TempDir())}
		defer st.db.Close()
		seq := append([]*syncpb.ReceiptUpdate(nil), deltas...)
		for i := 0; i < 100; i++ {
			seq = append(seq, seq[rng.IntN(len(seq))])
		}
		rng.Shuffle(len(seq), func(i, j int) { seq[i], seq[j] = seq[j], seq[i] })
		pos := uint64(0)
		for len(seq) > 0 {
			n := min(len(seq), 1+rng.IntN(40))
			pos += uint64(n)
			if _, err := st.merge(seq[:n], pos); err != nil {
				t.Fatal(err)
			}
			seq = seq[n:]
		}
		got := dump(t, st)
		if core == 0 {
			want = got
			continue
		}
		if len(got) != len(want) {
			t.Fatalf("core %d holds %d registers, core 0 %d", core, len(got), len(want))
		}
		for k, v := range want {
			if got[k] != v {
				t.Fatalf("core %d differs at %s", core, k)
			}
		}
	}
}

// Changes report user-level moves only; stale deltas change nothing.
func TestMergeChanges(t *testing.T) {
	st := store{openDB(t, t.TempDir())}
	defer st.db.Close()
	d := func(dev string, typ syncpb.ReceiptType, seq uint64) *syncpb.ReceiptUpdate {
		return &syncpb.ReceiptUpdate{ConvId: "c", UserId: "u", DeviceId: dev, Type: typ, Seq: seq, AtUnixMs: int64(seq)}
	}
	ch, err := st.merge([]*syncpb.ReceiptUpdate{d("phone", read, 5), d("laptop", read, 3), d("phone", delivered, 4)}, 3)
	if err != nil {
		t.Fatal(err)
	}
	// phone read 5 moves the user; laptop's 3 is below it; delivered 4 is
	// below read 5 (read implies delivered).
	if len(ch) != 1 || ch[0].After.Read.Value != 5 || ch[0].After.Delivered.Value != 5 {
		t.Fatalf("changes %+v", ch)
	}
	if ch, _ = st.merge([]*syncpb.ReceiptUpdate{d("phone", read, 2)}, 4); len(ch) != 0 {
		t.Fatalf("a stale delta changed %+v", ch)
	}
	if seq, _ := st.applied(); seq != 4 {
		t.Fatalf("applied %d, want 4", seq)
	}
}

// Through a real JetStream: published deltas are merged; a restarted
// service resumes after its stored position and merges nothing twice.
func TestServiceRestartReplaysNothingTwice(t *testing.T) {
	nc := newJetStream(t)
	db := openDB(t, t.TempDir())
	defer db.Close()

	run := func(publish []*syncpb.ReceiptUpdate) *Service {
		s, stop := runService(t, db, nc, Config{Region: "r1"})
		defer stop()
		ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
		defer cancel()
		for _, u := range publish {
			if _, err := s.Publish(ctx, u); err != nil {
				t.Fatal(err)
			}
		}
		if err := s.Barrier(ctx); err != nil {
			t.Fatal(err)
		}
		return s
	}
	rng := rand.New(rand.NewPCG(3, 4))
	first, second := randDeltas(rng, 50), randDeltas(rng, 20)
	s1 := run(first)
	applied := s1.Applied()
	s2 := run(second)
	if got, want := s2.Merged(), s2.Applied()-applied; got != want {
		t.Fatalf("after restart merged %d, want %d (stream %d..%d)", got, want, applied+1, s2.Applied())
	}
	// The state is what merging every published delta directly gives.
	ref := store{openDB(t, t.TempDir())}
	defer ref.db.Close()
	if _, err := ref.merge(append(first, second...), 1); err != nil {
		t.Fatal(err)
	}
	want, got := dump(t, ref), dump(t, s2.st)
	if len(got) != len(want) {
		t.Fatalf("%d registers, want %d", len(got), len(want))
	}
	for k, v := range want {
		if got[k] != v {
			t.Fatalf("differs at %s", k)
		}
	}
}

// BenchmarkMerge: deltas merged per second into Badger, in batches of 512.
func BenchmarkMerge(b *testing.B) {
	st := store{openDBB(b, b.TempDir())}
	defer st.db.Close()
	rng := rand.New(rand.NewPCG(5, 6))
	batch := make([]*syncpb.ReceiptUpdate, 512)
	seq := uint64(0)
	for b.Loop() {
		for i := range batch {
			seq++
			batch[i] = &syncpb.ReceiptUpdate{ConvId: fmt.Sprint("c", rng.IntN(1000)), UserId: fmt.Sprint("u", rng.IntN(50)),
				DeviceId: "d1", Type: read, Seq: seq, AtUnixMs: int64(seq)}
		}
		if _, err := st.merge(batch, seq); err != nil {
			b.Fatal(err)
		}
	}
	b.ReportMetric(float64(b.N*len(batch))/b.Elapsed().Seconds(), "deltas/s")
}

// BenchmarkPublishAndMerge: reports stored on a (single-node) JetStream
// stream and merged, 32 publishers at once.
func BenchmarkPublishAndMerge(b *testing.B) {
	nc := newJetStream(b)
	db := openDBB(b, b.TempDir())
	defer db.Close()
	s, stop := runService(b, db, nc, Config{Region: "r1"})
	defer stop()
	benchPublishAndMerge(b, []testNode{{db: db, s: s}})
}

// A node whose position is behind the stream's retention (here: the
// stream was purged) merges a peer's state and goes on from the peer's
// position: both end equal.
func TestStateTransferWhenStreamMovedOn(t *testing.T) {
	nc := newJetStream(t)
	dir := t.TempDir()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	start := func(node string) *Service {
		db := openDB(t, filepath.Join(dir, node))
		t.Cleanup(func() { db.Close() })
		s, stop := runService(t, db, nc, Config{Region: "r1", NodeID: node, Peers: []string{"a", "b"}})
		t.Cleanup(stop)
		return s
	}
	rng := rand.New(rand.NewPCG(8, 9))
	a := start("a")
	for _, u := range randDeltas(rng, 300) {
		if _, err := a.Publish(ctx, u); err != nil {
			t.Fatal(err)
		}
	}
	if err := a.Barrier(ctx); err != nil {
		t.Fatal(err)
	}
	st, err := a.js.Stream(ctx, a.stream)
	if err != nil {
		t.Fatal(err)
	}
	if err := st.Purge(ctx); err != nil {
		t.Fatal(err)
	}
	b := start("b")
	if b.Applied() != a.Applied() {
		t.Fatalf("b starts at %d, a is at %d", b.Applied(), a.Applied())
	}
	for _, u := range randDeltas(rng, 50) {
		if _, err := b.Publish(ctx, u); err != nil {
			t.Fatal(err)
		}
	}
	if err := a.Barrier(ctx); err != nil {
		t.Fatal(err)
	}
	if err := b.Barrier(ctx); err != nil {
		t.Fatal(err)
	}
	da, db := dump(t, a.st), dump(t, b.st)
	if len(da) == 0 || len(da) != len(db) {
		t.Fatalf("a holds %d registers, b %d", len(da), len(db))
	}
	for k, v := range da {
		if db[k] != v {
			t.Fatalf("a and b differ at %s", k)
		}
	}
}
