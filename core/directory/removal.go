package directory

import (
	"github.com/parley-chat/parley/core/internal/cmdpb"
	"github.com/parley-chat/parley/core/internal/kvfsm"
	"github.com/parley-chat/parley/syncproto"
	"github.com/parley-chat/parley/syncproto/syncpb"
)

// Removing a user from a workspace: its owner does it; the user's record
// stays (marked removed) so history still names who wrote what, but it
// cannot log in, every device it has is revoked, and it cannot be added to
// conversations again.

var (
	errNotOwnerRemove = syncproto.Errorf(syncpb.Code_CODE_FORBIDDEN, "only the workspace's owner may remove users")
	errRemoveOwner    = syncproto.Errorf(syncpb.Code_CODE_FORBIDDEN, "the workspace's owner cannot remove itself")
	errUserRemoved    = syncproto.Errorf(syncpb.Code_CODE_FORBIDDEN, "this user was removed from the workspace")
)

// removalTarget checks that caller owns its workspace and may remove
// user id, and loads that user's credentials.
func removalTarget(g kvfsm.Getter, caller *syncpb.Caller, id string) (*syncpb.Credentials, error) {
	if !syncproto.ValidID(id) {
		return nil, invalid("invalid user id")
	}
	_, owner, err := callerWorkspace(g, caller)
	if err != nil {
		return nil, err
	}
	c, ok, err := getCredentials(g, id)
	if err != nil {
		return nil, err
	}
	// Another workspace's user is not found before the role counts, so a
	// member learns nothing about who exists elsewhere.
	if !ok || c.GetUser().GetWorkspaceId() != caller.WorkspaceId {
		return nil, errNoSuchUser
	}
	switch {
	case !owner:
		return nil, errNotOwnerRemove
	case id == caller.UserId:
		return nil, errRemoveOwner
	}
	return c, nil
}

// prepareRemoveUser answers a user already removed at once.
func (f *FSM) prepareRemoveUser(caller *syncpb.Caller, req *syncpb.RemoveUserRequest, now int64) (*cmdpb.Command, *syncpb.CoreResponse, error) {
	if req == nil {
		return nil, nil, syncproto.Errorf(syncpb.Code_CODE_MALFORMED, "empty request")
	}
	var c *syncpb.Credentials
	err := f.view(func(v *kvfsm.View) error {
		var err error
		c, err = removalTarget(v, caller, req.UserId)
		return err
	})
	if err != nil {
		return nil, nil, err
	}
	if c.User.Removed {
		return nil, userResponse(c.User), nil
	}
	return &cmdpb.Command{Caller: caller, TsUnixMs: now, Op: &cmdpb.Command_RemoveUser{RemoveUser: req}}, nil, nil
}

// applyRemoveUser marks the user removed and revokes every device of it
// that is not revoked yet, with one revocation.
func applyRemoveUser(tx *kvfsm.Tx, index uint64, cmd *cmdpb.Command, req *syncpb.RemoveUserRequest) (*syncpb.CoreResponse, error) {
	c, err := removalTarget(tx, cmd.Caller, req.GetUserId())
	if err != nil {
		return nil, err
	}
	if c.User.Removed {
		return userResponse(c.User), nil
	}
	c.User.Removed = true
	b, err := encode(c)
	if err != nil {
		return nil, err
	}
	tx.Set(userKey(c.User.Id), b)
	ts := revokedAt(cmd.TsUnixMs)
	rv := &syncpb.Revocation{WorkspaceId: c.User.WorkspaceId, UserId: c.User.Id, NotBeforeUnixMs: syncproto.NotBeforeAll,
		Reason: syncpb.RevocationReason_REVOCATION_REASON_USER_REMOVED, RevokedUnixMs: ts}
	return revokeDevices(tx, index, c.User, "", rv, func(d *syncpb.Device) error { return markRevoked(tx, d) })
}
