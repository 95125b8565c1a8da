package directory

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"log/slog"
	"math/rand/v2"
	"strings"
	"testing"
	"time"

	"github.com/dgraph-io/badger/v4"
	"github.com/hashicorp/raft"
	"google.golang.org/protobuf/proto"

	"github.com/parley-chat/parley/core/internal/cmdpb"
	"github.com/parley-chat/parley/syncproto"
	"github.com/parley-chat/parley/syncproto/syncpb"
)

const group = "dir"

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

func newFSM(t testing.TB, db *badger.DB) *FSM {
	t.Helper()
	f, err := New(db, Config{Group: group, Logger: slog.New(slog.NewTextHandler(io.Discard, nil))})
	if err != nil {
		t.Fatal(err)
	}
	return f
}

// harness drives a leader FSM: Prepare, then Apply at the next index.
type harness struct {
	t     testing.TB
	f     *FSM
	db    *badger.DB
	index uint64
	now   time.Time
	logs  []*raft.Log
}

func newHarness(t testing.TB) *harness {
	t.Helper()
	db := openDB(t, 16<<20)
	return &harness{t: t, f: newFSM(t, db), db: db, now: time.UnixMilli(1_700_000_000_000)}
}

func (h *harness) prepare(c *syncpb.Caller, req *syncpb.CoreRequest) (*cmdpb.Command, *syncpb.CoreResponse) {
	h.t.Helper()
	req.Caller = c
	cmd, resp, err := h.f.Prepare(context.Background(), req, h.now)
	if err != nil {
		if cmd != nil || resp != nil {
			h.t.Fatal("Prepare returned both an error and a result")
		}
		return nil, &syncpb.CoreResponse{Error: syncproto.AsError(err).Proto()}
	}
	if (cmd == nil) == (resp == nil) {
		h.t.Fatalf("Prepare returned cmd %v and resp %v", cmd, resp)
	}
	return cmd, resp
}

func (h *harness) propose(cmd *cmdpb.Command) *syncpb.CoreResponse {
	h.t.Helper()
	data, err := proto.Marshal(cmd)
	if err != nil {
		h.t.Fatal(err)
	}
	h.index++
	l := &raft.Log{Index: h.index, Term: 1, Type: raft.LogCommand, Data: data}
	h.logs = append(h.logs, l)
	return h.f.Apply(l).(*syncpb.CoreResponse)
}

func (h *harness) do(c *syncpb.Caller, req *syncpb.CoreRequest) *syncpb.CoreResponse {
	h.t.Helper()
	cmd, resp := h.prepare(c, req)
	if resp != nil {
		return resp
	}
	return h.propose(cmd)
}

func register(ws, user, hash string) *syncpb.CoreRequest {
	return &syncpb.CoreRequest{Op: &syncpb.CoreRequest_RegisterUser{RegisterUser: &syncpb.RegisterUserRequest{
		WorkspaceName: ws, Username: user, DisplayName: strings.ToUpper(user), PasswordHash: hash}}}
}

func credentials(ws, user string) *syncpb.CoreRequest {
	return &syncpb.CoreRequest{Op: &syncpb.CoreRequest_GetCredentials{GetCredentials: &syncpb.GetCredentialsRequest{WorkspaceName: ws, Username: user}}}
}

func lookup(ids, names []string) *syncpb.CoreRequest {
	return &syncpb.CoreRequest{Op: &syncpb.CoreRequest_LookupUsers{LookupUsers: &syncpb.LookupUsersRequest{UserIds: ids, Usernames: names}}}
}

func registerDevice(name string) *syncpb.CoreRequest {
	return &syncpb.CoreRequest{Op: &syncpb.CoreRequest_RegisterDevice{RegisterDevice: &syncpb.RegisterDeviceRequest{Name: name, Platform: "ios"}}}
}

func getDeviceReq(id string) *syncpb.CoreRequest {
	return &syncpb.CoreRequest{Op: &syncpb.CoreRequest_GetDevice{GetDevice: &syncpb.GetDeviceRequest{DeviceId: id}}}
}

func revoke(id string) *syncpb.CoreRequest {
	return &syncpb.CoreRequest{Op: &syncpb.CoreRequest_RevokeDevice{RevokeDevice: &syncpb.RevokeDeviceRequest{DeviceId: id}}}
}

var listDevices = &syncpb.CoreRequest{Op: &syncpb.CoreRequest_ListDevices{ListDevices: &syncpb.ListDevicesRequest{}}}

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

