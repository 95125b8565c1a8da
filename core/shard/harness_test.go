package shard

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"log/slog"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/dgraph-io/badger/v4"
	"github.com/hashicorp/raft"
	"google.golang.org/protobuf/proto"

	"github.com/parley-chat/parley/core/internal/cmdpb"
	"github.com/parley-chat/parley/crdt"
	"github.com/parley-chat/parley/syncproto"
	"github.com/parley-chat/parley/syncproto/syncpb"
)

const (
	wsA   = "w_acme"
	wsB   = "w_other"
	group = "s0"
)

// fakeDir is a Directory over a fixed user table.
type fakeDir struct {
	mu    sync.Mutex
	users map[string]*syncpb.User
	calls int
	err   error
}

func newFakeDir() *fakeDir {
	d := &fakeDir{users: map[string]*syncpb.User{}}
	for _, u := range []string{"ana", "bo", "cy", "di", "ed"} {
		d.add(wsA, "u_"+u)
	}
	d.add(wsB, "u_zed")
	return d
}

func (d *fakeDir) add(ws, id string) {
	d.mu.Lock()
	defer d.mu.Unlock()
	d.users[id] = &syncpb.User{Id: id, WorkspaceId: ws, Username: id[2:]}
}

func (d *fakeDir) LookupUsers(_ context.Context, ws string, ids []string) ([]*syncpb.User, error) {
	d.mu.Lock()
	defer d.mu.Unlock()
	d.calls++
	if d.err != nil {
		return nil, d.err
	}
	var out []*syncpb.User
	for _, id := range ids {
		if u, ok := d.users[id]; ok && u.WorkspaceId == ws {
			out = append(out, u)
		}
	}
	return out, nil
}

func caller(user string) *syncpb.Caller {
	ws := wsA
	if user == "zed" {
		ws = wsB
	}
	return &syncpb.Caller{WorkspaceId: ws, UserId: "u_" + user, DeviceId: "d_" + user + "1"}
}

func openDB(t testing.TB, memTable int64) *badger.DB {
	t.Helper()
	opts := badger.DefaultOptions(t.TempDir()).WithLogger(nil).WithMemTableSize(memTable).
		WithValueThreshold(min(1<<20, memTable/16)).WithBlockCacheSize(1 << 20).WithIndexCacheSize(1 << 20).
		WithNumCompactors(2)
	db, err := badger.Open(opts)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { db.Close() })
	return db
}

func testLogger(t testing.TB) *slog.Logger {
	return slog.New(slog.NewTextHandler(io.Discard, nil))
}

func newFSM(t testing.TB, db *badger.DB, dir Directory) *FSM {
	t.Helper()
	return newFSMReads(t, db, dir, nil)
}

func newFSMReads(t testing.TB, db *badger.DB, dir Directory, reads ReadPositions) *FSM {
	t.Helper()
	f, err := New(db, Config{Group: group, Directory: dir, Reads: reads, Logger: testLogger(t)})
	if err != nil {
		t.Fatal(err)
	}
	return f
}

// harness drives a leader FSM: Prepare, then Apply of the proposed command
// at the next index, recording the log for replicas.
type harness struct {
	t     testing.TB
	f     *FSM
	db    *badger.DB
	dir   *fakeDir
	index uint64
	now   time.Time
	logs  []*raft.Log
	stats map[string]int // applied results by kind
	reads *mapReads
}

// mapReads stands in for core/receipts: read positions by conv/user, set by
// receipt requests the harness checks with CheckReceipt.
type mapReads struct {
	mu sync.Mutex
	m  map[string]uint64
}

func (r *mapReads) Reported(conv, user string) (crdt.Marks, error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	return crdt.Marks{Read: crdt.Register{Value: r.m[conv+"/"+user]}}, nil
}

func (r *mapReads) raise(conv, user string, seq uint64) uint64 {
	r.mu.Lock()
	defer r.mu.Unlock()
	k := conv + "/" + user
	r.m[k] = max(r.m[k], seq)
	return r.m[k]
}

