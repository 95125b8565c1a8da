package shard

import (
	"encoding/json"
	"fmt"
	"testing"

	"github.com/parley-chat/parley/syncproto"
	"github.com/parley-chat/parley/syncproto/syncpb"
)

const (
	member = syncpb.Role_ROLE_MEMBER
	admin  = syncpb.Role_ROLE_ADMIN
	owner  = syncpb.Role_ROLE_OWNER
)

// newTeam creates c_team: ana owner, bo admin, cy and di members.
func newTeam(t *testing.T) *harness {
	t.Helper()
	h := newHarness(t)
	mustOK(t, h.do(caller("ana"), groupReq("c_team", "bo", "cy", "di")))
	mustOK(t, h.do(caller("ana"), changeReq("c_team", change{roles: map[string]syncpb.Role{"bo": admin}})))
	return h
}

func lastSeq(t *testing.T, h *harness) uint64 {
	t.Helper()
	return mustOK(t, h.do(caller("ana"), getReq("c_team"))).GetConversation().LastSeq
}

func TestChangeMembers(t *testing.T) {
	tests := []struct {
		name   string
		by     string
		change change
		code   syncpb.Code
		want   map[string]syncpb.Role // members after, when ok
		events []string               // system events appended
	}{
		{name: "member cannot add", by: "cy", change: change{add: []string{"ed"}}, code: syncpb.Code_CODE_FORBIDDEN},
		{name: "member cannot remove", by: "cy", change: change{remove: []string{"di"}}, code: syncpb.Code_CODE_FORBIDDEN},
		{name: "admin adds a member", by: "bo", change: change{add: []string{"ed"}},
			want:   map[string]syncpb.Role{"ana": owner, "bo": admin, "cy": member, "di": member, "ed": member},
			events: []string{"members_added"}},
		{name: "admin cannot add an admin", by: "bo", change: change{add: []string{"ed"}, roles: map[string]syncpb.Role{"ed": admin}}, code: syncpb.Code_CODE_FORBIDDEN},
		{name: "admin removes a member", by: "bo", change: change{remove: []string{"cy"}},
			want:   map[string]syncpb.Role{"ana": owner, "bo": admin, "di": member},
			events: []string{"members_removed"}},
		{name: "admin cannot remove the owner", by: "bo", change: change{remove: []string{"ana"}}, code: syncpb.Code_CODE_FORBIDDEN},
		{name: "admin cannot promote", by: "bo", change: change{roles: map[string]syncpb.Role{"cy": admin}}, code: syncpb.Code_CODE_FORBIDDEN},
		{name: "admin cannot demote itself", by: "bo", change: change{roles: map[string]syncpb.Role{"bo": member}}, code: syncpb.Code_CODE_FORBIDDEN},
		{name: "owner adds an admin", by: "ana", change: change{add: []string{"ed"}, roles: map[string]syncpb.Role{"ed": admin}},
			want:   map[string]syncpb.Role{"ana": owner, "bo": admin, "cy": member, "di": member, "ed": admin},
			events: []string{"members_added"}},
		{name: "owner demotes an admin and removes a member", by: "ana", change: change{remove: []string{"di"}, roles: map[string]syncpb.Role{"bo": member}},
			want:   map[string]syncpb.Role{"ana": owner, "bo": member, "cy": member},
			events: []string{"members_removed", "roles_changed"}},
		{name: "owner removes an admin", by: "ana", change: change{remove: []string{"bo"}},
			want: map[string]syncpb.Role{"ana": owner, "cy": member, "di": member}, events: []string{"members_removed"}},
		{name: "member leaves", by: "cy", change: change{leave: true}, events: []string{"member_left"}},
		{name: "last owner cannot leave", by: "ana", change: change{leave: true}, code: syncpb.Code_CODE_FORBIDDEN},
		{name: "last owner cannot step down", by: "ana", change: change{roles: map[string]syncpb.Role{"ana": admin}}, code: syncpb.Code_CODE_FORBIDDEN},
		{name: "owner hands over and steps down", by: "ana", change: change{roles: map[string]syncpb.Role{"ana": member, "cy": owner}},
			want:   map[string]syncpb.Role{"ana": member, "bo": admin, "cy": owner, "di": member},
			events: []string{"roles_changed"}},
		{name: "remove oneself", by: "ana", change: change{remove: []string{"ana"}}, code: syncpb.Code_CODE_INVALID_ARGUMENT},
		{name: "leave with other changes", by: "cy", change: change{leave: true, add: []string{"ed"}}, code: syncpb.Code_CODE_INVALID_ARGUMENT},
		{name: "nothing", by: "ana", change: change{}, code: syncpb.Code_CODE_INVALID_ARGUMENT},
		{name: "add and remove the same user", by: "ana", change: change{add: []string{"ed"}, remove: []string{"ed"}}, code: syncpb.Code_CODE_INVALID_ARGUMENT},
		{name: "role for a non-member", by: "ana", change: change{roles: map[string]syncpb.Role{"ed": admin}}, code: syncpb.Code_CODE_INVALID_ARGUMENT},
		{name: "unknown role", by: "ana", change: change{roles: map[string]syncpb.Role{"cy": syncpb.Role_ROLE_UNSPECIFIED}}, code: syncpb.Code_CODE_INVALID_ARGUMENT},
		{name: "add an unknown user", by: "ana", change: change{add: []string{"nobody"}}, code: syncpb.Code_CODE_NOT_FOUND},
		{name: "add a user of another workspace", by: "ana", change: change{add: []string{"zed"}}, code: syncpb.Code_CODE_NOT_FOUND},
		{name: "non-member", by: "ed", change: change{add: []string{"ed"}}, code: syncpb.Code_CODE_NOT_MEMBER},
		{name: "other workspace", by: "zed", change: change{leave: true}, code: syncpb.Code_CODE_NOT_FOUND},
		{name: "retry of an applied change is a no-op", by: "ana", change: change{add: []string{"cy"}, remove: []string{"ed"}, roles: map[string]syncpb.Role{"bo": admin}},
			want: map[string]syncpb.Role{"ana": owner, "bo": admin, "cy": member, "di": member}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			h := newTeam(t)
			before := lastSeq(t, h)
			resp := h.do(caller(tc.by), changeReq("c_team", tc.change))
			wantCode(t, resp, tc.code)
			after := lastSeq(t, h)
			if tc.code != syncpb.Code_CODE_OK {
				if after != before {
					t.Fatalf("rejected change consumed seqs %d..%d", before, after)
				}
				return
			}
			if tc.want != nil {
				got := memberRoles(resp.GetConversation())
				if fmt.Sprint(got) != fmt.Sprint(tc.want) {
					t.Fatalf("members %v, want %v", got, tc.want)
				}
				fresh := memberRoles(mustOK(t, h.do(caller("ana"), getReq("c_team"))).GetConversation())
				if fmt.Sprint(fresh) != fmt.Sprint(tc.want) {
					t.Fatalf("members read back %v, want %v", fresh, tc.want)
				}
			}
			if after-before != uint64(len(tc.events)) {
				t.Fatalf("%d system messages, want %d", after-before, len(tc.events))
			}
			if len(tc.events) == 0 {
				return
			}
			msgs := mustOK(t, h.do(caller("ana"), historyReq("c_team", before, 10, syncpb.Direction_DIRECTION_FORWARD))).GetHistory().GetMessages()
			for i, m := range msgs {
				var ev systemEvent
				if err := json.Unmarshal(m.Body, &ev); err != nil {
					t.Fatal(err)
				}
				if m.Kind != syncpb.MessageKind_MESSAGE_KIND_SYSTEM || ev.Event != tc.events[i] || ev.By != "u_"+tc.by {
					t.Fatalf("system message %d: kind %v body %s, want %s", i, m.Kind, m.Body, tc.events[i])
				}
			}
		})
	}
}