func callerOf(u *syncpb.User) *syncpb.Caller {
	return &syncpb.Caller{WorkspaceId: u.WorkspaceId, UserId: u.Id}
}

const hash = "$argon2id$v=19$m=65536,t=1,p=4$c2FsdA$aGFzaA"

func TestConfigValidate(t *testing.T) {
	if _, err := New(openDB(t, 8<<20), Config{}); err == nil {
		t.Fatal("missing group accepted")
	}
}

func TestRegisterUser(t *testing.T) {
	h := newHarness(t)
	ana := mustOK(t, h.do(nil, register("acme", "ana", hash))).GetUser()
	tests := []struct {
		name            string
		req             *syncpb.CoreRequest
		code            syncpb.Code
		role, username  string
		sameWS, sameAna bool
	}{
		{name: "second user joins as member", req: register("ACME", "bo", hash), role: RoleMember, username: "bo", sameWS: true},
		{name: "username taken, any case", req: register("acme", "ANA", "$other"), code: syncpb.Code_CODE_CONFLICT},
		{name: "retry with the same hash returns the user", req: register("Acme", "Ana", hash), role: RoleOwner, username: "ana", sameWS: true, sameAna: true},
		{name: "same username in another workspace", req: register("globex", "ana", hash), role: RoleOwner, username: "ana"},
		{name: "dots, dashes, underscores", req: register("acme", "a.b-c_d9", hash), role: RoleMember, username: "a.b-c_d9", sameWS: true},
		{name: "longest name", req: register("acme", strings.Repeat("n", syncproto.MaxNameLen), hash), role: RoleMember, username: strings.Repeat("n", syncproto.MaxNameLen), sameWS: true},
		{name: "name too long", req: register("acme", strings.Repeat("n", syncproto.MaxNameLen+1), hash), code: syncpb.Code_CODE_INVALID_ARGUMENT},
		{name: "empty username", req: register("acme", "", hash), code: syncpb.Code_CODE_INVALID_ARGUMENT},
		{name: "empty workspace", req: register("", "cy", hash), code: syncpb.Code_CODE_INVALID_ARGUMENT},
		{name: "space", req: register("acme", "c y", hash), code: syncpb.Code_CODE_INVALID_ARGUMENT},
		{name: "slash", req: register("ac/me", "cy", hash), code: syncpb.Code_CODE_INVALID_ARGUMENT},
		{name: "leading dot", req: register("acme", ".cy", hash), code: syncpb.Code_CODE_INVALID_ARGUMENT},
		{name: "non-ASCII", req: register("acme", "zoë", hash), code: syncpb.Code_CODE_INVALID_ARGUMENT},
		{name: "Kelvin sign is not k", req: register("acme", "\u212a", hash), code: syncpb.Code_CODE_INVALID_ARGUMENT},
		{name: "no hash", req: register("acme", "cy", ""), code: syncpb.Code_CODE_INVALID_ARGUMENT},
		{name: "hash not PHC", req: register("acme", "cy", "hunter2"), code: syncpb.Code_CODE_INVALID_ARGUMENT},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			resp := h.do(nil, tc.req)
			wantCode(t, resp, tc.code)
			if tc.code != syncpb.Code_CODE_OK {
				return
			}
			u := resp.GetUser()
			if u.WorkspaceRole != tc.role || u.Username != tc.username || !strings.HasPrefix(u.Id, syncproto.PrefixUser) ||
				(u.WorkspaceId == ana.WorkspaceId) != tc.sameWS || (u.Id == ana.Id) != tc.sameAna {
				t.Fatalf("user %v", u)
			}
			if u.DisplayName != strings.ToUpper(tc.req.GetRegisterUser().Username) {
				t.Fatalf("display name %q", u.DisplayName)
			}
		})
	}
	t.Run("display name defaults to the username", func(t *testing.T) {
		req := register("acme", "dee", hash)
		req.GetRegisterUser().DisplayName = ""
		if u := mustOK(t, h.do(nil, req)).GetUser(); u.DisplayName != "dee" {
			t.Fatalf("display name %q", u.DisplayName)
		}
	})
	t.Run("display name with a control character", func(t *testing.T) {
		req := register("acme", "eve", hash)
		req.GetRegisterUser().DisplayName = "Eve\x07"
		wantCode(t, h.do(nil, req), syncpb.Code_CODE_INVALID_ARGUMENT)
	})
}

