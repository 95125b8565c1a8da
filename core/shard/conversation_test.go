package shard

import (
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/parley-chat/parley/syncproto"
	"github.com/parley-chat/parley/syncproto/syncpb"
)

const (
	direct = syncpb.ConversationType_CONVERSATION_TYPE_DIRECT
	grp    = syncpb.ConversationType_CONVERSATION_TYPE_GROUP
)

func TestConfigValidate(t *testing.T) {
	db := openDB(t, 8<<20)
	if _, err := New(db, Config{Directory: newFakeDir()}); err == nil {
		t.Fatal("missing group accepted")
	}
	if _, err := New(db, Config{Group: "s0"}); err == nil {
		t.Fatal("missing directory accepted")
	}
	if _, err := New(db, Config{Group: "s/0", Directory: newFakeDir()}); err == nil {
		t.Fatal("group with '/' accepted")
	}
}

func TestCreateConversation(t *testing.T) {
	h := newHarness(t)
	mustOK(t, h.do(caller("ana"), groupReq("c_taken", "bo")))
	mustOK(t, h.do(caller("ana"), createReq(directID("ana", "cy"), direct, "", "cy")))

	tests := []struct {
		name    string
		by      string
		req     *syncpb.CoreRequest
		code    syncpb.Code
		members map[string]syncpb.Role
	}{
		{name: "group: creator is owner", by: "ana", req: groupReq("c_g1", "bo", "cy", "bo", "ana"),
			members: map[string]syncpb.Role{"ana": syncpb.Role_ROLE_OWNER, "bo": syncpb.Role_ROLE_MEMBER, "cy": syncpb.Role_ROLE_MEMBER}},
		{name: "group alone", by: "bo", req: groupReq("c_solo"), members: map[string]syncpb.Role{"bo": syncpb.Role_ROLE_OWNER}},
		{name: "group: creator's retry returns it", by: "ana", req: groupReq("c_taken", "di"),
			members: map[string]syncpb.Role{"ana": syncpb.Role_ROLE_OWNER, "bo": syncpb.Role_ROLE_MEMBER}},
		{name: "group: id taken by another creator", by: "bo", req: groupReq("c_taken"), code: syncpb.Code_CODE_CONFLICT},
		{name: "group: id taken by a direct conversation", by: "ana", req: groupReq(directID("ana", "cy")), code: syncpb.Code_CODE_INVALID_ARGUMENT},
		{name: "group: id without group prefix", by: "ana", req: groupReq("x_g2", "bo"), code: syncpb.Code_CODE_INVALID_ARGUMENT},
		{name: "group: unknown user", by: "ana", req: groupReq("c_g3", "bo", "nobody"), code: syncpb.Code_CODE_NOT_FOUND},
		{name: "group: user of another workspace", by: "ana", req: groupReq("c_g4", "zed"), code: syncpb.Code_CODE_NOT_FOUND},
		{name: "group: invalid user id", by: "ana", req: groupReq("c_g5", "Bad/Id"), code: syncpb.Code_CODE_INVALID_ARGUMENT},
		{name: "group: title too long", by: "ana", req: createReq("c_g6", grp, strings.Repeat("t", syncproto.MaxTitleLen+1), "bo"), code: syncpb.Code_CODE_INVALID_ARGUMENT},
		{name: "invalid conversation id", by: "ana", req: groupReq("c_UPPER", "bo"), code: syncpb.Code_CODE_INVALID_ARGUMENT},
		{name: "unknown type", by: "ana", req: createReq("c_g7", syncpb.ConversationType_CONVERSATION_TYPE_UNSPECIFIED, "", "bo"), code: syncpb.Code_CODE_INVALID_ARGUMENT},
		{name: "direct", by: "ana", req: createReq(directID("ana", "bo"), direct, "ignored", "bo"),
			members: map[string]syncpb.Role{"ana": syncpb.Role_ROLE_MEMBER, "bo": syncpb.Role_ROLE_MEMBER}},
		{name: "direct: the other side creating it gets it", by: "cy", req: createReq(directID("ana", "cy"), direct, "", "ana"),
			members: map[string]syncpb.Role{"ana": syncpb.Role_ROLE_MEMBER, "cy": syncpb.Role_ROLE_MEMBER}},
		{name: "direct: id of other members", by: "ana", req: createReq(directID("bo", "cy"), direct, "", "bo"), code: syncpb.Code_CODE_INVALID_ARGUMENT},
		{name: "direct: two others", by: "ana", req: createReq(directID("ana", "di"), direct, "", "di", "ed"), code: syncpb.Code_CODE_INVALID_ARGUMENT},
		{name: "direct: with oneself", by: "ana", req: createReq(directID("ana", "ana"), direct, "", "ana"), code: syncpb.Code_CODE_INVALID_ARGUMENT},
		{name: "direct: unknown user", by: "ana", req: createReq(directID("ana", "nobody"), direct, "", "nobody"), code: syncpb.Code_CODE_NOT_FOUND},
		{name: "no caller", by: "", req: groupReq("c_g8"), code: syncpb.Code_CODE_UNAUTHENTICATED},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			var c *syncpb.Caller
			if tc.by != "" {
				c = caller(tc.by)
			}
			resp := h.do(c, tc.req)
			wantCode(t, resp, tc.code)
			if tc.code != syncpb.Code_CODE_OK {
				return
			}
			conv := resp.GetConversation()
			want := tc.req.GetCreateConversation()
			if conv.Id != want.ConvId || conv.Type != want.Type || conv.WorkspaceId != wsA {
				t.Fatalf("conversation %v", conv)
			}
			got := memberRoles(conv)
			if len(got) != len(tc.members) {
				t.Fatalf("members %v, want %v", got, tc.members)
			}
			for u, r := range tc.members {
				if got[u] != r {
					t.Fatalf("members %v, want %v", got, tc.members)
				}
			}
			// What Apply returned is what a later read sees.
			again := mustOK(t, h.do(c, getReq(want.ConvId))).GetConversation()
			again.ReadSeq = conv.ReadSeq
			if again.String() != conv.String() {
				t.Fatalf("get after create:\n%v\n%v", again, conv)
			}
		})
	}
}

