package kvfsm

import (
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"strings"
	"testing"

	"github.com/dgraph-io/badger/v4"
	"github.com/hashicorp/raft"
	"google.golang.org/protobuf/proto"

	"github.com/parley-chat/parley/core/internal/cmdpb"
	"github.com/parley-chat/parley/syncproto/syncpb"
)

// openDB opens a real Badger in a temp dir; memTable sets its batch limits.
func openDB(t testing.TB, dir string, memTable int64) *badger.DB {
	t.Helper()
	if dir == "" {
		dir = t.TempDir()
	}
	opts := badger.DefaultOptions(dir).WithLogger(nil).WithMemTableSize(memTable).WithValueThreshold(min(1<<20, memTable/16)).
		WithBlockCacheSize(1 << 20).WithIndexCacheSize(1 << 20).WithNumCompactors(2)
	db, err := badger.Open(opts)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { db.Close() })
	return db
}

// counterApply is a small state machine: a send sets k/<conv> to the body
// and bumps a counter n; client_msg_id "reject" writes and then rejects,
// "fail" reports a storage failure, "del" deletes k/<conv> instead, and
// "scan" returns the keys under k/ (newest first) in the ack's msg_id.
func counterApply(tx *Tx, index uint64, cmd *cmdpb.Command) (*syncpb.CoreResponse, error) {
	s := cmd.GetSend()
	if s == nil {
		return errorResponse(syncpb.Code_CODE_INVALID_ARGUMENT, "not a send"), nil
	}
	if s.ClientMsgId == "del" {
		tx.Delete([]byte("k/" + s.ConvId))
	} else {
		tx.Set([]byte("k/"+s.ConvId), s.Body)
	}
	switch s.ClientMsgId {
	case "scan":
		var keys []string
		err := tx.Scan([]byte("k/"), nil, true, func(k, v []byte) (bool, error) {
			keys = append(keys, string(k)+"="+string(v))
			return true, nil
		})
		return &syncpb.CoreResponse{Result: &syncpb.CoreResponse_SendAck{SendAck: &syncpb.SendAck{MsgId: strings.Join(keys, " ")}}}, err
	case "reject":
		return errorResponse(syncpb.Code_CODE_NOT_MEMBER, "rejected"), nil
	case "fail":
		return nil, errors.New("disk on fire")
	}
	var n uint64
	if b, ok, err := tx.Get([]byte("n")); err != nil {
		return nil, err
	} else if ok {
		n = binary.BigEndian.Uint64(b)
	}
	n++
	tx.Set([]byte("n"), binary.BigEndian.AppendUint64(nil, n))
	return &syncpb.CoreResponse{Result: &syncpb.CoreResponse_SendAck{SendAck: &syncpb.SendAck{Seq: n}}}, nil
}

func newTestMachine(t testing.TB, db *badger.DB, group string) *Machine {
	t.Helper()
	m, err := New(db, Config{Group: group, Apply: counterApply, Logger: slog.New(slog.NewTextHandler(io.Discard, nil))})
	if err != nil {
		t.Fatal(err)
	}
	return m
}

func sendLog(t testing.TB, index uint64, conv, cmid string, body []byte) *raft.Log {
	t.Helper()
	b, err := proto.Marshal(&cmdpb.Command{Op: &cmdpb.Command_Send{Send: &syncpb.SendRequest{ConvId: conv, ClientMsgId: cmid, Body: body}}})
	if err != nil {
		t.Fatal(err)
	}
	return &raft.Log{Index: index, Term: 1, Type: raft.LogCommand, Data: b}
}

func get(t testing.TB, m *Machine, key string) (string, bool) {
	t.Helper()
	var val []byte
	var ok bool
	if err := m.View(func(v *View) error {
		var err error
		val, ok, err = v.Get([]byte(key))
		return err
	}); err != nil {
		t.Fatal(err)
	}
	return string(val), ok
}

func applied(t testing.TB, m *Machine) uint64 {
	t.Helper()
	idx, err := m.AppliedIndex()
	if err != nil {
		t.Fatal(err)
	}
	return idx
}

// dump returns the group's whole key space, for comparisons.
func dump(t testing.TB, m *Machine) []string {
	t.Helper()
	var out []string
	if err := m.View(func(v *View) error {
		return v.Scan(nil, nil, false, func(k, val []byte) (bool, error) {
			out = append(out, fmt.Sprintf("%q=%x", k, val))
			return true, nil
		})
	}); err != nil {
		t.Fatal(err)
	}
	return out
}