// Registrations racing to the leader: both pass Prepare, Apply decides.
func TestRegistrationRaces(t *testing.T) {
	h := newHarness(t)
	a, _ := h.prepare(nil, register("acme", "ana", hash))
	b, _ := h.prepare(nil, register("acme", "bo", hash))
	a2, _ := h.prepare(nil, register("acme", "ana", hash))
	c, _ := h.prepare(nil, register("acme", "ana", "$different"))
	if a.NewWorkspaceId == "" || b.NewWorkspaceId == "" || a.NewWorkspaceId == b.NewWorkspaceId {
		t.Fatal("each proposal for a new workspace carries its own id")
	}
	ana := mustOK(t, h.propose(a)).GetUser()
	bo := mustOK(t, h.propose(b)).GetUser()
	if ana.WorkspaceRole != RoleOwner || bo.WorkspaceRole != RoleMember || bo.WorkspaceId != ana.WorkspaceId {
		t.Fatalf("ana %v, bo %v", ana, bo)
	}
	if again := mustOK(t, h.propose(a2)).GetUser(); again.Id != ana.Id {
		t.Fatalf("retry created %v", again)
	}
	wantCode(t, h.propose(c), syncpb.Code_CODE_CONFLICT)
}

func TestApplyChecksGeneratedIDs(t *testing.T) {
	h := newHarness(t)
	cmd, _ := h.prepare(nil, register("acme", "ana", hash))
	for _, bad := range []func(*cmdpb.Command){
		func(c *cmdpb.Command) { c.NewId = "" },
		func(c *cmdpb.Command) { c.NewId = "d_" + c.NewId[2:] },
		func(c *cmdpb.Command) { c.NewWorkspaceId = "" },
	} {
		c := proto.Clone(cmd).(*cmdpb.Command)
		bad(c)
		if h.propose(c).GetError() == nil {
			t.Fatalf("command with bad ids applied: %v", c)
		}
	}
	mustOK(t, h.propose(cmd))
	// Another user with the same generated id is refused.
	dup, _ := h.prepare(nil, register("acme", "bo", hash))
	dup.NewId = cmd.NewId
	wantCode(t, h.propose(dup), syncpb.Code_CODE_INTERNAL)
}

func TestGetCredentials(t *testing.T) {
	h := newHarness(t)
	ana := mustOK(t, h.do(nil, register("acme", "ana", hash))).GetUser()
	tests := []struct {
		name, ws, user string
		code           syncpb.Code
	}{
		{"exact", "acme", "ana", syncpb.Code_CODE_OK},
		{"any case", "ACME", "Ana", syncpb.Code_CODE_OK},
		{"unknown user", "acme", "bo", syncpb.Code_CODE_NOT_FOUND},
		{"unknown workspace", "globex", "ana", syncpb.Code_CODE_NOT_FOUND},
		{"impossible name", "acme", "a b", syncpb.Code_CODE_NOT_FOUND},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			resp := h.do(nil, credentials(tc.ws, tc.user))
			wantCode(t, resp, tc.code)
			if tc.code == syncpb.Code_CODE_OK {
				c := resp.GetCredentials()
				if c.PasswordHash != hash || !proto.Equal(c.User, ana) {
					t.Fatalf("credentials %v", c)
				}
			}
		})
	}
}

