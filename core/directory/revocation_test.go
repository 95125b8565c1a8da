package directory

import (
	"io"
	"log/slog"
	"slices"
	"testing"
	"time"

	"google.golang.org/protobuf/proto"

	"github.com/parley-chat/parley/syncproto"
	"github.com/parley-chat/parley/syncproto/syncpb"
)

func changePassword(next, previous string) *syncpb.CoreRequest {
	return &syncpb.CoreRequest{Op: &syncpb.CoreRequest_ChangePassword{ChangePassword: &syncpb.ChangePasswordRequest{PasswordHash: next, PreviousHash: previous}}}
}

func listRevocations(since int64, after string, limit uint32) *syncpb.CoreRequest {
	return &syncpb.CoreRequest{Op: &syncpb.CoreRequest_ListRevocations{ListRevocations: &syncpb.ListRevocationsRequest{SinceUnixMs: since, After: after, Limit: limit}}}
}

func credentialsOf(id string) *syncpb.CoreRequest {
	return &syncpb.CoreRequest{Op: &syncpb.CoreRequest_GetCredentials{GetCredentials: &syncpb.GetCredentialsRequest{UserId: id}}}
}

// newRevokeHarness is a harness whose FSM records what OnRevoke hears.
func newRevokeHarness(t *testing.T) (*harness, *[]*syncpb.Revocation) {
	t.Helper()
	h := newHarness(t)
	var heard []*syncpb.Revocation
	f, err := New(h.db, Config{Group: group, Logger: slog.New(slog.NewTextHandler(io.Discard, nil)),
		OnRevoke: func(rs []*syncpb.Revocation) { heard = append(heard, rs...) }})
	if err != nil {
		t.Fatal(err)
	}
	h.f = f
	return h, &heard
}

func TestRevokeDeviceRevokes(t *testing.T) {
	h, heard := newRevokeHarness(t)
	ana := callerOf(mustOK(t, h.do(nil, register("acme", "ana", hash))).GetUser())
	phone := mustOK(t, h.do(ana, registerDevice("phone"))).GetDevice()
	resp := mustOK(t, h.do(ana, revoke(phone.Id)))
	want := &syncpb.Revocation{WorkspaceId: ana.WorkspaceId, UserId: ana.UserId, DeviceIds: []string{phone.Id},
		NotBeforeUnixMs: syncproto.NotBeforeAll, Reason: syncpb.RevocationReason_REVOCATION_REASON_DEVICE_REVOKED, RevokedUnixMs: h.now.UnixMilli()}
	if !proto.Equal(resp.GetRevocation(), want) {
		t.Fatalf("revocation %v, want %v", resp.GetRevocation(), want)
	}
	if err := syncproto.ValidateRevocation(resp.GetRevocation()); err != nil {
		t.Fatal(err)
	}
	if len(*heard) != 1 || !proto.Equal((*heard)[0], want) {
		t.Fatalf("OnRevoke heard %v", *heard)
	}
	// Revoking again changes nothing and revokes nothing new.
	if r := h.do(ana, revoke(phone.Id)); r.GetRevocation() != nil || len(*heard) != 1 {
		t.Fatalf("second revoke: %v, heard %d", r, len(*heard))
	}
	// A rejected command is not heard.
	wantCode(t, h.do(ana, revoke("d_nope")), syncpb.Code_CODE_NOT_FOUND)
	if len(*heard) != 1 {
		t.Fatalf("heard %d", len(*heard))
	}
}