func code(r any) syncpb.Code {
	resp, _ := r.(*syncpb.CoreResponse)
	return resp.GetError().GetCode()
}

func TestConfigValidate(t *testing.T) {
	for _, c := range []Config{{}, {Group: "a/b", Apply: counterApply}, {Group: "s0"}} {
		if err := c.Validate(); err == nil {
			t.Errorf("%+v: want error", c)
		}
	}
}

func TestApplyRules(t *testing.T) {
	db := openDB(t, "", 16<<20)
	m := newTestMachine(t, db, "s0")
	if got := applied(t, m); got != 0 {
		t.Fatalf("fresh applied = %d", got)
	}
	tests := []struct {
		name     string
		log      *raft.Log
		wantCode syncpb.Code
		wantNil  bool
		wantIdx  uint64
		key, val string
		present  bool
	}{
		{name: "command", log: sendLog(t, 1, "a", "x", []byte("1")), wantIdx: 1, key: "k/a", val: "1", present: true},
		{name: "configuration entry advances index", log: &raft.Log{Index: 2, Type: raft.LogConfiguration, Data: []byte{1}}, wantNil: true, wantIdx: 2, key: "n", val: "\x00\x00\x00\x00\x00\x00\x00\x01", present: true},
		{name: "malformed data is rejected", log: &raft.Log{Index: 3, Type: raft.LogCommand, Data: []byte{0xff, 0xff}}, wantCode: syncpb.Code_CODE_MALFORMED, wantIdx: 3},
		{name: "rejection discards writes", log: sendLog(t, 4, "b", "reject", []byte("2")), wantCode: syncpb.Code_CODE_NOT_MEMBER, wantIdx: 4, key: "k/b"},
		{name: "replayed index is skipped", log: sendLog(t, 4, "c", "x", []byte("3")), wantCode: syncpb.Code_CODE_UNAVAILABLE, wantIdx: 4, key: "k/c"},
		{name: "older index is skipped", log: sendLog(t, 1, "a", "x", []byte("9")), wantCode: syncpb.Code_CODE_UNAVAILABLE, wantIdx: 4, key: "k/a", val: "1", present: true},
		{name: "next command", log: sendLog(t, 5, "a", "x", []byte("5")), wantIdx: 5, key: "k/a", val: "5", present: true},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			r := m.Apply(tc.log)
			if tc.wantNil {
				if r != nil {
					t.Fatalf("result %v, want nil", r)
				}
			} else if c := code(r); c != tc.wantCode {
				t.Fatalf("code %v, want %v", c, tc.wantCode)
			}
			if got := applied(t, m); got != tc.wantIdx {
				t.Fatalf("applied %d, want %d", got, tc.wantIdx)
			}
			if tc.key != "" {
				v, ok := get(t, m, tc.key)
				if ok != tc.present || v != tc.val {
					t.Fatalf("%s = %q,%v; want %q,%v", tc.key, v, ok, tc.val, tc.present)
				}
			}
		})
	}
}

func TestApplyBatchSeesEarlierEntries(t *testing.T) {
	db := openDB(t, "", 16<<20)
	m := newTestMachine(t, db, "s0")
	var logs []*raft.Log
	for i := uint64(1); i <= 10; i++ {
		cmid := "x"
		if i == 5 {
			cmid = "reject"
		}
		logs = append(logs, sendLog(t, i, fmt.Sprint(i), cmid, []byte("v")))
	}
	out := m.ApplyBatch(logs)
	for i, r := range out {
		resp := r.(*syncpb.CoreResponse)
		want := uint64(i + 1)
		if i >= 4 {
			want = uint64(i)
		}
		if i == 4 {
			if code(r) != syncpb.Code_CODE_NOT_MEMBER {
				t.Fatalf("entry 5: %v", resp)
			}
			continue
		}
		if resp.GetSendAck().GetSeq() != want {
			t.Fatalf("entry %d: seq %d, want %d", i+1, resp.GetSendAck().GetSeq(), want)
		}
	}
	if got := applied(t, m); got != 10 {
		t.Fatalf("applied %d", got)
	}
	if _, ok := get(t, m, "k/5"); ok {
		t.Fatal("rejected entry's write is visible")
	}
}

