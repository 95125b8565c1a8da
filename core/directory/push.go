package directory

import (
	"google.golang.org/protobuf/proto"

	"github.com/parley-chat/parley/core/internal/cmdpb"
	"github.com/parley-chat/parley/core/internal/kvfsm"
	"github.com/parley-chat/parley/syncproto"
	"github.com/parley-chat/parley/syncproto/syncpb"
)

// Push targets (docs/push.md): a device has at most one, set and removed
// by its user (set_push_target), removed when the device is revoked, and
// removed by the core when its push service says it is gone (with
// if_target, so a newer registration is kept).

func pushTargetKey(dev string) []byte { return []byte("p/" + dev) }

var errRevokedDevice = syncproto.Errorf(syncpb.Code_CODE_FORBIDDEN, "the device is revoked")

func (f *FSM) prepareSetPushTarget(caller *syncpb.Caller, req *syncpb.SetPushTargetRequest, now int64) (*cmdpb.Command, *syncpb.CoreResponse, error) {
	if err := checkCaller(caller); err != nil {
		return nil, nil, err
	}
	if err := syncproto.ValidateSetPushTarget(req); err != nil {
		return nil, nil, err
	}
	if req.Target != nil && f.checkPT != nil {
		if err := f.checkPT(req.Target); err != nil {
			return nil, nil, err
		}
	}
	err := f.view(func(v *kvfsm.View) error {
		d, err := ownDevice(v, caller, req.DeviceId)
		if err == nil && d.Revoked {
			err = errRevokedDevice
		}
		return err
	})
	if err != nil {
		return nil, nil, err
	}
	return &cmdpb.Command{Caller: caller, TsUnixMs: now, Op: &cmdpb.Command_SetPushTarget{SetPushTarget: req}}, nil, nil
}

func applySetPushTarget(tx *kvfsm.Tx, cmd *cmdpb.Command, req *syncpb.SetPushTargetRequest) (*syncpb.CoreResponse, error) {
	if err := checkCaller(cmd.Caller); err != nil {
		return nil, err
	}
	if err := syncproto.ValidateSetPushTarget(req); err != nil {
		return nil, err
	}
	d, err := ownDevice(tx, cmd.Caller, req.DeviceId)
	if err != nil {
		return nil, err
	}
	if d.Revoked {
		return nil, errRevokedDevice
	}
	if req.IfTarget != nil {
		cur := &syncpb.PushTarget{}
		ok, err := getProto(tx, pushTargetKey(d.Id), cur)
		if err != nil {
			return nil, err
		}
		if !ok || !proto.Equal(cur, req.IfTarget) {
			return &syncpb.CoreResponse{}, nil // replaced or removed meanwhile
		}
	}
	if req.Target == nil {
		tx.Delete(pushTargetKey(d.Id))
		return &syncpb.CoreResponse{}, nil
	}
	b, err := encode(req.Target)
	if err != nil {
		return nil, err
	}
	tx.Set(pushTargetKey(d.Id), b)
	return &syncpb.CoreResponse{}, nil
}

// PushTargets are the push targets of the devices of users in workspace
// (devices without one, revoked devices and users of other workspaces
// left out), from this node's state (a follower's may lag by a few
// entries).
func (f *FSM) PushTargets(workspace string, users []string) ([]*syncpb.DevicePushTarget, error) {
	var out []*syncpb.DevicePushTarget
	err := f.view(func(v *kvfsm.View) error {
		for _, u := range users {
			c, ok, err := getCredentials(v, u)
			if err != nil {
				return err
			}
			if !ok || c.User.GetWorkspaceId() != workspace || c.User.GetRemoved() {
				continue
			}
			var devs []string
			prefix := userDevicePrefix(u)
			err = v.Scan(prefix, nil, false, func(k, _ []byte) (bool, error) {
				devs = append(devs, string(k[len(prefix):]))
				return true, nil
			})
			if err != nil {
				return err
			}
			for _, d := range devs {
				t := &syncpb.PushTarget{}
				ok, err := getProto(v, pushTargetKey(d), t)
				if err != nil {
					return err
				}
				if ok {
					out = append(out, &syncpb.DevicePushTarget{UserId: u, DeviceId: d, Target: t})
				}
			}
		}
		return nil
	})
	return out, err
}

// PushNoContent reports whether a workspace's owner turned push content
// off, from this node's state.
func (f *FSM) PushNoContent(workspaceID string) (bool, error) {
	ws, err := f.workspace(workspaceID)
	return ws.GetPushNoContent(), err
}
