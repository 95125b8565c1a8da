package shard

import (
	"context"

	"github.com/parley-chat/parley/core/internal/cmdpb"
	"github.com/parley-chat/parley/core/internal/kvfsm"
	"github.com/parley-chat/parley/syncproto"
	"github.com/parley-chat/parley/syncproto/syncpb"
)

// Notification levels (docs/push.md): a member's choice of what is
// pushed to its offline devices, kept beside its membership record
// (n/<conv>/<user>, one byte; absent means all) and deleted with it.

func notifyKey(conv, user string) []byte { return []byte("n/" + conv + "/" + user) }

func (f *FSM) prepareSetNotifyLevel(_ context.Context, caller *syncpb.Caller, req *syncpb.SetNotifyLevelRequest, ms int64) (*cmdpb.Command, *syncpb.CoreResponse, error) {
	if err := checkCaller(caller); err != nil {
		return nil, nil, err
	}
	if err := syncproto.ValidateSetNotifyLevel(req); err != nil {
		return nil, nil, err
	}
	if err := f.view(func(v *kvfsm.View) error {
		_, _, err := access(v, caller, req.ConvId)
		return err
	}); err != nil {
		return nil, nil, err
	}
	return &cmdpb.Command{Caller: caller, TsUnixMs: ms, Op: &cmdpb.Command_SetNotifyLevel{SetNotifyLevel: req}}, nil, nil
}

func applySetNotifyLevel(tx *kvfsm.Tx, cmd *cmdpb.Command, req *syncpb.SetNotifyLevelRequest) (*syncpb.CoreResponse, error) {
	if err := syncproto.ValidateSetNotifyLevel(req); err != nil {
		return nil, err
	}
	if _, _, err := access(tx, cmd.Caller, req.ConvId); err != nil {
		return nil, err
	}
	if req.Level == syncpb.NotifyLevel_NOTIFY_LEVEL_ALL {
		tx.Delete(notifyKey(req.ConvId, cmd.Caller.UserId))
	} else {
		tx.Set(notifyKey(req.ConvId, cmd.Caller.UserId), []byte{byte(req.Level)})
	}
	return &syncpb.CoreResponse{}, nil
}

// NotifyLevel is user's notification level in conv, from this node's
// state (all when unset, or for a user who is not a member).
func (f *FSM) NotifyLevel(conv, user string) (syncpb.NotifyLevel, error) {
	level := syncpb.NotifyLevel_NOTIFY_LEVEL_ALL
	err := f.view(func(v *kvfsm.View) error {
		b, ok, err := v.Get(notifyKey(conv, user))
		if err == nil && ok && len(b) == 1 {
			level = syncpb.NotifyLevel(b[0])
		}
		return err
	})
	return level, err
}

// Title is conv's title and type from this node's state (ok false when
// conv does not exist).
func (f *FSM) Title(conv string) (title string, typ syncpb.ConversationType, ok bool, err error) {
	err = f.view(func(v *kvfsm.View) error {
		meta, found, err := getMeta(v, conv)
		if found {
			title, typ, ok = meta.Title, meta.Type, true
		}
		return err
	})
	return title, typ, ok, err
}
