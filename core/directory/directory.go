// Package directory is the replicated state machine of the directory group:
// workspaces, users and devices.
//
// Rules:
//   - register_user creates the workspace, with the user as its owner, when
//     the name is new; otherwise the user joins it as a member. Workspace
//     names and usernames are lower-cased, 1..MaxNameLen of [a-z0-9._-]
//     starting with a letter or digit; a username is unique per workspace
//     (CONFLICT), except that repeating a registration with the same
//     password hash (a client's retry) returns the user.
//   - get_credentials, without a caller, serves the edge's log-in check;
//     get_device without a caller sees any device. get_device with a
//     caller, list_devices, revoke_device, start_token_family and
//     rotate_refresh see only the caller's own devices (another user's
//     device is NOT_FOUND).
//   - lookup_users answers only for users of the caller's workspace;
//     unknown ids and names are left out.
//   - A user has at most MaxDevices devices that are not revoked.
//   - Each device has at most one refresh-token family: the refresh tokens
//     that descend from its latest log-in (start_token_family, which
//     replaces the one before), one generation current at a time.
//     rotate_refresh with the current generation advances it (ROTATED);
//     in log order, so of two rotations with one token the first wins.
//     The generation just replaced is answered the current one again
//     (REPEATED) when the same rotation is retried (same rotation_id) or
//     within the grace the edge asks for; any other older generation is
//     reuse: the family is marked reused and every token of it gets
//     REUSED, for the edge to revoke the device. A token of another
//     family (an earlier log-in) and any token of a revoked device are
//     UNAUTHENTICATED; a family whose current generation predates the
//     device's tokens_not_before_unix_ms (a password change) is REVOKED.
//   - revoke_device and change_password revoke tokens: their responses
//     carry the syncpb.Revocation, Config.OnRevoke hears it, and
//     list_revocations lists it for syncproto.RevocationRetention.
//     change_password revokes the tokens of the caller's other devices
//     issued before it (Device.tokens_not_before_unix_ms), and applies only
//     while the stored hash is the one the edge checked (CONFLICT).
//   - get_credentials by user_id answers only the caller's own.
//   - remove_user (the workspace's owner only, not itself) marks the user
//     removed and revokes all its devices (a revocation like
//     revoke_device's). A removed user's credentials are not found by
//     name (no log-in), lookups by username leave it out, and lookups by
//     id show it removed (the shards refuse to add it).
package directory

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"time"

	"github.com/dgraph-io/badger/v4"
	"github.com/hashicorp/raft"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/reflect/protoreflect"

	"github.com/parley-chat/parley/core/internal/cmdpb"
	"github.com/parley-chat/parley/core/internal/kvfsm"
	"github.com/parley-chat/parley/syncproto"
	"github.com/parley-chat/parley/syncproto/syncpb"
)

// MaxDevices is how many devices a user may have that are not revoked.
const MaxDevices = 100

// Config of the directory state machine.
type Config struct {
	// Group is the raft group's name ("dir"); it names the keys.
	Group string
	// Sync makes the DB's writes durable; called before snapshots and after
	// restores. Nil skips it.
	Sync func() error
	// OnRevoke, when set, is called from the apply goroutine after each
	// batch of entries is stored, with the revocations they committed, in
	// log order, on every replica. It must not block.
	OnRevoke func([]*syncpb.Revocation)
	// CheckPushTarget, when set, vets a push target a device registers
	// (the node's SSRF guard and its gateways), on the leader before the
	// command is proposed; its error is shown to the client. Nil accepts
	// what syncproto.ValidateSetPushTarget accepts.
	CheckPushTarget func(*syncpb.PushTarget) error
	Logger          *slog.Logger
}

// Validate reports the first bad field.
func (c *Config) Validate() error {
	if c.Group == "" {
		return errors.New("directory: Config.Group is required")
	}
	return nil
}

// FSM is the directory's state machine. Raft calls Apply, ApplyBatch,
// Snapshot and Restore from one goroutine; Prepare, LookupUsers and
// AppliedIndex may run concurrently with them.
type FSM struct {
	m        *kvfsm.Machine
	log      *slog.Logger
	onRevoke func([]*syncpb.Revocation)
	checkPT  func(*syncpb.PushTarget) error
}

var _ raft.BatchingFSM = (*FSM)(nil)