func newHarness(t testing.TB) *harness {
	t.Helper()
	return newHarnessDB(t, 16<<20)
}

func newHarnessDB(t testing.TB, memTable int64) *harness {
	t.Helper()
	db := openDB(t, memTable)
	dir := newFakeDir()
	reads := &mapReads{m: map[string]uint64{}}
	return &harness{t: t, f: newFSMReads(t, db, dir, reads), db: db, dir: dir, now: time.UnixMilli(1_700_000_000_000), reads: reads}
}

func errResp(err error) *syncpb.CoreResponse {
	return &syncpb.CoreResponse{Error: syncproto.AsError(err).Proto()}
}

// prepare runs Prepare; it returns either a proposal or a response.
func (h *harness) prepare(c *syncpb.Caller, req *syncpb.CoreRequest) (*cmdpb.Command, *syncpb.CoreResponse) {
	h.t.Helper()
	req.Caller = c
	if r := req.GetReceipt(); r != nil {
		// What the node does: check with the shard, merge elsewhere.
		if c.DeviceId == "" {
			c.DeviceId = "d_test"
		}
		if _, err := h.f.CheckReceipt(c, r); err != nil {
			return nil, errResp(err)
		}
		seq := r.Seq
		if r.Type == syncpb.ReceiptType_RECEIPT_TYPE_READ {
			seq = h.reads.raise(r.ConvId, c.UserId, r.Seq)
		}
		return nil, &syncpb.CoreResponse{Result: &syncpb.CoreResponse_ReceiptAck{ReceiptAck: &syncpb.ReceiptAck{ConvId: r.ConvId, Type: r.Type, Seq: seq}}}
	}
	cmd, resp, err := h.f.Prepare(context.Background(), req, h.now)
	if err != nil {
		if cmd != nil || resp != nil {
			h.t.Fatalf("Prepare returned both an error and a result")
		}
		return nil, errResp(err)
	}
	if (cmd == nil) == (resp == nil) {
		h.t.Fatalf("Prepare returned cmd %v and resp %v", cmd, resp)
	}
	return cmd, resp
}

// propose appends cmd to the log and applies it.
func (h *harness) propose(cmd *cmdpb.Command) *syncpb.CoreResponse {
	h.t.Helper()
	data, err := proto.Marshal(cmd)
	if err != nil {
		h.t.Fatal(err)
	}
	h.index++
	l := &raft.Log{Index: h.index, Term: 1, Type: raft.LogCommand, Data: data}
	h.logs = append(h.logs, l)
	r, ok := h.f.Apply(l).(*syncpb.CoreResponse)
	if !ok {
		h.t.Fatalf("Apply returned %T", r)
	}
	kind := fmt.Sprintf("%T", r.GetResult())
	if r.GetError() != nil {
		kind = syncproto.CodeName(r.GetError().GetCode())
	} else if r.GetSendAck().GetDuplicate() {
		kind = "duplicate"
	}
	if h.stats == nil {
		h.stats = map[string]int{}
	}
	h.stats[strings.TrimPrefix(kind, "*syncpb.CoreResponse_")]++
	return r
}

// do runs a request as the node would.
func (h *harness) do(c *syncpb.Caller, req *syncpb.CoreRequest) *syncpb.CoreResponse {
	h.t.Helper()
	cmd, resp := h.prepare(c, req)
	if resp != nil {
		return resp
	}
	return h.propose(cmd)
}

func (h *harness) tick(d time.Duration) { h.now = h.now.Add(d) }

func createReq(conv string, typ syncpb.ConversationType, title string, members ...string) *syncpb.CoreRequest {
	var ids []string
	for _, m := range members {
		ids = append(ids, "u_"+m)
	}
	return &syncpb.CoreRequest{Op: &syncpb.CoreRequest_CreateConversation{CreateConversation: &syncpb.CreateConversationRequest{
		ConvId: conv, Type: typ, Title: title, MemberUserIds: ids}}}
}

