package shard

import (
	"bytes"
	"fmt"
	"io"
	"math/rand/v2"
	"strings"
	"testing"
	"time"

	"github.com/dgraph-io/badger/v4"
	"github.com/hashicorp/raft"

	"github.com/parley-chat/parley/core/internal/cmdpb"
	"github.com/parley-chat/parley/syncproto/syncpb"
)

var users = []string{"ana", "bo", "cy", "di", "ed"}

// workload drives a leader through n random requests, some of them racing
// (prepared, then applied after others), plus raft entries that are not
// commands and undecodable data. It returns the recorded log.
func workload(t testing.TB, h *harness, n int, seed uint64) []*raft.Log {
	t.Helper()
	rng := rand.New(rand.NewPCG(seed, seed^0x9e3779b97f4a7c15))
	pick := func(s []string) string { return s[rng.IntN(len(s))] }
	convs := []string{"c_0", "c_1", "c_2", "c_3"}
	for _, c := range convs {
		mustOK(t, h.do(caller(pick(users)), groupReq(c, users...)))
	}
	convs = append(convs, directID("ana", "bo"), directID("cy", "di"))
	mustOK(t, h.do(caller("ana"), createReq(directID("ana", "bo"), direct, "", "bo")))
	mustOK(t, h.do(caller("di"), createReq(directID("cy", "di"), direct, "", "cy")))
	var held []*cmdpb.Command
	for i := 0; i < n; i++ {
		h.tick(time.Duration(rng.IntN(50)-10) * time.Millisecond) // the clock sometimes goes back
		c := caller(pick(users))
		c.DeviceId = fmt.Sprintf("d_%s%d", c.UserId[2:], rng.IntN(2))
		conv := pick(convs)
		var req *syncpb.CoreRequest
		switch r := rng.IntN(100); {
		case r < 55:
			body := strings.Repeat("m", 1+rng.IntN(2000))
			req = sendReq(conv, fmt.Sprintf("cm-%d", rng.IntN(n)), body) // ids repeat: retries
		case r < 75:
			typ := delivered
			if rng.IntN(2) == 0 {
				typ = read
			}
			req = receiptReq(conv, uint64(rng.IntN(20)), typ)
		case r < 85:
			ch := change{}
			switch rng.IntN(4) {
			case 0:
				ch.add = []string{pick(users)}
			case 1:
				ch.remove = []string{pick(users)}
			case 2:
				ch.roles = map[string]syncpb.Role{pick(users): syncpb.Role(1 + rng.IntN(3)), pick(users): syncpb.Role(1 + rng.IntN(3))}
			case 3:
				ch.leave = true
			}
			req = changeReq(conv, ch)
		case r < 90:
			req = groupReq(fmt.Sprintf("c_new%d", rng.IntN(20)), pick(users), pick(users))
		case r < 93:
			h.raw(raft.LogConfiguration, []byte{1, 2, 3})
			continue
		case r < 95:
			h.raw(raft.LogCommand, []byte{0xde, 0xad, 0xbe, 0xef})
			continue
		default:
			// Apply what was held back, now that other entries went first.
			for _, cmd := range held {
				h.propose(cmd)
			}
			held = nil
			continue
		}
		cmd, _ := h.prepare(c, req)
		if cmd == nil {
			continue
		}
		if req.GetSend() != nil && rng.IntN(10) == 0 {
			// A client's retry reaching the leader before the first commits.
			if again, _ := h.prepare(c, req); again != nil {
				held = append(held, again)
			}
		}
		if rng.IntN(8) == 0 {
			held = append(held, cmd)
			continue
		}
		h.propose(cmd)
	}
	for _, cmd := range held {
		h.propose(cmd)
	}
	return h.logs
}

func (h *harness) raw(typ raft.LogType, data []byte) {
	h.index++
	l := &raft.Log{Index: h.index, Term: 1, Type: typ, Data: data}
	h.logs = append(h.logs, l)
	h.f.Apply(l)
}

