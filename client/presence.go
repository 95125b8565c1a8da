package client

import (
	"context"
	"slices"

	"github.com/parley-chat/parley/syncproto/syncpb"
)

// Presence chooses whose presence this device watches: exactly userIDs,
// or with none everyone this user may watch (the members of its
// conversations, large groups left out), which is also what every
// connection starts with. Users the server does not allow (no shared
// conversation) are left out. It returns their current state; OnPresence
// gets their changes from then on. The choice is made again after each
// reconnect (OnPresence gets the states then).
func (c *Client) Presence(ctx context.Context, userIDs ...string) ([]*syncpb.PresenceUpdate, error) {
	c.mu.Lock()
	c.watch = slices.Clone(userIDs)
	c.mu.Unlock()
	r, err := c.request(ctx, &syncpb.Frame{Body: &syncpb.Frame_PresenceSubscribe{PresenceSubscribe: &syncpb.PresenceSubscribe{UserIds: userIDs}}})
	if err != nil {
		return nil, err
	}
	return r.GetSyncResponse().GetPresence(), nil
}

// rewatch repeats the device's Presence choice on a new connection.
func (c *Client) rewatch(l *link) {
	defer c.wg.Done()
	c.mu.Lock()
	ids := c.watch
	c.mu.Unlock()
	r, err := l.request(c.ctx, &syncpb.Frame{Body: &syncpb.Frame_PresenceSubscribe{PresenceSubscribe: &syncpb.PresenceSubscribe{UserIds: ids}}})
	if err != nil {
		c.log.Debug("presence choice not renewed", "err", err)
		return
	}
	c.presence(r.GetSyncResponse())
}

// presence hands a SyncResponse's presence states to OnPresence.
func (c *Client) presence(s *syncpb.SyncResponse) {
	if c.cfg.OnPresence == nil {
		return
	}
	for _, p := range s.GetPresence() {
		c.cfg.OnPresence(p)
	}
}

// watching reports whether the device chose whom to watch.
func (c *Client) watching() bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.watch != nil
}
