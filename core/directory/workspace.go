package directory

import (
	"google.golang.org/protobuf/proto"

	"github.com/parley-chat/parley/core/internal/cmdpb"
	"github.com/parley-chat/parley/core/internal/kvfsm"
	"github.com/parley-chat/parley/syncproto"
	"github.com/parley-chat/parley/syncproto/syncpb"
)

// Workspace settings: the workspace's owner changes them (one setting:
// whether members' presence is shown); any member reads them.

var errNotOwner = syncproto.Errorf(syncpb.Code_CODE_FORBIDDEN, "only the workspace's owner may change its settings")

// callerWorkspace loads the caller's workspace, and whether the caller owns it.
func callerWorkspace(g kvfsm.Getter, caller *syncpb.Caller) (*syncpb.Workspace, bool, error) {
	if err := checkCaller(caller); err != nil {
		return nil, false, err
	}
	ws := &syncpb.Workspace{}
	ok, err := getProto(g, workspaceKey(caller.WorkspaceId), ws)
	if err != nil {
		return nil, false, err
	}
	cred, found, err := getCredentials(g, caller.UserId)
	if err != nil {
		return nil, false, err
	}
	if !ok || !found || cred.GetUser().GetWorkspaceId() != caller.WorkspaceId {
		return nil, false, syncproto.Errorf(syncpb.Code_CODE_NOT_FOUND, "no such workspace")
	}
	return ws, cred.GetUser().GetWorkspaceRole() == RoleOwner, nil
}

func workspaceResponse(ws *syncpb.Workspace) *syncpb.CoreResponse {
	return &syncpb.CoreResponse{Result: &syncpb.CoreResponse_Workspace{Workspace: ws}}
}

func (f *FSM) getWorkspace(caller *syncpb.Caller) (*syncpb.CoreResponse, error) {
	var resp *syncpb.CoreResponse
	err := f.view(func(v *kvfsm.View) error {
		ws, _, err := callerWorkspace(v, caller)
		if err == nil {
			resp = workspaceResponse(ws)
		}
		return err
	})
	return resp, err
}

// updated is ws with req's settings; changed reports a difference.
func updated(ws *syncpb.Workspace, req *syncpb.UpdateWorkspaceRequest) (next *syncpb.Workspace, changed bool) {
	next = proto.Clone(ws).(*syncpb.Workspace)
	if req.PresenceOff != nil {
		next.PresenceOff = req.GetPresenceOff()
	}
	if req.SearchOff != nil {
		next.SearchOff = req.GetSearchOff()
	}
	if req.PushNoContent != nil {
		next.PushNoContent = req.GetPushNoContent()
	}
	return next, !proto.Equal(next, ws)
}

func (f *FSM) prepareUpdateWorkspace(caller *syncpb.Caller, req *syncpb.UpdateWorkspaceRequest, now int64) (*cmdpb.Command, *syncpb.CoreResponse, error) {
	if req == nil {
		return nil, nil, syncproto.Errorf(syncpb.Code_CODE_MALFORMED, "empty request")
	}
	var ws *syncpb.Workspace
	err := f.view(func(v *kvfsm.View) error {
		var owner bool
		var err error
		ws, owner, err = callerWorkspace(v, caller)
		if err == nil && !owner {
			err = errNotOwner
		}
		return err
	})
	if err != nil {
		return nil, nil, err
	}
	if _, changed := updated(ws, req); !changed {
		return nil, workspaceResponse(ws), nil
	}
	return &cmdpb.Command{Caller: caller, TsUnixMs: now, Op: &cmdpb.Command_UpdateWorkspace{UpdateWorkspace: req}}, nil, nil
}

func applyUpdateWorkspace(tx *kvfsm.Tx, cmd *cmdpb.Command, req *syncpb.UpdateWorkspaceRequest) (*syncpb.CoreResponse, error) {
	ws, owner, err := callerWorkspace(tx, cmd.Caller)
	if err != nil {
		return nil, err
	}
	if !owner {
		return nil, errNotOwner
	}
	next, changed := updated(ws, req)
	if changed {
		b, err := encode(next)
		if err != nil {
			return nil, err
		}
		tx.Set(workspaceKey(next.Id), b)
	}
	return workspaceResponse(next), nil
}

// PresenceOff reports whether a workspace's owner turned presence off,
// from this node's state (a follower's may lag by a few entries).
func (f *FSM) PresenceOff(workspaceID string) (bool, error) {
	ws, err := f.workspace(workspaceID)
	return ws.GetPresenceOff(), err
}

// SearchOff reports whether a workspace's owner turned search off, from
// this node's state (a follower's may lag by a few entries).
func (f *FSM) SearchOff(workspaceID string) (bool, error) {
	ws, err := f.workspace(workspaceID)
	return ws.GetSearchOff(), err
}

// workspace reads a workspace from this node's state; nil if there is none.
func (f *FSM) workspace(id string) (*syncpb.Workspace, error) {
	var out *syncpb.Workspace
	err := f.view(func(v *kvfsm.View) error {
		ws := &syncpb.Workspace{}
		ok, err := getProto(v, workspaceKey(id), ws)
		if ok {
			out = ws
		}
		return err
	})
	return out, err
}
