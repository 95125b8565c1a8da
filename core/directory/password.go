package directory

import (
	"github.com/parley-chat/parley/core/internal/cmdpb"
	"github.com/parley-chat/parley/core/internal/kvfsm"
	"github.com/parley-chat/parley/syncproto"
	"github.com/parley-chat/parley/syncproto/syncpb"
)

// A password change replaces the caller's hash, compare-and-swap on the
// hash the edge checked the current password against, and revokes the
// tokens of the user's other devices issued before it (their sessions end;
// they log in again). The device that changed it keeps its tokens.

var errPasswordChanged = syncproto.Errorf(syncpb.Code_CODE_CONFLICT, "the password was changed meanwhile; try again")

func checkChangePassword(req *syncpb.ChangePasswordRequest) error {
	switch {
	case req == nil:
		return syncproto.Errorf(syncpb.Code_CODE_MALFORMED, "empty request")
	case !validHash(req.PasswordHash) || !validHash(req.PreviousHash):
		return invalid("invalid password hash")
	}
	return nil
}

// ownCredentials loads the caller's credentials; the caller must be a user
// of its workspace, with the stored hash still previous.
func ownCredentials(g kvfsm.Getter, caller *syncpb.Caller, previous string) (*syncpb.Credentials, error) {
	if err := checkCaller(caller); err != nil {
		return nil, err
	}
	c, ok, err := getCredentials(g, caller.UserId)
	if err != nil {
		return nil, err
	}
	if !ok || c.User.GetWorkspaceId() != caller.WorkspaceId {
		return nil, errNoSuchUser
	}
	if c.PasswordHash != previous {
		return nil, errPasswordChanged
	}
	return c, nil
}

func (f *FSM) prepareChangePassword(caller *syncpb.Caller, req *syncpb.ChangePasswordRequest, now int64) (*cmdpb.Command, *syncpb.CoreResponse, error) {
	if err := checkChangePassword(req); err != nil {
		return nil, nil, err
	}
	err := f.view(func(v *kvfsm.View) error {
		_, err := ownCredentials(v, caller, req.PreviousHash)
		return err
	})
	if err != nil {
		return nil, nil, err
	}
	return &cmdpb.Command{Caller: caller, TsUnixMs: now, Op: &cmdpb.Command_ChangePassword{ChangePassword: req}}, nil, nil
}

func applyChangePassword(tx *kvfsm.Tx, index uint64, cmd *cmdpb.Command, req *syncpb.ChangePasswordRequest) (*syncpb.CoreResponse, error) {
	if err := checkChangePassword(req); err != nil {
		return nil, err
	}
	c, err := ownCredentials(tx, cmd.Caller, req.PreviousHash)
	if err != nil {
		return nil, err
	}
	c.PasswordHash = req.PasswordHash
	b, err := encode(c)
	if err != nil {
		return nil, err
	}
	tx.Set(userKey(c.User.Id), b)
	ts := revokedAt(cmd.TsUnixMs)
	rv := &syncpb.Revocation{WorkspaceId: c.User.WorkspaceId, UserId: c.User.Id, NotBeforeUnixMs: ts,
		Reason: syncpb.RevocationReason_REVOCATION_REASON_PASSWORD_CHANGED, RevokedUnixMs: ts}
	return revokeDevices(tx, index, c.User, cmd.Caller.DeviceId, rv, func(d *syncpb.Device) error {
		d.TokensNotBeforeUnixMs = ts
		return putDevice(tx, d)
	})
}