// applyInBatches applies logs in batches of random sizes, as raft does.
func applyInBatches(f *FSM, logs []*raft.Log, rng *rand.Rand) {
	for len(logs) > 0 {
		n := min(len(logs), 1+rng.IntN(200))
		f.ApplyBatch(logs[:n])
		logs = logs[n:]
	}
}

func snapshotBytes(t testing.TB, f *FSM) []byte {
	t.Helper()
	snap, err := f.Snapshot()
	if err != nil {
		t.Fatal(err)
	}
	defer snap.Release()
	sink := &bufferSink{}
	if err := snap.Persist(sink); err != nil {
		t.Fatal(err)
	}
	return sink.Bytes()
}

type bufferSink struct{ bytes.Buffer }

func (s *bufferSink) ID() string    { return "test" }
func (s *bufferSink) Close() error  { return nil }
func (s *bufferSink) Cancel() error { return nil }

// The same log gives byte-identical key spaces whether applied one entry at
// a time, in batches of random sizes (split across Badger transactions), or
// from a snapshot taken midway.
func TestDeterministicReplicas(t *testing.T) {
	n := 1500
	if testing.Short() {
		n = 300
	}
	leader := newHarness(t)
	logs := workload(t, leader, n, 7)
	t.Logf("leader applied: %v", leader.stats)
	want := dumpGroup(t, leader.db, group)
	if len(want) == 0 || !bytes.Contains(want, []byte(`"f/s0/g/c_0/`)) {
		t.Fatal("workload stored no messages")
	}

	one := openDB(t, 16<<20)
	f1 := newFSM(t, one, newFakeDir())
	for _, l := range logs {
		f1.Apply(l)
	}

	// A small memtable makes big batches split across transactions.
	small := openDB(t, 256<<10)
	f2 := newFSM(t, small, newFakeDir())
	applyInBatches(f2, logs, rand.New(rand.NewPCG(3, 4)))

	src := openDB(t, 16<<20)
	f3 := newFSM(t, src, newFakeDir())
	half := len(logs) / 2
	applyInBatches(f3, logs[:half], rand.New(rand.NewPCG(5, 6)))
	snap := snapshotBytes(t, f3)
	restored := openDB(t, 16<<20)
	f4 := newFSM(t, restored, newFakeDir())
	if err := f4.Restore(io.NopCloser(bytes.NewReader(snap))); err != nil {
		t.Fatal(err)
	}
	if idx, err := f4.AppliedIndex(); err != nil || idx != logs[half-1].Index {
		t.Fatalf("restored applied index %d, %v; want %d", idx, err, logs[half-1].Index)
	}
	// Raft may hand over entries the snapshot already covers: skipped.
	applyInBatches(f4, logs[half-10:], rand.New(rand.NewPCG(7, 8)))

	for name, db := range map[string]*badger.DB{"one by one": one, "batches": small, "from snapshot": restored} {
		if got := dumpGroup(t, db, group); !bytes.Equal(got, want) {
			t.Errorf("%s: key space differs from the leader's (%d vs %d bytes)", name, len(got), len(want))
		}
	}
	for _, f := range []*FSM{f1, f2, f4} {
		if idx, _ := f.AppliedIndex(); idx != logs[len(logs)-1].Index {
			t.Errorf("applied index %d, want %d", idx, logs[len(logs)-1].Index)
		}
	}
}

// Re-applying entries at or below the applied index changes nothing.
func TestReplayChangesNothing(t *testing.T) {
	leader := newHarness(t)
	logs := workload(t, leader, 300, 11)
	before := dumpGroup(t, leader.db, group)
	for i, r := range leader.f.ApplyBatch(logs) {
		if logs[i].Type == raft.LogCommand && r.(*syncpb.CoreResponse).GetError().GetCode() != syncpb.Code_CODE_UNAVAILABLE {
			t.Fatalf("replayed entry %d answered %v", logs[i].Index, r)
		}
	}
	for _, l := range logs[len(logs)/2:] {
		leader.f.Apply(l)
	}
	if after := dumpGroup(t, leader.db, group); !bytes.Equal(after, before) {
		t.Fatal("replay changed the key space")
	}
}
