package directory

import (
	"time"

	"github.com/parley-chat/parley/core/internal/cmdpb"
	"github.com/parley-chat/parley/core/internal/kvfsm"
	"github.com/parley-chat/parley/syncproto"
	"github.com/parley-chat/parley/syncproto/syncpb"
)

// A device's refresh-token family is kept in its record (Device.refresh),
// so that revoking the device and rotating its tokens are decided on the
// same state.

var (
	errRevokedLogin   = syncproto.Errorf(syncpb.Code_CODE_FORBIDDEN, "device has been revoked; log in without device_id to register a new one")
	errRevokedRefresh = syncproto.Errorf(syncpb.Code_CODE_UNAUTHENTICATED, "device has been revoked; log in again")
	errSuperseded     = syncproto.Errorf(syncpb.Code_CODE_UNAUTHENTICATED, "refresh token was replaced by a later log-in of this device; log in again")
	errFutureToken    = syncproto.Errorf(syncpb.Code_CODE_UNAUTHENTICATED, "refresh token is not one this device was issued")
	errPasswordChange = syncproto.Errorf(syncpb.Code_CODE_REVOKED, "the password changed on another device after this refresh token was issued; log in again")
)

func rotationResponse(o syncpb.RefreshOutcome, d *syncpb.Device) *syncpb.CoreResponse {
	return &syncpb.CoreResponse{Result: &syncpb.CoreResponse_RefreshRotation{RefreshRotation: &syncpb.RefreshRotation{Outcome: o, Device: d}}}
}

func putDevice(tx *kvfsm.Tx, d *syncpb.Device) error {
	b, err := encode(d)
	if err != nil {
		return err
	}
	tx.Set(deviceKey(d.Id), b)
	return nil
}

// prepareStartTokenFamily chooses the new family's id.
func (f *FSM) prepareStartTokenFamily(caller *syncpb.Caller, req *syncpb.StartTokenFamilyRequest, now int64) (*cmdpb.Command, *syncpb.CoreResponse, error) {
	if err := checkCaller(caller); err != nil {
		return nil, nil, err
	}
	err := f.view(func(v *kvfsm.View) error {
		d, err := ownDevice(v, caller, req.GetDeviceId())
		if err == nil && d.Revoked {
			err = errRevokedLogin
		}
		return err
	})
	if err != nil {
		return nil, nil, err
	}
	return &cmdpb.Command{
		Caller: caller, TsUnixMs: now, NewId: syncproto.NewTokenFamilyID(),
		Op: &cmdpb.Command_StartTokenFamily{StartTokenFamily: req},
	}, nil, nil
}

// applyStartTokenFamily replaces the device's family with a new one at
// generation 1, issued now.
func applyStartTokenFamily(tx *kvfsm.Tx, cmd *cmdpb.Command, req *syncpb.StartTokenFamilyRequest) (*syncpb.CoreResponse, error) {
	if err := checkCaller(cmd.Caller); err != nil {
		return nil, err
	}
	d, err := ownDevice(tx, cmd.Caller, req.GetDeviceId())
	if err != nil {
		return nil, err
	}
	if d.Revoked {
		return nil, errRevokedLogin
	}
	if !syncproto.ValidTokenFamilyID(cmd.NewId) {
		return nil, invalid("invalid generated family id")
	}
	d.Refresh = &syncpb.TokenFamily{Id: cmd.NewId, Generation: 1, IssuedUnixMs: cmd.TsUnixMs}
	if err := putDevice(tx, d); err != nil {
		return nil, err
	}
	return deviceResponse(d), nil
}

func checkRotateRefresh(req *syncpb.RotateRefreshRequest) error {
	switch {
	case req == nil:
		return syncproto.Errorf(syncpb.Code_CODE_MALFORMED, "empty request")
	case !syncproto.ValidTokenFamilyID(req.Family) || req.Generation == 0:
		return invalid("invalid token family or generation")
	case !syncproto.ValidID(req.RotationId):
		return invalid("invalid rotation id")
	case time.Duration(req.GraceMs)*time.Millisecond > maxRefreshGrace:
		return invalid("grace is longer than 5 minutes")
	}
	return nil
}

// prepareRotateRefresh refuses a revoked device at once; everything else
// is decided when the rotation applies, in log order.
func (f *FSM) prepareRotateRefresh(caller *syncpb.Caller, req *syncpb.RotateRefreshRequest, now int64) (*cmdpb.Command, *syncpb.CoreResponse, error) {
	if err := checkCaller(caller); err != nil {
		return nil, nil, err
	}
	if err := checkRotateRefresh(req); err != nil {
		return nil, nil, err
	}
	err := f.view(func(v *kvfsm.View) error {
		d, err := ownDevice(v, caller, req.GetDeviceId())
		if err == nil && d.Revoked {
			err = errRevokedRefresh
		}
		return err
	})
	if err != nil {
		return nil, nil, err
	}
	return &cmdpb.Command{Caller: caller, TsUnixMs: now, Op: &cmdpb.Command_RotateRefresh{RotateRefresh: req}}, nil, nil
}

// applyRotateRefresh decides what a presented refresh token (family F,
// generation g) gets, against the device's family (id, generation G):
//
//   - revoked device, or F not the device's family: UNAUTHENTICATED;
//   - a family already marked reused: REUSED again;
//   - g == G: ROTATED, the family moves to G+1, issued at the command's time;
//   - g == G-1, and either the rotation to G had this rotation id (the
//     edge retrying) or it is at most grace_ms old: REPEATED, G unchanged;
//   - any other g < G: REUSED, and the family is marked reused;
//   - g > G: UNAUTHENTICATED (no such token was issued).
func applyRotateRefresh(tx *kvfsm.Tx, cmd *cmdpb.Command, req *syncpb.RotateRefreshRequest) (*syncpb.CoreResponse, error) {
	if err := checkCaller(cmd.Caller); err != nil {
		return nil, err
	}
	if err := checkRotateRefresh(req); err != nil {
		return nil, err
	}
	d, err := ownDevice(tx, cmd.Caller, req.DeviceId)
	if err != nil {
		return nil, err
	}
	if d.Revoked {
		return nil, errRevokedRefresh
	}
	fam := d.Refresh
	if fam == nil || fam.Id != req.Family {
		return nil, errSuperseded
	}
	if fam.Reused {
		return rotationResponse(syncpb.RefreshOutcome_REFRESH_OUTCOME_REUSED, d), nil
	}
	// The current generation is the family's newest token: when it
	// predates the device's not-before time, every token of it does.
	if fam.IssuedUnixMs < d.TokensNotBeforeUnixMs {
		return nil, errPasswordChange
	}
	switch g := req.Generation; {
	case g == fam.Generation:
		fam.Generation++
		fam.IssuedUnixMs = cmd.TsUnixMs
		fam.RotationId = req.RotationId
		if err := putDevice(tx, d); err != nil {
			return nil, err
		}
		return rotationResponse(syncpb.RefreshOutcome_REFRESH_OUTCOME_ROTATED, d), nil
	case g > fam.Generation:
		return nil, errFutureToken
	case g+1 == fam.Generation && (fam.RotationId == req.RotationId ||
		req.GraceMs > 0 && cmd.TsUnixMs-fam.IssuedUnixMs <= int64(req.GraceMs)):
		return rotationResponse(syncpb.RefreshOutcome_REFRESH_OUTCOME_REPEATED, d), nil
	default:
		fam.Reused = true
		if err := putDevice(tx, d); err != nil {
			return nil, err
		}
		return rotationResponse(syncpb.RefreshOutcome_REFRESH_OUTCOME_REUSED, d), nil
	}
}