func groupReq(conv string, members ...string) *syncpb.CoreRequest {
	return createReq(conv, syncpb.ConversationType_CONVERSATION_TYPE_GROUP, "team", members...)
}

func directID(a, b string) string {
	return syncproto.DirectConversationID(wsA, "u_"+a, "u_"+b)
}

func getReq(conv string) *syncpb.CoreRequest {
	return &syncpb.CoreRequest{Op: &syncpb.CoreRequest_GetConversation{GetConversation: &syncpb.GetConversationRequest{ConvId: conv}}}
}

func listReq(limit uint32) *syncpb.CoreRequest {
	return &syncpb.CoreRequest{Op: &syncpb.CoreRequest_ListConversations{ListConversations: &syncpb.ListConversationsRequest{Limit: limit}}}
}

func sendReq(conv, cmid, body string) *syncpb.CoreRequest {
	return &syncpb.CoreRequest{Op: &syncpb.CoreRequest_Send{Send: &syncpb.SendRequest{ConvId: conv, ClientMsgId: cmid, Body: []byte(body)}}}
}

func historyReq(conv string, cursor uint64, limit uint32, dir syncpb.Direction) *syncpb.CoreRequest {
	return &syncpb.CoreRequest{Op: &syncpb.CoreRequest_History{History: &syncpb.HistoryRequest{ConvId: conv, Cursor: cursor, Limit: limit, Direction: dir}}}
}

func receiptReq(conv string, seq uint64, typ syncpb.ReceiptType) *syncpb.CoreRequest {
	return &syncpb.CoreRequest{Op: &syncpb.CoreRequest_Receipt{Receipt: &syncpb.ReceiptReport{ConvId: conv, Seq: seq, Type: typ}}}
}

type change struct {
	add, remove []string
	roles       map[string]syncpb.Role
	leave       bool
}

func changeReq(conv string, c change) *syncpb.CoreRequest {
	r := &syncpb.ChangeMembersRequest{ConvId: conv, Leave: c.leave}
	for _, u := range c.add {
		r.AddUserIds = append(r.AddUserIds, "u_"+u)
	}
	for _, u := range c.remove {
		r.RemoveUserIds = append(r.RemoveUserIds, "u_"+u)
	}
	if c.roles != nil {
		r.SetRoles = map[string]syncpb.Role{}
		for u, role := range c.roles {
			r.SetRoles["u_"+u] = role
		}
	}
	return &syncpb.CoreRequest{Op: &syncpb.CoreRequest_ChangeMembers{ChangeMembers: r}}
}

// mustOK fails unless resp has no error.
func mustOK(t testing.TB, resp *syncpb.CoreResponse) *syncpb.CoreResponse {
	t.Helper()
	if resp.GetError() != nil {
		t.Fatalf("unexpected error %v", resp.GetError())
	}
	return resp
}

func wantCode(t testing.TB, resp *syncpb.CoreResponse, code syncpb.Code) {
	t.Helper()
	if got := resp.GetError().GetCode(); got != code {
		t.Fatalf("code %v (%s), want %v", got, resp.GetError().GetMessage(), code)
	}
}

// dumpGroup returns every key and value under f/<group>/ of db.
func dumpGroup(t testing.TB, db *badger.DB, g string) []byte {
	t.Helper()
	var buf bytes.Buffer
	prefix := []byte("f/" + g + "/")
	err := db.View(func(txn *badger.Txn) error {
		opts := badger.DefaultIteratorOptions
		opts.Prefix = prefix
		it := txn.NewIterator(opts)
		defer it.Close()
		for it.Rewind(); it.Valid(); it.Next() {
			v, err := it.Item().ValueCopy(nil)
			if err != nil {
				return err
			}
			fmt.Fprintf(&buf, "%q=%x\n", it.Item().Key(), v)
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	return buf.Bytes()
}

func memberRoles(c *syncpb.Conversation) map[string]syncpb.Role {
	out := map[string]syncpb.Role{}
	for _, m := range c.GetMembers() {
		out[m.UserId[2:]] = m.Role
	}
	return out
}