func TestChangePassword(t *testing.T) {
	h, heard := newRevokeHarness(t)
	ana := callerOf(mustOK(t, h.do(nil, register("acme", "ana", hash))).GetUser())
	bo := callerOf(mustOK(t, h.do(nil, register("acme", "bo", hash))).GetUser())
	phone := mustOK(t, h.do(ana, registerDevice("phone"))).GetDevice()
	laptop := mustOK(t, h.do(ana, registerDevice("laptop"))).GetDevice()
	tablet := mustOK(t, h.do(ana, registerDevice("tablet"))).GetDevice()
	boPhone := mustOK(t, h.do(bo, registerDevice("phone"))).GetDevice()
	mustOK(t, h.do(ana, revoke(laptop.Id)))
	*heard = nil
	onPhone := &syncpb.Caller{WorkspaceId: ana.WorkspaceId, UserId: ana.UserId, DeviceId: phone.Id}
	const next = "$argon2id$v=19$m=65536,t=1,p=4$bmV3$bmV3"

	wantCode(t, h.do(nil, changePassword(next, hash)), syncpb.Code_CODE_UNAUTHENTICATED)
	wantCode(t, h.do(onPhone, changePassword("hunter2", hash)), syncpb.Code_CODE_INVALID_ARGUMENT)
	wantCode(t, h.do(onPhone, changePassword(next, "$not-the-hash")), syncpb.Code_CODE_CONFLICT)
	wantCode(t, h.do(&syncpb.Caller{WorkspaceId: "w_other", UserId: ana.UserId}, changePassword(next, hash)), syncpb.Code_CODE_NOT_FOUND)
	wantCode(t, h.do(onPhone, &syncpb.CoreRequest{Op: &syncpb.CoreRequest_ChangePassword{}}), syncpb.Code_CODE_MALFORMED)

	h.now = h.now.Add(time.Minute)
	// Two changes racing past Prepare: the second finds the hash changed.
	c1, _ := h.prepare(onPhone, changePassword(next, hash))
	c2, _ := h.prepare(onPhone, changePassword("$other", hash))
	resp := mustOK(t, h.propose(c1))
	wantCode(t, h.propose(c2), syncpb.Code_CODE_CONFLICT)
	if resp.GetUser().GetId() != ana.UserId {
		t.Fatalf("user %v", resp.GetUser())
	}
	// The other device not revoked loses its tokens; the phone keeps its,
	// and the revoked laptop has lost every token already.
	ts := h.now.UnixMilli()
	want := &syncpb.Revocation{WorkspaceId: ana.WorkspaceId, UserId: ana.UserId, DeviceIds: []string{tablet.Id},
		NotBeforeUnixMs: ts, Reason: syncpb.RevocationReason_REVOCATION_REASON_PASSWORD_CHANGED, RevokedUnixMs: ts}
	if !proto.Equal(resp.GetRevocation(), want) || len(*heard) != 1 || !proto.Equal((*heard)[0], want) {
		t.Fatalf("revocation %v, heard %v; want %v", resp.GetRevocation(), *heard, want)
	}
	for id, nb := range map[string]int64{tablet.Id: ts, phone.Id: 0, boPhone.Id: 0} {
		if d := mustOK(t, h.do(nil, getDeviceReq(id))).GetDevice(); d.TokensNotBeforeUnixMs != nb {
			t.Errorf("device %s: tokens not before %d, want %d", id, d.TokensNotBeforeUnixMs, nb)
		}
	}
	if c := mustOK(t, h.do(onPhone, credentialsOf(ana.UserId))).GetCredentials(); c.PasswordHash != next || c.User.Id != ana.UserId {
		t.Fatalf("credentials %v", c)
	}
	if c := mustOK(t, h.do(nil, credentials("acme", "ana"))).GetCredentials(); c.PasswordHash != next {
		t.Fatalf("log-in credentials %v", c)
	}
	wantCode(t, h.do(bo, credentialsOf(ana.UserId)), syncpb.Code_CODE_NOT_FOUND)
	wantCode(t, h.do(nil, credentialsOf(ana.UserId)), syncpb.Code_CODE_UNAUTHENTICATED)

	// With no other device, nothing is revoked.
	*heard = nil
	solo := callerOf(mustOK(t, h.do(nil, register("acme", "cy", hash))).GetUser())
	cyPhone := mustOK(t, h.do(solo, registerDevice("phone"))).GetDevice()
	solo.DeviceId = cyPhone.Id
	if r := mustOK(t, h.do(solo, changePassword(next, hash))); r.GetRevocation() != nil || len(*heard) != 0 {
		t.Fatalf("a lone device revoked %v", r.GetRevocation())
	}
}

func TestListRevocations(t *testing.T) {
	h, _ := newRevokeHarness(t)
	ana := callerOf(mustOK(t, h.do(nil, register("acme", "ana", hash))).GetUser())
	start := h.now
	var ids []string
	for range 5 {
		d := mustOK(t, h.do(ana, registerDevice("d"))).GetDevice()
		mustOK(t, h.do(ana, revoke(d.Id)))
		ids = append(ids, d.Id)
		h.now = h.now.Add(time.Second)
	}
	devicesOf := func(rs []*syncpb.Revocation) []string {
		var out []string
		for _, r := range rs {
			out = append(out, r.DeviceIds...)
		}
		return out
	}
	// Paged one at a time, from a time on.
	var got []string
	after := ""
	for {
		l := mustOK(t, h.do(nil, listRevocations(start.Add(2*time.Second).UnixMilli(), after, 1))).GetRevocations()
		got = append(got, devicesOf(l.Revocations)...)
		if after = l.Next; after == "" {
			break
		}
		if len(got) > 10 {
			t.Fatal("paging does not end")
		}
	}
	if !slices.Equal(got, ids[2:]) {
		t.Fatalf("since +2s: %v, want %v", got, ids[2:])
	}
	all, err := h.f.RevocationsSince(time.Time{})
	if err != nil || !slices.Equal(devicesOf(all), ids) {
		t.Fatalf("all: %v, %v", devicesOf(all), err)
	}
	wantCode(t, h.do(nil, listRevocations(0, "not-a-cursor", 0)), syncpb.Code_CODE_INVALID_ARGUMENT)

	// A revocation past the retention prunes the old ones.
	h.now = h.now.Add(syncproto.RevocationRetention + time.Minute)
	d := mustOK(t, h.do(ana, registerDevice("late"))).GetDevice()
	mustOK(t, h.do(ana, revoke(d.Id)))
	all, err = h.f.RevocationsSince(time.Time{})
	if err != nil || !slices.Equal(devicesOf(all), []string{d.Id}) {
		t.Fatalf("after the retention: %v, %v", devicesOf(all), err)
	}
}