func TestLookupUsers(t *testing.T) {
	h := newHarness(t)
	ana := mustOK(t, h.do(nil, register("acme", "ana", hash))).GetUser()
	bo := mustOK(t, h.do(nil, register("acme", "bo", hash))).GetUser()
	zed := mustOK(t, h.do(nil, register("globex", "zed", hash))).GetUser()
	ids := func(r *syncpb.CoreResponse) string {
		var out []string
		for _, u := range mustOK(t, r).GetUsers().GetUsers() {
			out = append(out, u.Username)
		}
		return strings.Join(out, " ")
	}
	wsOnly := &syncpb.Caller{WorkspaceId: ana.WorkspaceId}
	tests := []struct {
		name   string
		caller *syncpb.Caller
		ids    []string
		names  []string
		want   string
		code   syncpb.Code
	}{
		{name: "by id, in order", caller: callerOf(ana), ids: []string{bo.Id, ana.Id}, want: "bo ana"},
		{name: "by name, any case", caller: callerOf(ana), names: []string{"BO", "ana"}, want: "bo ana"},
		{name: "each user once", caller: callerOf(ana), ids: []string{bo.Id, bo.Id}, names: []string{"bo"}, want: "bo"},
		{name: "other workspace left out", caller: callerOf(ana), ids: []string{zed.Id, bo.Id}, names: []string{"zed"}, want: "bo"},
		{name: "unknown left out", caller: callerOf(ana), ids: []string{"u_nobody"}, names: []string{"nobody", "a b"}, want: ""},
		{name: "workspace-only caller (shards)", caller: wsOnly, ids: []string{ana.Id}, want: "ana"},
		{name: "invalid id", caller: callerOf(ana), ids: []string{"U/1"}, code: syncpb.Code_CODE_INVALID_ARGUMENT},
		{name: "no caller", ids: []string{ana.Id}, code: syncpb.Code_CODE_UNAUTHENTICATED},
		{name: "too many", caller: callerOf(ana), ids: make([]string, syncproto.MaxConversationMembers+1), code: syncpb.Code_CODE_INVALID_ARGUMENT},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			resp := h.do(tc.caller, lookup(tc.ids, tc.names))
			wantCode(t, resp, tc.code)
			if tc.code == syncpb.Code_CODE_OK {
				if got := ids(resp); got != tc.want {
					t.Fatalf("got %q, want %q", got, tc.want)
				}
			}
		})
	}
	users, err := h.f.LookupUsers(ana.WorkspaceId, []string{zed.Id, bo.Id, "u_nobody"})
	if err != nil || len(users) != 1 || users[0].Id != bo.Id {
		t.Fatalf("LookupUsers: %v, %v", users, err)
	}
}

func TestDevices(t *testing.T) {
	h := newHarness(t)
	ana := callerOf(mustOK(t, h.do(nil, register("acme", "ana", hash))).GetUser())
	bo := callerOf(mustOK(t, h.do(nil, register("acme", "bo", hash))).GetUser())
	phone := mustOK(t, h.do(ana, registerDevice("phone"))).GetDevice()
	h.now = h.now.Add(time.Second)
	laptop := mustOK(t, h.do(ana, registerDevice("laptop"))).GetDevice()
	boPhone := mustOK(t, h.do(bo, registerDevice("phone"))).GetDevice()
	if phone.UserId != ana.UserId || !strings.HasPrefix(phone.Id, syncproto.PrefixDevice) || phone.Name != "phone" || phone.Platform != "ios" {
		t.Fatalf("device %v", phone)
	}

	tests := []struct {
		name   string
		caller *syncpb.Caller
		req    *syncpb.CoreRequest
		code   syncpb.Code
		check  func(*syncpb.CoreResponse) bool
	}{
		{name: "list own devices, oldest first", caller: ana, req: listDevices, check: func(r *syncpb.CoreResponse) bool {
			d := r.GetDevices().GetDevices()
			return len(d) == 2 && d[0].Id == phone.Id && d[1].Id == laptop.Id
		}},
		{name: "get own device", caller: ana, req: getDeviceReq(phone.Id), check: func(r *syncpb.CoreResponse) bool { return proto.Equal(r.GetDevice(), phone) }},
		{name: "another user's device is not found", caller: ana, req: getDeviceReq(boPhone.Id), code: syncpb.Code_CODE_NOT_FOUND},
		{name: "without a caller any device", caller: nil, req: getDeviceReq(boPhone.Id), check: func(r *syncpb.CoreResponse) bool { return r.GetDevice().GetUserId() == bo.UserId }},
		{name: "unknown device", caller: nil, req: getDeviceReq("d_nope"), code: syncpb.Code_CODE_NOT_FOUND},
		{name: "invalid device id", caller: ana, req: getDeviceReq("D 1"), code: syncpb.Code_CODE_INVALID_ARGUMENT},
		{name: "revoke another user's device", caller: ana, req: revoke(boPhone.Id), code: syncpb.Code_CODE_NOT_FOUND},
		{name: "revoke own device", caller: ana, req: revoke(laptop.Id), check: func(r *syncpb.CoreResponse) bool { return r.GetDevice().GetRevoked() }},
		{name: "revoked device is listed as revoked", caller: ana, req: listDevices, check: func(r *syncpb.CoreResponse) bool {
			d := r.GetDevices().GetDevices()
			return len(d) == 2 && !d[0].Revoked && d[1].Revoked
		}},
		{name: "a caller-less read sees the revocation", caller: nil, req: getDeviceReq(laptop.Id), check: func(r *syncpb.CoreResponse) bool { return r.GetDevice().GetRevoked() }},
		{name: "register without a caller", caller: nil, req: registerDevice("x"), code: syncpb.Code_CODE_UNAUTHENTICATED},
		{name: "register for an unknown user", caller: &syncpb.Caller{WorkspaceId: ana.WorkspaceId, UserId: "u_ghost"}, req: registerDevice("x"), code: syncpb.Code_CODE_NOT_FOUND},
		{name: "register in the wrong workspace", caller: &syncpb.Caller{WorkspaceId: "w_other", UserId: ana.UserId}, req: registerDevice("x"), code: syncpb.Code_CODE_NOT_FOUND},
		{name: "device name with a newline", caller: ana, req: registerDevice("a\nb"), code: syncpb.Code_CODE_INVALID_ARGUMENT},
		{name: "device name too long", caller: ana, req: registerDevice(strings.Repeat("n", syncproto.MaxNameLen+1)), code: syncpb.Code_CODE_INVALID_ARGUMENT},
		{name: "list without a caller", caller: nil, req: listDevices, code: syncpb.Code_CODE_UNAUTHENTICATED},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			resp := h.do(tc.caller, proto.Clone(tc.req).(*syncpb.CoreRequest))
			wantCode(t, resp, tc.code)
			if tc.check != nil && !tc.check(resp) {
				t.Fatalf("unexpected response %v", resp)
			}
		})
	}
	// Revoking again needs no proposal.
	if cmd, resp := h.prepare(ana, revoke(laptop.Id)); cmd != nil || !resp.GetDevice().GetRevoked() {
		t.Fatalf("second revoke: cmd %v resp %v", cmd, resp)
	}
}