func TestRemovedMemberLosesAccess(t *testing.T) {
	h := newTeam(t)
	mustOK(t, h.do(caller("cy"), sendReq("c_team", "c1", "hello")))
	mustOK(t, h.do(caller("bo"), changeReq("c_team", change{remove: []string{"cy"}})))
	for name, req := range map[string]*syncpb.CoreRequest{
		"get":     getReq("c_team"),
		"send":    sendReq("c_team", "c2", "still here?"),
		"resend":  sendReq("c_team", "c1", "hello"),
		"history": historyReq("c_team", 0, 10, syncpb.Direction_DIRECTION_BACKWARD),
		"receipt": receiptReq("c_team", 1, syncpb.ReceiptType_RECEIPT_TYPE_READ),
		"leave":   changeReq("c_team", change{leave: true}),
	} {
		t.Run(name, func(t *testing.T) {
			wantCode(t, h.do(caller("cy"), req), syncpb.Code_CODE_NOT_MEMBER)
		})
	}
	for _, c := range h.do(caller("cy"), listReq(0)).GetConversations().GetConversations() {
		t.Fatalf("cy still lists %s", c.Id)
	}
	// Added back, cy sees the history again.
	mustOK(t, h.do(caller("ana"), changeReq("c_team", change{add: []string{"cy"}})))
	if n := len(mustOK(t, h.do(caller("cy"), historyReq("c_team", 0, 50, 0))).GetHistory().GetMessages()); n != 4 {
		t.Fatalf("history after re-add: %d messages", n)
	}
}

