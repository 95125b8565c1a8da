package session

import (
	"context"

	"github.com/parley-chat/parley/syncproto"
	"github.com/parley-chat/parley/syncproto/syncpb"
)

// Presence is the edge's presence service (edge/presence, adapted in
// package edge). Config.Presence nil turns presence off.
type Presence interface {
	// Join reports the device connected (it must not block); presence
	// changes of the users it comes to watch go to deliver, which must not
	// block either.
	Join(caller *syncpb.Caller, deliver func(*syncpb.PresenceUpdate)) PresenceSession
}

// PresenceSession is one session's presence.
type PresenceSession interface {
	// Watch watches exactly userIDs (none: everyone the caller may watch),
	// as far as the core allows, and returns their current state.
	Watch(ctx context.Context, userIDs []string) ([]*syncpb.PresenceUpdate, error)
	// States is the newest known state of each watched user.
	States() []*syncpb.PresenceUpdate
	// Add also watches these users (new members of the user's
	// conversations, as the core told); it must not block.
	Add(states []*syncpb.PresenceUpdate)
	// Leave stops watching and reports the device gone; idempotent.
	Leave()
}

// pushPresence queues one presence change for the device.
func (s *session) pushPresence(p *syncpb.PresenceUpdate) {
	s.push(&syncpb.Frame{Body: &syncpb.Frame_Presence{Presence: p}})
}

// catchUpPresence is the initial presence of the users the device may
// watch, for the catch-up SyncResponse; nil when presence is off or
// unavailable (the device can ask again with PresenceSubscribe).
func (s *session) catchUpPresence(ctx context.Context) []*syncpb.PresenceUpdate {
	if s.pres == nil {
		return nil
	}
	cctx, cancel := context.WithTimeout(ctx, s.cfg.RequestTimeout)
	defer cancel()
	list, err := s.pres.Watch(cctx, nil)
	if err != nil {
		s.log.Debug("presence at session start", "err", err)
	}
	return list
}

// presenceSubscribe answers a PresenceSubscribe: a SyncResponse carrying
// only the presence of the users now watched.
func (s *session) presenceSubscribe(ctx context.Context, id uint64, req *syncpb.PresenceSubscribe) (*syncpb.Frame, error) {
	if s.pres == nil {
		return nil, syncproto.Errorf(syncpb.Code_CODE_FORBIDDEN, "presence is off on this server")
	}
	cctx, cancel := context.WithTimeout(ctx, s.cfg.RequestTimeout)
	defer cancel()
	list, err := s.pres.Watch(cctx, req.GetUserIds())
	if err != nil {
		return nil, err
	}
	return &syncpb.Frame{Id: id, Body: &syncpb.Frame_SyncResponse{SyncResponse: &syncpb.SyncResponse{Presence: list}}}, nil
}