func TestDeviceLimit(t *testing.T) {
	h := newHarness(t)
	ana := callerOf(mustOK(t, h.do(nil, register("acme", "ana", hash))).GetUser())
	var first *syncpb.Device
	for i := 0; i < MaxDevices; i++ {
		d := mustOK(t, h.do(ana, registerDevice(fmt.Sprint(i)))).GetDevice()
		if first == nil {
			first = d
		}
	}
	wantCode(t, h.do(ana, registerDevice("one too many")), syncpb.Code_CODE_FORBIDDEN)
	// Two proposals racing past Prepare: Apply enforces the limit too.
	mustOK(t, h.do(ana, revoke(first.Id)))
	c1, _ := h.prepare(ana, registerDevice("a"))
	c2, _ := h.prepare(ana, registerDevice("b"))
	mustOK(t, h.propose(c1))
	wantCode(t, h.propose(c2), syncpb.Code_CODE_FORBIDDEN)
}

func TestPrepareRejectsShardRequests(t *testing.T) {
	h := newHarness(t)
	wantCode(t, h.do(nil, &syncpb.CoreRequest{Op: &syncpb.CoreRequest_Send{Send: &syncpb.SendRequest{}}}), syncpb.Code_CODE_INVALID_ARGUMENT)
	wantCode(t, h.do(nil, &syncpb.CoreRequest{}), syncpb.Code_CODE_MALFORMED)
}