// New returns the directory state machine of cfg.Group over db.
func New(db *badger.DB, cfg Config) (*FSM, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	log := cfg.Logger
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	f := &FSM{log: log.With("group", cfg.Group), onRevoke: cfg.OnRevoke, checkPT: cfg.CheckPushTarget}
	m, err := kvfsm.New(db, kvfsm.Config{Group: cfg.Group, Apply: f.apply, Sync: cfg.Sync, Logger: log})
	if err != nil {
		return nil, fmt.Errorf("directory: %w", err)
	}
	f.m = m
	return f, nil
}

// Apply applies one committed entry; it returns a *syncpb.CoreResponse.
func (f *FSM) Apply(l *raft.Log) any { return f.ApplyBatch([]*raft.Log{l})[0] }

// ApplyBatch applies committed entries in one transaction where they fit,
// then hands the revocations they stored to Config.OnRevoke.
func (f *FSM) ApplyBatch(logs []*raft.Log) []any {
	out := f.m.ApplyBatch(logs)
	if f.onRevoke == nil {
		return out
	}
	var revoked []*syncpb.Revocation
	for _, r := range out {
		// Rejected and unstored entries answer an error instead.
		if resp, ok := r.(*syncpb.CoreResponse); ok && resp.GetError() == nil && resp.GetRevocation() != nil {
			revoked = append(revoked, resp.GetRevocation())
		}
	}
	if len(revoked) > 0 {
		f.onRevoke(revoked)
	}
	return out
}

// Snapshot captures the directory's keys; see kvfsm.
func (f *FSM) Snapshot() (raft.FSMSnapshot, error) { return f.m.Snapshot() }

// Restore replaces the directory's keys with a snapshot's; see kvfsm.
func (f *FSM) Restore(rc io.ReadCloser) error { return f.m.Restore(rc) }

// AppliedIndex is the last raft index whose effects are in the DB.
func (f *FSM) AppliedIndex() (uint64, error) { return f.m.AppliedIndex() }

// Prepare answers reads from local state (resp) and validates writes,
// returning the command to propose (cmd), with the ids it creates. err is
// a *syncproto.Error for a rejection, or a storage error.
func (f *FSM) Prepare(_ context.Context, req *syncpb.CoreRequest, now time.Time) (cmd *cmdpb.Command, resp *syncpb.CoreResponse, err error) {
	if err := f.m.Err(); err != nil {
		f.log.Warn("prepare on a failed state machine", "err", err)
		return nil, nil, syncproto.Errorf(syncpb.Code_CODE_UNAVAILABLE, "directory unavailable, retry")
	}
	r, body, err := syncproto.RequestOf(req)
	if err != nil {
		return nil, nil, err
	}
	h, ok := prepares[r.Op]
	if !ok {
		return nil, nil, syncproto.Errorf(syncpb.Code_CODE_INVALID_ARGUMENT, "not a directory request")
	}
	return h(f, req.GetCaller(), body, now.UnixMilli())
}

// prepareFunc prepares one request: a read's answer, or a write's command.
type prepareFunc func(f *FSM, caller *syncpb.Caller, body proto.Message, ms int64) (*cmdpb.Command, *syncpb.CoreResponse, error)

// prepares are the directory's handlers, by CoreRequest op: the requests
// whose row in syncproto.Requests is RouteDirectory.
var prepares = map[protoreflect.Name]prepareFunc{
	"register_user": write(func(f *FSM, _ *syncpb.Caller, req *syncpb.RegisterUserRequest, ms int64) (*cmdpb.Command, *syncpb.CoreResponse, error) {
		return f.prepareRegisterUser(req, ms)
	}),
	"get_credentials": read((*FSM).getCredentials),
	"lookup_users":    read((*FSM).lookupUsers),
	"register_device": write((*FSM).prepareRegisterDevice),
	"list_devices": read(func(f *FSM, c *syncpb.Caller, _ *syncpb.ListDevicesRequest) (*syncpb.CoreResponse, error) {
		return f.listDevices(c)
	}),
	"get_device":    read((*FSM).getDevice),
	"revoke_device": write((*FSM).prepareRevokeDevice),
	"get_workspace": read(func(f *FSM, c *syncpb.Caller, _ *syncpb.GetWorkspaceRequest) (*syncpb.CoreResponse, error) {
		return f.getWorkspace(c)
	}),
	"update_workspace":   write((*FSM).prepareUpdateWorkspace),
	"start_token_family": write((*FSM).prepareStartTokenFamily),
	"rotate_refresh":     write((*FSM).prepareRotateRefresh),
	"change_password":    write((*FSM).prepareChangePassword),
	"list_revocations": read(func(f *FSM, _ *syncpb.Caller, req *syncpb.ListRevocationsRequest) (*syncpb.CoreResponse, error) {
		return f.listRevocations(req)
	}),
	"remove_user":     write((*FSM).prepareRemoveUser),
	"set_push_target": write((*FSM).prepareSetPushTarget),
}