// A kick that commits between a send's Prepare and its Apply wins.
func TestKickBetweenPrepareAndApply(t *testing.T) {
	h := newTeam(t)
	send, _ := h.prepare(caller("cy"), sendReq("c_team", "c1", "hi"))
	if send == nil {
		t.Fatal("send was not proposed")
	}
	mustOK(t, h.do(caller("bo"), changeReq("c_team", change{remove: []string{"cy"}})))
	seq := lastSeq(t, h)
	wantCode(t, h.propose(send), syncpb.Code_CODE_NOT_MEMBER)
	if lastSeq(t, h) != seq {
		t.Fatal("rejected send consumed a seq")
	}
}

// Two owners leaving concurrently: both pass Prepare, the second Apply
// finds itself the last owner.
func TestConcurrentOwnerLeaves(t *testing.T) {
	h := newTeam(t)
	mustOK(t, h.do(caller("ana"), changeReq("c_team", change{roles: map[string]syncpb.Role{"cy": owner}})))
	l1, _ := h.prepare(caller("ana"), changeReq("c_team", change{leave: true}))
	l2, _ := h.prepare(caller("cy"), changeReq("c_team", change{leave: true}))
	mustOK(t, h.propose(l1))
	wantCode(t, h.propose(l2), syncpb.Code_CODE_FORBIDDEN)
}

func TestDirectMembersAreFixed(t *testing.T) {
	h := newHarness(t)
	id := directID("ana", "bo")
	mustOK(t, h.do(caller("ana"), createReq(id, direct, "", "bo")))
	wantCode(t, h.do(caller("ana"), changeReq(id, change{add: []string{"cy"}})), syncpb.Code_CODE_INVALID_ARGUMENT)
	wantCode(t, h.do(caller("ana"), changeReq(id, change{leave: true})), syncpb.Code_CODE_INVALID_ARGUMENT)
}

func TestOnlyMemberMayLeave(t *testing.T) {
	h := newHarness(t)
	mustOK(t, h.do(caller("ana"), groupReq("c_solo")))
	resp := mustOK(t, h.do(caller("ana"), changeReq("c_solo", change{leave: true})))
	if len(resp.GetConversation().GetMembers()) != 0 {
		t.Fatalf("leaver sees members: %v", resp.GetConversation())
	}
	wantCode(t, h.do(caller("ana"), getReq("c_solo")), syncpb.Code_CODE_NOT_MEMBER)
}

func TestGroupSizeIsCapped(t *testing.T) {
	if testing.Short() {
		t.Skip("creates a full group")
	}
	h := newHarness(t)
	var others []string
	for i := 0; i < syncproto.MaxConversationMembers-1; i++ {
		u := fmt.Sprintf("n%05d", i)
		h.dir.add(wsA, "u_"+u)
		others = append(others, u)
	}
	resp := mustOK(t, h.do(caller("ana"), groupReq("c_big", others...)))
	if n := len(resp.GetConversation().GetMembers()); n != syncproto.MaxConversationMembers {
		t.Fatalf("%d members", n)
	}
	wantCode(t, h.do(caller("ana"), changeReq("c_big", change{add: []string{"bo"}})), syncpb.Code_CODE_INVALID_ARGUMENT)
	mustOK(t, h.do(caller("ana"), changeReq("c_big", change{remove: []string{"n00000"}})))
	mustOK(t, h.do(caller("ana"), changeReq("c_big", change{add: []string{"bo"}})))
	wantCode(t, h.do(caller("ana"), groupReq("c_big2", append(others, "bo")...)), syncpb.Code_CODE_INVALID_ARGUMENT)
}
