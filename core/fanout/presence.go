package fanout

import (
	"context"

	"google.golang.org/protobuf/proto"

	"github.com/parley-chat/parley/core/shard"
	"github.com/parley-chat/parley/syncproto/syncpb"
)

// Membership notices: when a conversation gains members, each added
// member is told every other member's presence and the others are told
// the added members', on their user subjects; the edge passes the states
// on and widens the session's watched set (removed members keep watching
// until they reconnect). Large groups are left out, as in presence
// lookups, and so are workspaces whose presence is off.

// memberNoticeQueue bounds the membership changes waiting to be told
// (beyond it they are dropped: those members see each other's presence
// from their next connect).
const memberNoticeQueue = 1024

// PresenceView is what membership notices read of the node's presence.
// Both methods may be called from the Fanout's loop at any time.
type PresenceView interface {
	// Off reports whether presence is off in workspace ws.
	Off(ws string) bool
	// States are the current presence of users, one per user.
	States(users []string) map[string]*syncpb.PresenceUpdate
}

type memberNotice struct {
	src Source
	c   shard.Committed
}

// memberNotices queues cs's membership changes that added members (it
// never blocks).
func (f *Fanout) memberNotices(src Source, cs []shard.Committed) {
	if f.cfg.Presence == nil {
		return
	}
	for _, c := range cs {
		if !c.MembersChanged || len(c.Added) == 0 {
			continue
		}
		select {
		case f.notices <- memberNotice{src: src, c: c}:
		default:
			f.log.Debug("presence membership notice dropped", "conv", c.ConvID)
		}
	}
}

func (f *Fanout) noticeLoop(ctx context.Context) {
	for {
		select {
		case <-ctx.Done():
			return
		case nt := <-f.notices:
			f.notice(nt)
		}
	}
}

func (f *Fanout) notice(nt memberNotice) {
	m, err := f.members.get(nt.src, nt.c.ConvID)
	if err != nil || f.cfg.Presence.Off(m.Workspace) || f.cfg.LargeGroup.Is(len(m.Users)) {
		return
	}
	added := map[string]bool{}
	for _, u := range nt.c.Added {
		added[u] = true
	}
	states := f.cfg.Presence.States(m.Users)
	for _, to := range m.Users {
		d := &syncpb.Deliver{}
		for _, u := range m.Users {
			if u != to && (added[to] || added[u]) {
				d.Presence = append(d.Presence, states[u])
			}
		}
		if len(d.Presence) == 0 {
			continue
		}
		b, err := proto.Marshal(d)
		if err != nil {
			continue
		}
		f.send("presence notice", b, "", "", f.userSubjects([]string{to})...)
	}
}