// A batch larger than one Badger transaction is split between entries and
// ends with everything applied.
func TestApplyBatchSplitsLargeBatches(t *testing.T) {
	db := openDB(t, "", 1<<20) // about 157 KB per transaction
	m := newTestMachine(t, db, "s0")
	body := bytes.Repeat([]byte("b"), 10<<10)
	var logs []*raft.Log
	for i := uint64(1); i <= 64; i++ {
		logs = append(logs, sendLog(t, i, fmt.Sprint(i), "x", body))
	}
	for i, r := range m.ApplyBatch(logs) {
		if c := code(r); c != syncpb.Code_CODE_OK {
			t.Fatalf("entry %d: code %v", i+1, c)
		}
	}
	if got := applied(t, m); got != 64 {
		t.Fatalf("applied %d", got)
	}
	for i := 1; i <= 64; i++ {
		if v, ok := get(t, m, fmt.Sprintf("k/%d", i)); !ok || len(v) != len(body) {
			t.Fatalf("k/%d missing", i)
		}
	}
	if v, _ := get(t, m, "n"); binary.BigEndian.Uint64([]byte(v)) != 64 {
		t.Fatalf("counter %x", v)
	}
}

func TestApplyRejectsEntryLargerThanATransaction(t *testing.T) {
	db := openDB(t, "", 1<<20)
	m := newTestMachine(t, db, "s0")
	out := m.ApplyBatch([]*raft.Log{
		sendLog(t, 1, "a", "x", []byte("1")),
		sendLog(t, 2, "big", "x", make([]byte, db.MaxBatchSize())),
		sendLog(t, 3, "b", "x", []byte("3")),
	})
	if code(out[1]) != syncpb.Code_CODE_TOO_LARGE {
		t.Fatalf("big entry: %v", out[1])
	}
	if out[2].(*syncpb.CoreResponse).GetSendAck().GetSeq() != 2 {
		t.Fatalf("entry after the big one: %v", out[2])
	}
	if _, ok := get(t, m, "k/big"); ok {
		t.Fatal("big entry written")
	}
	if got := applied(t, m); got != 3 {
		t.Fatalf("applied %d", got)
	}
}

func TestStorageFailureIsSticky(t *testing.T) {
	db := openDB(t, "", 16<<20)
	m := newTestMachine(t, db, "s0")
	out := m.ApplyBatch([]*raft.Log{sendLog(t, 1, "a", "x", nil), sendLog(t, 2, "b", "fail", nil)})
	if code(out[0]) != syncpb.Code_CODE_UNAVAILABLE || code(out[1]) != syncpb.Code_CODE_UNAVAILABLE {
		t.Fatalf("results %v", out)
	}
	if code(m.Apply(sendLog(t, 3, "c", "x", nil))) != syncpb.Code_CODE_UNAVAILABLE {
		t.Fatal("apply after failure accepted")
	}
	if _, err := m.AppliedIndex(); !errors.Is(err, ErrFailed) {
		t.Fatalf("AppliedIndex: %v", err)
	}
	if _, err := m.Snapshot(); !errors.Is(err, ErrFailed) {
		t.Fatalf("Snapshot: %v", err)
	}
	// A fresh machine on the same DB (a restart) resumes from the log.
	m2 := newTestMachine(t, db, "s0")
	if got := applied(t, m2); got != 0 {
		t.Fatalf("applied after failure %d", got)
	}
}

func TestAppliedIndexSurvivesReopen(t *testing.T) {
	dir := t.TempDir()
	opts := badger.DefaultOptions(dir).WithLogger(nil).WithMemTableSize(8 << 20)
	db, err := badger.Open(opts)
	if err != nil {
		t.Fatal(err)
	}
	m := newTestMachine(t, db, "s0")
	m.ApplyBatch([]*raft.Log{sendLog(t, 1, "a", "x", nil), sendLog(t, 2, "b", "x", nil)})
	if err := db.Close(); err != nil {
		t.Fatal(err)
	}
	db = openDB(t, dir, 8<<20)
	m = newTestMachine(t, db, "s0")
	if got := applied(t, m); got != 2 {
		t.Fatalf("applied after reopen %d", got)
	}
	// The replay raft does after a restart changes nothing.
	before := dump(t, m)
	m.ApplyBatch([]*raft.Log{sendLog(t, 1, "a", "x", []byte("other")), sendLog(t, 2, "b", "x", []byte("other"))})
	if after := dump(t, m); strings.Join(after, "\n") != strings.Join(before, "\n") {
		t.Fatalf("replay changed state:\n%v\n%v", before, after)
	}
}

