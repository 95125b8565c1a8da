package directory

import (
	"slices"
	"testing"

	"google.golang.org/protobuf/proto"

	"github.com/parley-chat/parley/syncproto"
	"github.com/parley-chat/parley/syncproto/syncpb"
)

func removeUser(id string) *syncpb.CoreRequest {
	return &syncpb.CoreRequest{Op: &syncpb.CoreRequest_RemoveUser{RemoveUser: &syncpb.RemoveUserRequest{UserId: id}}}
}

func TestRemoveUser(t *testing.T) {
	h, heard := newRevokeHarness(t)
	owner := callerOf(mustOK(t, h.do(nil, register("acme", "ana", hash))).GetUser())
	bo := callerOf(mustOK(t, h.do(nil, register("acme", "bo", hash))).GetUser())
	cy := callerOf(mustOK(t, h.do(nil, register("acme", "cy", hash))).GetUser())
	other := callerOf(mustOK(t, h.do(nil, register("beta", "dee", hash))).GetUser())
	phone := mustOK(t, h.do(bo, registerDevice("phone"))).GetDevice()
	laptop := mustOK(t, h.do(bo, registerDevice("laptop"))).GetDevice()
	tablet := mustOK(t, h.do(bo, registerDevice("tablet"))).GetDevice()
	mustOK(t, h.do(bo, revoke(tablet.Id)))
	*heard = nil

	// Who may remove whom.
	wantCode(t, h.do(nil, removeUser(bo.UserId)), syncpb.Code_CODE_UNAUTHENTICATED)
	wantCode(t, h.do(cy, removeUser(bo.UserId)), syncpb.Code_CODE_FORBIDDEN)
	wantCode(t, h.do(bo, removeUser(bo.UserId)), syncpb.Code_CODE_FORBIDDEN)
	wantCode(t, h.do(owner, removeUser(owner.UserId)), syncpb.Code_CODE_FORBIDDEN)
	wantCode(t, h.do(owner, removeUser(other.UserId)), syncpb.Code_CODE_NOT_FOUND)
	wantCode(t, h.do(other, removeUser(bo.UserId)), syncpb.Code_CODE_NOT_FOUND)
	wantCode(t, h.do(owner, removeUser("u_nobody")), syncpb.Code_CODE_NOT_FOUND)
	wantCode(t, h.do(owner, removeUser("U 1")), syncpb.Code_CODE_INVALID_ARGUMENT)
	wantCode(t, h.do(owner, &syncpb.CoreRequest{Op: &syncpb.CoreRequest_RemoveUser{}}), syncpb.Code_CODE_MALFORMED)
	if len(*heard) != 0 {
		t.Fatalf("refused removals revoked %v", *heard)
	}

	// The owner removes bo: the devices not revoked yet are, in one
	// revocation of every token they hold.
	resp := mustOK(t, h.do(owner, removeUser(bo.UserId)))
	if !resp.GetUser().GetRemoved() || resp.GetUser().GetId() != bo.UserId {
		t.Fatalf("removed user %v", resp.GetUser())
	}
	want := &syncpb.Revocation{WorkspaceId: bo.WorkspaceId, UserId: bo.UserId, DeviceIds: []string{laptop.Id, phone.Id},
		NotBeforeUnixMs: syncproto.NotBeforeAll, Reason: syncpb.RevocationReason_REVOCATION_REASON_USER_REMOVED, RevokedUnixMs: h.now.UnixMilli()}
	slices.Sort(want.DeviceIds)
	got := resp.GetRevocation()
	if got != nil {
		slices.Sort(got.DeviceIds)
	}
	if !proto.Equal(got, want) || len(*heard) != 1 {
		t.Fatalf("revocation %v (heard %d), want %v", got, len(*heard), want)
	}
	if err := syncproto.ValidateRevocation(got); err != nil {
		t.Fatal(err)
	}
	for _, id := range []string{phone.Id, laptop.Id, tablet.Id} {
		if d := mustOK(t, h.do(nil, getDeviceReq(id))).GetDevice(); !d.Revoked {
			t.Errorf("device %s not revoked", id)
		}
	}
	// Removing again changes nothing.
	if r := mustOK(t, h.do(owner, removeUser(bo.UserId))); r.GetRevocation() != nil || len(*heard) != 1 || !r.GetUser().GetRemoved() {
		t.Fatalf("second removal: %v", r)
	}

	// bo cannot log in; lookups by name leave him out, by id show him removed.
	wantCode(t, h.do(nil, credentials("acme", "bo")), syncpb.Code_CODE_NOT_FOUND)
	if us := mustOK(t, h.do(cy, lookup(nil, []string{"bo", "cy"}))).GetUsers().GetUsers(); len(us) != 1 || us[0].Id != cy.UserId {
		t.Fatalf("lookup by name: %v", us)
	}
	if us := mustOK(t, h.do(cy, lookup([]string{bo.UserId}, nil))).GetUsers().GetUsers(); len(us) != 1 || !us[0].Removed {
		t.Fatalf("lookup by id: %v", us)
	}
	// The name stays taken.
	wantCode(t, h.do(nil, register("acme", "bo", hash)), syncpb.Code_CODE_CONFLICT)
	// A device cannot be registered for him (his tokens are revoked; this
	// holds for a caller the edge still let through).
	wantCode(t, h.do(bo, registerDevice("new")), syncpb.Code_CODE_FORBIDDEN)
	// cy is untouched.
	if c := mustOK(t, h.do(nil, credentials("acme", "cy"))).GetCredentials(); c.GetUser().GetRemoved() {
		t.Fatal("cy removed too")
	}
}