func TestCreateRetriesRaceInApply(t *testing.T) {
	h := newHarness(t)
	// Both proposals pass Prepare before either applies.
	cmd1, _ := h.prepare(caller("ana"), groupReq("c_race", "bo"))
	cmd2, _ := h.prepare(caller("ana"), groupReq("c_race", "bo", "cy"))
	cmd3, _ := h.prepare(caller("bo"), groupReq("c_race"))
	first := mustOK(t, h.propose(cmd1)).GetConversation()
	second := mustOK(t, h.propose(cmd2)).GetConversation()
	if len(second.Members) != 2 || second.CreatedUnixMs != first.CreatedUnixMs {
		t.Fatalf("retry changed the conversation: %v", second)
	}
	wantCode(t, h.propose(cmd3), syncpb.Code_CODE_CONFLICT)
}

func TestApplyTrustsOnlyVerifiedUsers(t *testing.T) {
	h := newHarness(t)
	cmd, _ := h.prepare(caller("ana"), groupReq("c_v", "bo"))
	cmd.GetCreateConversation().MemberUserIds = append(cmd.GetCreateConversation().MemberUserIds, "u_forged")
	wantCode(t, h.propose(cmd), syncpb.Code_CODE_INVALID_ARGUMENT)
	wantCode(t, h.do(caller("ana"), getReq("c_v")), syncpb.Code_CODE_NOT_FOUND)
}

func TestDirectoryErrorsReachTheCaller(t *testing.T) {
	h := newHarness(t)
	h.dir.err = syncproto.Errorf(syncpb.Code_CODE_UNAVAILABLE, "directory down")
	wantCode(t, h.do(caller("ana"), groupReq("c_d", "bo")), syncpb.Code_CODE_UNAVAILABLE)
	h.dir.err = nil
	mustOK(t, h.do(caller("ana"), groupReq("c_d", "bo")))
	// A group with only its creator needs no lookup.
	calls := h.dir.calls
	mustOK(t, h.do(caller("ana"), groupReq("c_alone")))
	if h.dir.calls != calls {
		t.Fatal("directory asked about nobody")
	}
}

