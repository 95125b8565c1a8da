package directory

import (
	"testing"
	"time"

	"github.com/parley-chat/parley/syncproto"
	"github.com/parley-chat/parley/syncproto/syncpb"
)

func startFamily(dev string) *syncpb.CoreRequest {
	return &syncpb.CoreRequest{Op: &syncpb.CoreRequest_StartTokenFamily{StartTokenFamily: &syncpb.StartTokenFamilyRequest{DeviceId: dev}}}
}

func rotate(dev, family string, gen uint64, rotation string, grace time.Duration) *syncpb.CoreRequest {
	return &syncpb.CoreRequest{Op: &syncpb.CoreRequest_RotateRefresh{RotateRefresh: &syncpb.RotateRefreshRequest{
		DeviceId: dev, Family: family, Generation: gen, RotationId: rotation, GraceMs: uint32(grace / time.Millisecond)}}}
}

// familyOf returns the family a start or a rotation answered, failing on
// an error.
func familyOf(t testing.TB, resp *syncpb.CoreResponse) *syncpb.TokenFamily {
	t.Helper()
	mustOK(t, resp)
	if r := resp.GetRefreshRotation(); r != nil {
		return r.GetDevice().GetRefresh()
	}
	return resp.GetDevice().GetRefresh()
}

func wantOutcome(t testing.TB, resp *syncpb.CoreResponse, want syncpb.RefreshOutcome) *syncpb.TokenFamily {
	t.Helper()
	mustOK(t, resp)
	if got := resp.GetRefreshRotation().GetOutcome(); got != want {
		t.Fatalf("outcome %v, want %v", got, want)
	}
	return resp.GetRefreshRotation().GetDevice().GetRefresh()
}

// newFamilyHarness registers ana with a device whose family has started.
func newFamilyHarness(t *testing.T) (h *harness, ana *syncpb.Caller, dev string, fam *syncpb.TokenFamily) {
	t.Helper()
	h = newHarness(t)
	ana = callerOf(mustOK(t, h.do(nil, register("acme", "ana", hash))).GetUser())
	dev = mustOK(t, h.do(ana, registerDevice("phone"))).GetDevice().GetId()
	fam = familyOf(t, h.do(ana, startFamily(dev)))
	return h, ana, dev, fam
}

func TestStartTokenFamily(t *testing.T) {
	h, ana, dev, fam := newFamilyHarness(t)
	if !syncproto.ValidTokenFamilyID(fam.Id) || fam.Generation != 1 || fam.IssuedUnixMs != h.now.UnixMilli() || fam.RotationId != "" || fam.Reused {
		t.Fatalf("new family %v", fam)
	}
	stored := mustOK(t, h.do(nil, getDeviceReq(dev))).GetDevice().GetRefresh()
	if stored.GetId() != fam.Id || stored.GetGeneration() != 1 {
		t.Fatalf("stored family %v, answered %v", stored, fam)
	}
	// Logging in again replaces the family: the old one's tokens are
	// refused, without marking anything reused.
	h.now = h.now.Add(time.Second)
	next := familyOf(t, h.do(ana, startFamily(dev)))
	if next.Id == fam.Id || next.Generation != 1 {
		t.Fatalf("second family %v after %v", next, fam)
	}
	wantCode(t, h.do(ana, rotate(dev, fam.Id, 1, "r1", 0)), syncpb.Code_CODE_UNAUTHENTICATED)
	if f := mustOK(t, h.do(nil, getDeviceReq(dev))).GetDevice().GetRefresh(); f.Reused || f.Id != next.Id {
		t.Fatalf("family after an old family's token: %v", f)
	}

	bo := callerOf(mustOK(t, h.do(nil, register("acme", "bo", hash))).GetUser())
	wantCode(t, h.do(bo, startFamily(dev)), syncpb.Code_CODE_NOT_FOUND)
	wantCode(t, h.do(nil, startFamily(dev)), syncpb.Code_CODE_UNAUTHENTICATED)
	wantCode(t, h.do(ana, startFamily("d_nope")), syncpb.Code_CODE_NOT_FOUND)
	wantCode(t, h.do(ana, startFamily("D 1")), syncpb.Code_CODE_INVALID_ARGUMENT)
	mustOK(t, h.do(ana, revoke(dev)))
	wantCode(t, h.do(ana, startFamily(dev)), syncpb.Code_CODE_FORBIDDEN)
}