func TestGroupsAreIsolated(t *testing.T) {
	db := openDB(t, "", 16<<20)
	a := newTestMachine(t, db, "s1")
	b := newTestMachine(t, db, "s10")
	a.Apply(sendLog(t, 1, "a", "x", []byte("A")))
	b.Apply(sendLog(t, 7, "a", "x", []byte("B")))
	if v, _ := get(t, a, "k/a"); v != "A" {
		t.Fatalf("s1 sees %q", v)
	}
	if applied(t, a) != 1 || applied(t, b) != 7 {
		t.Fatal("applied indexes mixed")
	}
	if len(dump(t, a)) != 3 {
		t.Fatalf("s1 key space: %v", dump(t, a))
	}
}

func TestScan(t *testing.T) {
	db := openDB(t, "", 16<<20)
	m := newTestMachine(t, db, "s0")
	var logs []*raft.Log
	for i, conv := range []string{"a/1", "a/2", "a/3", "a0", "b/1"} {
		logs = append(logs, sendLog(t, uint64(i+1), conv, "x", nil))
	}
	m.ApplyBatch(logs)
	scan := func(prefix, seek string, reverse bool, limit int) string {
		var got []string
		var s []byte
		if seek != "" {
			s = []byte(seek)
		}
		err := m.View(func(v *View) error {
			return v.Scan([]byte(prefix), s, reverse, func(k, _ []byte) (bool, error) {
				got = append(got, string(k))
				return len(got) < limit, nil
			})
		})
		if err != nil {
			t.Fatal(err)
		}
		return strings.Join(got, " ")
	}
	tests := []struct {
		prefix, seek string
		reverse      bool
		limit        int
		want         string
	}{
		{"k/a/", "", false, 10, "k/a/1 k/a/2 k/a/3"},
		{"k/a/", "", true, 10, "k/a/3 k/a/2 k/a/1"},
		{"k/a/", "k/a/2", false, 10, "k/a/2 k/a/3"},
		{"k/a/", "k/a/2", true, 10, "k/a/2 k/a/1"},
		{"k/a/", "k/a/25", true, 10, "k/a/2 k/a/1"},
		{"k/a/", "", true, 2, "k/a/3 k/a/2"},
		{"k/", "", false, 10, "k/a/1 k/a/2 k/a/3 k/a0 k/b/1"},
		{"k/c/", "", true, 10, ""},
		{"k/a", "", true, 10, "k/a0 k/a/3 k/a/2 k/a/1"},
	}
	for _, tc := range tests {
		if got := scan(tc.prefix, tc.seek, tc.reverse, tc.limit); got != tc.want {
			t.Errorf("Scan(%q, %q, %v) = %q, want %q", tc.prefix, tc.seek, tc.reverse, got, tc.want)
		}
	}
}

// Tx.Scan sees the DB, the batch's earlier entries and the entry's own
// writes, deletes included.
func TestTxScanMergesPendingWrites(t *testing.T) {
	db := openDB(t, "", 16<<20)
	m := newTestMachine(t, db, "s0")
	m.ApplyBatch([]*raft.Log{sendLog(t, 1, "a", "x", []byte("1")), sendLog(t, 2, "d", "x", []byte("1"))})
	out := m.ApplyBatch([]*raft.Log{
		sendLog(t, 3, "b", "x", []byte("2")),
		sendLog(t, 4, "a", "del", nil),
		sendLog(t, 5, "d", "x", []byte("3")),
		sendLog(t, 6, "c", "scan", []byte("4")),
	})
	if got, want := out[3].(*syncpb.CoreResponse).GetSendAck().GetMsgId(), "k/d=3 k/c=4 k/b=2"; got != want {
		t.Fatalf("scan saw %q, want %q", got, want)
	}
}

// When Badger counts a transaction larger than estimated, the batch is
// committed in smaller pieces, still split between entries.
func TestApplyBatchFallsBackWhenBadgerCountsMore(t *testing.T) {
	db := openDB(t, "", 1<<20)
	m := newTestMachine(t, db, "s0")
	m.maxSize *= 4 // the estimate now lets too much into one transaction
	body := bytes.Repeat([]byte("b"), 10<<10)
	var logs []*raft.Log
	for i := uint64(1); i <= 40; i++ {
		logs = append(logs, sendLog(t, i, fmt.Sprint(i), "x", body))
	}
	for i, r := range m.ApplyBatch(logs) {
		if c := code(r); c != syncpb.Code_CODE_OK {
			t.Fatalf("entry %d: code %v", i+1, c)
		}
	}
	if m.Err() != nil || applied(t, m) != 40 {
		t.Fatalf("err %v, applied %d", m.Err(), applied(t, m))
	}
	if v, _ := get(t, m, "n"); binary.BigEndian.Uint64([]byte(v)) != 40 {
		t.Fatalf("counter %x", v)
	}
}