func TestGetConversation(t *testing.T) {
	h := newHarness(t)
	mustOK(t, h.do(caller("ana"), groupReq("c_g", "bo")))
	mustOK(t, h.do(caller("zed"), &syncpb.CoreRequest{Op: groupReq("c_z").Op}))
	tests := []struct {
		name, by, conv string
		code           syncpb.Code
	}{
		{"member", "bo", "c_g", syncpb.Code_CODE_OK},
		{"non-member of the workspace", "cy", "c_g", syncpb.Code_CODE_NOT_MEMBER},
		{"another workspace's conversation", "ana", "c_z", syncpb.Code_CODE_NOT_FOUND},
		{"user of another workspace", "zed", "c_g", syncpb.Code_CODE_NOT_FOUND},
		{"missing", "ana", "c_missing", syncpb.Code_CODE_NOT_FOUND},
		{"invalid id", "ana", "C G", syncpb.Code_CODE_INVALID_ARGUMENT},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			wantCode(t, h.do(caller(tc.by), getReq(tc.conv)), tc.code)
		})
	}
}

func TestListConversations(t *testing.T) {
	h := newHarness(t)
	mustOK(t, h.do(caller("ana"), groupReq("c_old", "bo")))
	h.tick(time.Second)
	mustOK(t, h.do(caller("ana"), groupReq("c_new")))
	h.tick(time.Second)
	mustOK(t, h.do(caller("bo"), createReq(directID("ana", "bo"), direct, "", "ana")))
	mustOK(t, h.do(caller("cy"), groupReq("c_cy")))
	mustOK(t, h.do(caller("ana"), sendReq("c_old", "m1", "hi")))
	mustOK(t, h.do(caller("ana"), receiptReq("c_old", 1, syncpb.ReceiptType_RECEIPT_TYPE_READ)))

	ids := func(r *syncpb.CoreResponse) string {
		var out []string
		for _, c := range mustOK(t, r).GetConversations().GetConversations() {
			out = append(out, c.Id)
		}
		return strings.Join(out, " ")
	}
	if got, want := ids(h.do(caller("ana"), listReq(0))), directID("ana", "bo")+" c_new c_old"; got != want {
		t.Fatalf("ana's list %q, want %q", got, want)
	}
	if got := ids(h.do(caller("ana"), listReq(2))); got != directID("ana", "bo")+" c_new" {
		t.Fatalf("limited list %q", got)
	}
	if got := ids(h.do(caller("bo"), listReq(0))); got != directID("ana", "bo")+" c_old" {
		t.Fatalf("bo's list %q", got)
	}
	if got := ids(h.do(caller("zed"), listReq(0))); got != "" {
		t.Fatalf("zed's list %q", got)
	}
	for _, c := range h.do(caller("ana"), listReq(0)).GetConversations().GetConversations() {
		if c.Id == "c_old" && (c.ReadSeq != 1 || c.LastSeq != 1 || len(c.Members) != 2) {
			t.Fatalf("c_old in list: %v", c)
		}
	}
}

func TestPrepareRejectsNonShardRequests(t *testing.T) {
	h := newHarness(t)
	wantCode(t, h.do(caller("ana"), &syncpb.CoreRequest{Op: &syncpb.CoreRequest_ListDevices{ListDevices: &syncpb.ListDevicesRequest{}}}), syncpb.Code_CODE_INVALID_ARGUMENT)
	wantCode(t, h.do(caller("ana"), &syncpb.CoreRequest{}), syncpb.Code_CODE_MALFORMED)
	_, _, err := h.f.Prepare(t.Context(), &syncpb.CoreRequest{Caller: caller("ana"), Op: &syncpb.CoreRequest_Send{}}, h.now)
	if !errors.Is(err, syncproto.ErrMalformed) {
		t.Fatalf("nil send: %v", err)
	}
}