// Each rule of applyRotateRefresh, on a family at generation 1 (fresh)
// or rotated once to 2 by rotation "r1" at time t0.
func TestRotateRefresh(t *testing.T) {
	const grace = 10 * time.Second
	for _, tc := range []struct {
		name    string
		rotated bool          // rotate 1 -> 2 (rotation "r1") first
		after   time.Duration // from the last rotation to the request
		gen     uint64
		family  string // "" for the device's own
		rotID   string
		grace   time.Duration
		want    syncpb.RefreshOutcome
		code    syncpb.Code // instead of an outcome
		wantGen uint64      // the family's generation afterwards
		reused  bool
	}{
		{name: "current token rotates", gen: 1, rotID: "r1", want: syncpb.RefreshOutcome_REFRESH_OUTCOME_ROTATED, wantGen: 2},
		{name: "current token rotates again", rotated: true, after: time.Hour, gen: 2, rotID: "r2", want: syncpb.RefreshOutcome_REFRESH_OUTCOME_ROTATED, wantGen: 3},
		{name: "same rotation retried, no grace", rotated: true, after: time.Minute, gen: 1, rotID: "r1", want: syncpb.RefreshOutcome_REFRESH_OUTCOME_REPEATED, wantGen: 2},
		{name: "replaced token within the grace", rotated: true, after: grace, gen: 1, rotID: "r9", grace: grace, want: syncpb.RefreshOutcome_REFRESH_OUTCOME_REPEATED, wantGen: 2},
		{name: "replaced token after the grace", rotated: true, after: grace + time.Millisecond, gen: 1, rotID: "r9", grace: grace, want: syncpb.RefreshOutcome_REFRESH_OUTCOME_REUSED, wantGen: 2, reused: true},
		{name: "replaced token, no grace", rotated: true, gen: 1, rotID: "r9", want: syncpb.RefreshOutcome_REFRESH_OUTCOME_REUSED, wantGen: 2, reused: true},
		{name: "a leader's clock behind the rotation's", rotated: true, after: -time.Second, gen: 1, rotID: "r9", grace: grace, want: syncpb.RefreshOutcome_REFRESH_OUTCOME_REPEATED, wantGen: 2},
		{name: "token from the future", gen: 2, rotID: "r1", code: syncpb.Code_CODE_UNAUTHENTICATED, wantGen: 1},
		{name: "another family", gen: 1, family: "0123456789abcdef", rotID: "r1", code: syncpb.Code_CODE_UNAUTHENTICATED, wantGen: 1},
		{name: "generation 0", gen: 0, rotID: "r1", code: syncpb.Code_CODE_INVALID_ARGUMENT, wantGen: 1},
		{name: "no rotation id", gen: 1, code: syncpb.Code_CODE_INVALID_ARGUMENT, wantGen: 1},
		{name: "grace too long", gen: 1, rotID: "r1", grace: syncproto.MaxRefreshGrace + time.Millisecond, code: syncpb.Code_CODE_INVALID_ARGUMENT, wantGen: 1},
	} {
		t.Run(tc.name, func(t *testing.T) {
			h, ana, dev, fam := newFamilyHarness(t)
			if tc.rotated {
				h.now = h.now.Add(time.Minute)
				wantOutcome(t, h.do(ana, rotate(dev, fam.Id, 1, "r1", 0)), syncpb.RefreshOutcome_REFRESH_OUTCOME_ROTATED)
			}
			h.now = h.now.Add(tc.after)
			family := tc.family
			if family == "" {
				family = fam.Id
			}
			resp := h.do(ana, rotate(dev, family, tc.gen, tc.rotID, tc.grace))
			if tc.code != syncpb.Code_CODE_OK {
				wantCode(t, resp, tc.code)
			} else {
				got := wantOutcome(t, resp, tc.want)
				if got.Generation != tc.wantGen || got.Reused != tc.reused {
					t.Fatalf("answered family %v", got)
				}
				if tc.want == syncpb.RefreshOutcome_REFRESH_OUTCOME_ROTATED && (got.IssuedUnixMs != h.now.UnixMilli() || got.RotationId != tc.rotID) {
					t.Fatalf("rotated family %v, now %d", got, h.now.UnixMilli())
				}
			}
			stored := mustOK(t, h.do(nil, getDeviceReq(dev))).GetDevice().GetRefresh()
			if stored.Generation != tc.wantGen || stored.Reused != tc.reused || stored.Id != fam.Id {
				t.Fatalf("stored family %v", stored)
			}
		})
	}
}