// write adapts a write's typed handler.
func write[T proto.Message](h func(f *FSM, caller *syncpb.Caller, req T, ms int64) (*cmdpb.Command, *syncpb.CoreResponse, error)) prepareFunc {
	return func(f *FSM, caller *syncpb.Caller, body proto.Message, ms int64) (*cmdpb.Command, *syncpb.CoreResponse, error) {
		return h(f, caller, body.(T), ms)
	}
}

// read adapts a read's typed handler.
func read[T proto.Message](h func(f *FSM, caller *syncpb.Caller, req T) (*syncpb.CoreResponse, error)) prepareFunc {
	return func(f *FSM, caller *syncpb.Caller, body proto.Message, _ int64) (*cmdpb.Command, *syncpb.CoreResponse, error) {
		resp, err := h(f, caller, body.(T))
		return nil, resp, err
	}
}

func (f *FSM) apply(tx *kvfsm.Tx, index uint64, cmd *cmdpb.Command) (*syncpb.CoreResponse, error) {
	var resp *syncpb.CoreResponse
	var err error
	switch op := cmd.GetOp().(type) {
	case *cmdpb.Command_RegisterUser:
		resp, err = applyRegisterUser(tx, cmd, op.RegisterUser)
	case *cmdpb.Command_RegisterDevice:
		resp, err = applyRegisterDevice(tx, cmd, op.RegisterDevice)
	case *cmdpb.Command_RevokeDevice:
		resp, err = applyRevokeDevice(tx, index, cmd, op.RevokeDevice)
	case *cmdpb.Command_UpdateWorkspace:
		resp, err = applyUpdateWorkspace(tx, cmd, op.UpdateWorkspace)
	case *cmdpb.Command_StartTokenFamily:
		resp, err = applyStartTokenFamily(tx, cmd, op.StartTokenFamily)
	case *cmdpb.Command_RotateRefresh:
		resp, err = applyRotateRefresh(tx, cmd, op.RotateRefresh)
	case *cmdpb.Command_ChangePassword:
		resp, err = applyChangePassword(tx, index, cmd, op.ChangePassword)
	case *cmdpb.Command_RemoveUser:
		resp, err = applyRemoveUser(tx, index, cmd, op.RemoveUser)
	case *cmdpb.Command_SetPushTarget:
		resp, err = applySetPushTarget(tx, cmd, op.SetPushTarget)
	default:
		err = syncproto.Errorf(syncpb.Code_CODE_INVALID_ARGUMENT, "not a directory command")
	}
	var werr *syncproto.Error
	if errors.As(err, &werr) {
		return &syncpb.CoreResponse{Error: werr.Proto()}, nil
	}
	return resp, err
}

func (f *FSM) view(fn func(v *kvfsm.View) error) error { return f.m.View(fn) }

// LookupUsers returns the users among userIDs that exist in workspaceID,
// in the order asked, from this node's state (stale on a follower).
func (f *FSM) LookupUsers(workspaceID string, userIDs []string) ([]*syncpb.User, error) {
	resp, err := f.lookupUsers(&syncpb.Caller{WorkspaceId: workspaceID}, &syncpb.LookupUsersRequest{UserIds: userIDs})
	if err != nil {
		return nil, err
	}
	return resp.GetUsers().GetUsers(), nil
}

func invalid(msg string) error {
	return syncproto.Errorf(syncpb.Code_CODE_INVALID_ARGUMENT, "%s", msg)
}

var errNoCaller = syncproto.Errorf(syncpb.Code_CODE_UNAUTHENTICATED, "request has no verified caller")

// checkCaller requires a verified user.
func checkCaller(c *syncpb.Caller) error {
	if c == nil || !syncproto.ValidID(c.WorkspaceId) || !syncproto.ValidID(c.UserId) {
		return errNoCaller
	}
	return nil
}

// checkID validates an id the leader generated for a command.
func checkNewID(id, prefix string) error {
	if !syncproto.ValidID(id) || len(id) <= len(prefix) || id[:len(prefix)] != prefix {
		return invalid("invalid generated id")
	}
	return nil
}