func dumpGroup(t testing.TB, db *badger.DB) []byte {
	t.Helper()
	var buf bytes.Buffer
	err := db.View(func(txn *badger.Txn) error {
		opts := badger.DefaultIteratorOptions
		opts.Prefix = []byte("f/" + group + "/")
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

type bufferSink struct{ bytes.Buffer }

func (s *bufferSink) ID() string    { return "test" }
func (s *bufferSink) Close() error  { return nil }
func (s *bufferSink) Cancel() error { return nil }

// The same log gives byte-identical key spaces applied one by one, in
// random batches, and from a snapshot taken midway; replays change nothing.
func TestDeterministicReplicas(t *testing.T) {
	h := newHarness(t)
	rng := rand.New(rand.NewPCG(1, 2))
	var callers []*syncpb.Caller
	var devices []string
	outcomes := map[syncpb.RefreshOutcome]int{}
	removals := 0
	var owners []*syncpb.Caller
	for i := 0; i < 600; i++ {
		h.now = h.now.Add(time.Duration(rng.IntN(100)) * time.Millisecond)
		switch r := rng.IntN(13); {
		case r < 4 || len(callers) == 0:
			resp := h.do(nil, register(fmt.Sprintf("ws%d", rng.IntN(3)), fmt.Sprintf("user%d", rng.IntN(60)), fmt.Sprintf("$h%d", rng.IntN(2))))
			if u := resp.GetUser(); u != nil {
				callers = append(callers, callerOf(u))
				if u.WorkspaceRole == RoleOwner {
					owners = append(owners, callerOf(u))
				}
			}
		case r < 7:
			if d := h.do(callers[rng.IntN(len(callers))], registerDevice("d")).GetDevice(); d != nil {
				devices = append(devices, d.Id)
			}
		case r < 10:
			// Start a family, or present a token of the device's family:
			// the current generation or one or two before.
			if len(devices) == 0 {
				continue
			}
			dev := devices[rng.IntN(len(devices))]
			d := h.do(nil, getDeviceReq(dev)).GetDevice()
			owner := &syncpb.Caller{UserId: d.GetUserId(), WorkspaceId: "w"}
			for _, c := range callers {
				if c.UserId == d.GetUserId() {
					owner = c
				}
			}
			fam := d.GetRefresh()
			if fam == nil || rng.IntN(4) == 0 {
				h.do(owner, startFamily(dev))
				continue
			}
			gen := fam.Generation - min(uint64(rng.IntN(3)), fam.Generation-1)
			resp := h.do(owner, rotate(dev, fam.Id, gen, fmt.Sprintf("r%d", rng.IntN(2)), time.Duration(rng.IntN(200))*time.Millisecond))
			outcomes[resp.GetRefreshRotation().GetOutcome()]++
		case r < 11:
			if len(devices) > 0 {
				h.do(callers[rng.IntN(len(callers))], revoke(devices[rng.IntN(len(devices))]))
			}
		case r < 12:
			// An owner, or anyone (mostly refused), removes a user.
			by := callers[rng.IntN(len(callers))]
			if rng.IntN(2) == 0 && len(owners) > 0 {
				by = owners[rng.IntN(len(owners))]
			}
			if rng.IntN(3) == 0 && h.do(by, removeUser(callers[rng.IntN(len(callers))].UserId)).GetUser().GetRemoved() {
				removals++
			}
		default:
			// Now and then a day passes: old revocations are pruned.
			if rng.IntN(20) == 0 {
				h.now = h.now.Add(syncproto.RevocationRetention)
			}
			c := proto.Clone(callers[rng.IntN(len(callers))]).(*syncpb.Caller)
			if len(devices) > 0 {
				c.DeviceId = devices[rng.IntN(len(devices))]
			}
			h.do(c, changePassword(fmt.Sprintf("$h%d", rng.IntN(2)), fmt.Sprintf("$h%d", rng.IntN(2))))
		}
	}
	if removals == 0 {
		t.Error("the log removes no user")
	}
	for o := syncpb.RefreshOutcome_REFRESH_OUTCOME_ROTATED; o <= syncpb.RefreshOutcome_REFRESH_OUTCOME_REUSED; o++ {
		if outcomes[o] == 0 {
			t.Errorf("the log has no rotation with outcome %v (%v)", o, outcomes)
		}
	}
	want := dumpGroup(t, h.db)
	logs := h.logs

	one := openDB(t, 16<<20)
	f1 := newFSM(t, one)
	for _, l := range logs {
		f1.Apply(l)
	}
	batched := openDB(t, 256<<10)
	f2 := newFSM(t, batched)
	for rest := logs; len(rest) > 0; {
		n := min(len(rest), 1+rng.IntN(100))
		f2.ApplyBatch(rest[:n])
		rest = rest[n:]
	}
	src := newFSM(t, openDB(t, 16<<20))
	half := len(logs) / 2
	src.ApplyBatch(logs[:half])
	snap, err := src.Snapshot()
	if err != nil {
		t.Fatal(err)
	}
	sink := &bufferSink{}
	if err := snap.Persist(sink); err != nil {
		t.Fatal(err)
	}
	snap.Release()
	restored := openDB(t, 16<<20)
	f3 := newFSM(t, restored)
	if err := f3.Restore(io.NopCloser(bytes.NewReader(sink.Bytes()))); err != nil {
		t.Fatal(err)
	}
	f3.ApplyBatch(logs)
	f1.ApplyBatch(logs) // a replay

	for name, db := range map[string]*badger.DB{"one by one": one, "batches": batched, "from snapshot": restored} {
		if got := dumpGroup(t, db); !bytes.Equal(got, want) {
			t.Errorf("%s: key space differs from the leader's", name)
		}
	}
}