// After reuse every token of the family, the newest too, is REUSED;
// after the device is revoked, UNAUTHENTICATED.
func TestRotateRefreshAfterReuse(t *testing.T) {
	h, ana, dev, fam := newFamilyHarness(t)
	wantOutcome(t, h.do(ana, rotate(dev, fam.Id, 1, "r1", 0)), syncpb.RefreshOutcome_REFRESH_OUTCOME_ROTATED)
	wantOutcome(t, h.do(ana, rotate(dev, fam.Id, 2, "r2", 0)), syncpb.RefreshOutcome_REFRESH_OUTCOME_ROTATED)
	// Generation 1 again: two behind, reuse whatever the grace.
	if f := wantOutcome(t, h.do(ana, rotate(dev, fam.Id, 1, "r3", syncproto.MaxRefreshGrace)), syncpb.RefreshOutcome_REFRESH_OUTCOME_REUSED); !f.Reused {
		t.Fatalf("family %v", f)
	}
	for _, gen := range []uint64{3, 2, 1} {
		wantOutcome(t, h.do(ana, rotate(dev, fam.Id, gen, "r4", 0)), syncpb.RefreshOutcome_REFRESH_OUTCOME_REUSED)
	}
	// Another user presenting the device's token: not found.
	bo := callerOf(mustOK(t, h.do(nil, register("acme", "bo", hash))).GetUser())
	wantCode(t, h.do(bo, rotate(dev, fam.Id, 3, "r5", 0)), syncpb.Code_CODE_NOT_FOUND)

	mustOK(t, h.do(ana, revoke(dev)))
	wantCode(t, h.do(ana, rotate(dev, fam.Id, 3, "r6", 0)), syncpb.Code_CODE_UNAUTHENTICATED)
	// Prepare refuses a revoked device without a command.
	if cmd, _ := h.prepare(ana, rotate(dev, fam.Id, 3, "r7", 0)); cmd != nil {
		t.Fatal("rotation of a revoked device was proposed")
	}
}

// Two rotations with one token prepared before either applies (two edges
// racing): the one applied first wins; the other is reuse, or with a
// grace, the same generation again.
func TestRotateRefreshRace(t *testing.T) {
	for _, tc := range []struct {
		name   string
		grace  time.Duration
		second syncpb.RefreshOutcome
	}{
		{"no grace", 0, syncpb.RefreshOutcome_REFRESH_OUTCOME_REUSED},
		{"grace", 30 * time.Second, syncpb.RefreshOutcome_REFRESH_OUTCOME_REPEATED},
	} {
		t.Run(tc.name, func(t *testing.T) {
			h, ana, dev, fam := newFamilyHarness(t)
			a, resp := h.prepare(ana, rotate(dev, fam.Id, 1, "edge-a", tc.grace))
			b, resp2 := h.prepare(ana, rotate(dev, fam.Id, 1, "edge-b", tc.grace))
			if resp != nil || resp2 != nil {
				t.Fatalf("prepare answered %v %v", resp, resp2)
			}
			first := wantOutcome(t, h.propose(a), syncpb.RefreshOutcome_REFRESH_OUTCOME_ROTATED)
			second := wantOutcome(t, h.propose(b), tc.second)
			if first.Generation != 2 || second.Generation != 2 || second.RotationId != "edge-a" {
				t.Fatalf("families %v then %v", first, second)
			}
		})
	}
}

// A password change on another device ends the refresh tokens of the
// user's other devices: their families answer REVOKED (within the grace
// too), until the device logs in again.
func TestRotateRefreshAfterPasswordChange(t *testing.T) {
	h, ana, tablet, fam := newFamilyHarness(t)
	phone := mustOK(t, h.do(ana, registerDevice("phone"))).GetDevice().GetId()
	familyOf(t, h.do(ana, startFamily(phone)))
	fam = wantOutcome(t, h.do(ana, rotate(tablet, fam.Id, 1, "r1", 0)), syncpb.RefreshOutcome_REFRESH_OUTCOME_ROTATED)

	h.now = h.now.Add(time.Second)
	onPhone := &syncpb.Caller{WorkspaceId: ana.WorkspaceId, UserId: ana.UserId, DeviceId: phone}
	mustOK(t, h.do(onPhone, changePassword("$argon2id$v=19$m=65536,t=1,p=4$bmV3$bmV3", hash)))
	wantCode(t, h.do(ana, rotate(tablet, fam.Id, fam.Generation, "r2", 0)), syncpb.Code_CODE_REVOKED)
	wantCode(t, h.do(ana, rotate(tablet, fam.Id, fam.Generation-1, "r1", syncproto.MaxRefreshGrace)), syncpb.Code_CODE_REVOKED)
	if f := mustOK(t, h.do(nil, getDeviceReq(tablet))).GetDevice().GetRefresh(); f.Generation != fam.Generation || f.Reused {
		t.Fatalf("family after refused rotations: %v, was %v", f, fam)
	}

	// The tablet logs in again: its new family rotates.
	h.now = h.now.Add(time.Second)
	next := familyOf(t, h.do(ana, startFamily(tablet)))
	wantOutcome(t, h.do(ana, rotate(tablet, next.Id, 1, "r3", 0)), syncpb.RefreshOutcome_REFRESH_OUTCOME_ROTATED)
}
