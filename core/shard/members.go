package shard

import (
	"context"
	"encoding/json"
	"maps"
	"slices"
	"strings"

	"github.com/parley-chat/parley/core/internal/cmdpb"
	"github.com/parley-chat/parley/core/internal/kvfsm"
	"github.com/parley-chat/parley/syncproto"
	"github.com/parley-chat/parley/syncproto/syncpb"
)

// changePlan is the effect of a change_members request on the current
// state. No-ops (adding a member, removing a non-member, setting a role a
// member has) are left out, so a retried request changes nothing.
type changePlan struct {
	added   []*syncpb.Member // new members, sorted by user
	removed []string         // sorted
	roles   []*syncpb.Member // members with a new role, sorted by user
	left    bool
	members uint64 // counts after the change
	owners  uint64
}

func (p *changePlan) empty() bool {
	return len(p.added) == 0 && len(p.removed) == 0 && len(p.roles) == 0 && !p.left
}

func (p *changePlan) addedIDs() []string {
	ids := make([]string, len(p.added))
	for i, m := range p.added {
		ids[i] = m.UserId
	}
	return ids
}

var (
	errNotManager = syncproto.Errorf(syncpb.Code_CODE_FORBIDDEN, "only owners and admins can change members")
	errNotOwner   = syncproto.Errorf(syncpb.Code_CODE_FORBIDDEN, "only owners can add, remove or change admins and owners")
	errNoOwner    = syncproto.Errorf(syncpb.Code_CODE_FORBIDDEN, "a group needs an owner: make another member owner first")
)

func privileged(r syncpb.Role) bool {
	return r == syncpb.Role_ROLE_ADMIN || r == syncpb.Role_ROLE_OWNER
}

// planChange validates req from caller (a member with role me.Role) against
// the state read through g.
func planChange(g kvfsm.Getter, caller *syncpb.Caller, meta *convMeta, me *syncpb.Member, req *syncpb.ChangeMembersRequest, now int64) (*changePlan, error) {
	if meta.Type != syncpb.ConversationType_CONVERSATION_TYPE_GROUP {
		return nil, invalid("the members of a direct conversation cannot change")
	}
	n := len(req.AddUserIds) + len(req.RemoveUserIds) + len(req.SetRoles)
	switch {
	case n > maxMembers:
		return nil, invalid("too many changes")
	case req.Leave && n > 0:
		return nil, invalid("leave cannot be combined with other changes")
	case !req.Leave && n == 0:
		return nil, invalid("no changes")
	case n > 0 && !privileged(me.Role):
		return nil, errNotManager
	}
	add, err := idSet(req.AddUserIds)
	if err != nil {
		return nil, err
	}
	remove, err := idSet(req.RemoveUserIds)
	if err != nil {
		return nil, err
	}
	for u, r := range req.SetRoles {
		if !syncproto.ValidID(u) {
			return nil, invalid("invalid user id")
		}
		if r != syncpb.Role_ROLE_MEMBER && !privileged(r) {
			return nil, invalid("invalid role")
		}
		if remove[u] {
			return nil, invalid("a user cannot be removed and given a role")
		}
	}
	if remove[caller.UserId] {
		return nil, invalid("use leave to leave a conversation")
	}
	owner := me.Role == syncpb.Role_ROLE_OWNER
	p := &changePlan{members: meta.Members, owners: meta.Owners}
	if req.Leave {
		p.left = true
		p.members--
		if owner {
			p.owners--
		}
	}
	joined := map[string]bool{}
	for _, u := range slices.Sorted(maps.Keys(add)) {
		if remove[u] {
			return nil, invalid("a user cannot be added and removed")
		}
		if _, ok, err := getMember(g, req.ConvId, u); err != nil {
			return nil, err
		} else if ok {
			continue
		}
		role := syncpb.Role_ROLE_MEMBER
		if r, ok := req.SetRoles[u]; ok {
			role = r
		}
		if privileged(role) && !owner {
			return nil, errNotOwner
		}
		p.added = append(p.added, &syncpb.Member{UserId: u, Role: role, JoinedUnixMs: now})
		joined[u] = true
		p.members++
		if role == syncpb.Role_ROLE_OWNER {
			p.owners++
		}
	}
	for _, u := range slices.Sorted(maps.Keys(remove)) {
		m, ok, err := getMember(g, req.ConvId, u)
		if err != nil {
			return nil, err
		}
		if !ok {
			continue
		}
		if privileged(m.Role) && !owner {
			return nil, errNotOwner
		}
		p.removed = append(p.removed, u)
		p.members--
		if m.Role == syncpb.Role_ROLE_OWNER {
			p.owners--
		}
	}
	for _, u := range slices.Sorted(maps.Keys(req.SetRoles)) {
		if joined[u] {
			continue // joined with this role
		}
		m, ok, err := getMember(g, req.ConvId, u)
		if err != nil {
			return nil, err
		}
		if !ok {
			return nil, invalid("a role can only be set for a member")
		}
		role := req.SetRoles[u]
		if m.Role == role {
			continue
		}
		// Any real change involves an admin or owner role on one side.
		if !owner {
			return nil, errNotOwner
		}
		if m.Role == syncpb.Role_ROLE_OWNER {
			p.owners--
		}
		if role == syncpb.Role_ROLE_OWNER {
			p.owners++
		}
		p.roles = append(p.roles, &syncpb.Member{UserId: u, Role: role, JoinedUnixMs: m.JoinedUnixMs})
	}
	if p.members > maxMembers {
		return nil, invalid("the group is full")
	}
	if p.members > 0 && p.owners == 0 {
		return nil, errNoOwner
	}
	return p, nil
}

func idSet(ids []string) (map[string]bool, error) {
	s := make(map[string]bool, len(ids))
	for _, u := range ids {
		if !syncproto.ValidID(u) {
			return nil, invalid("invalid user id")
		}
		s[u] = true
	}
	return s, nil
}

func (f *FSM) prepareChange(ctx context.Context, caller *syncpb.Caller, req *syncpb.ChangeMembersRequest, now int64) (*cmdpb.Command, *syncpb.CoreResponse, error) {
	if req == nil {
		return nil, nil, syncproto.Errorf(syncpb.Code_CODE_MALFORMED, "empty request")
	}
	var plan *changePlan
	var resp *syncpb.CoreResponse
	err := f.view(func(v *kvfsm.View) error {
		meta, me, err := access(v, caller, req.ConvId)
		if err != nil {
			return err
		}
		if plan, err = planChange(v, caller, meta, me, req, now); err != nil {
			return err
		}
		if plan.empty() {
			c, err := loadConversation(v, req.ConvId, meta)
			if err != nil {
				return err
			}
			resp = conversationResponse(c)
		}
		return nil
	})
	if err != nil || resp != nil {
		return nil, resp, err
	}
	added := plan.addedIDs()
	if err := f.verifyUsers(ctx, caller.WorkspaceId, added); err != nil {
		return nil, nil, err
	}
	return &cmdpb.Command{
		Caller:          caller,
		TsUnixMs:        now,
		Op:              &cmdpb.Command_ChangeMembers{ChangeMembers: req},
		VerifiedUserIds: added,
	}, nil, nil
}

// systemEvent is the JSON body of a SYSTEM message.
type systemEvent struct {
	Event string            `json:"event"`
	By    string            `json:"by"`
	Users []string          `json:"users,omitempty"`
	Roles map[string]string `json:"roles,omitempty"` // encoding/json sorts the keys
}

func roleName(r syncpb.Role) string {
	return strings.ToLower(strings.TrimPrefix(r.String(), "ROLE_"))
}

func applyChange(tx *kvfsm.Tx, c *Committed, cmd *cmdpb.Command, req *syncpb.ChangeMembersRequest) (*syncpb.CoreResponse, error) {
	caller := cmd.Caller
	meta, me, err := access(tx, caller, req.ConvId)
	if err != nil {
		return nil, err
	}
	p, err := planChange(tx, caller, meta, me, req, cmd.TsUnixMs)
	if err != nil {
		return nil, err
	}
	if err := checkVerified(cmd, p.addedIDs()); err != nil {
		return nil, err
	}
	if p.empty() {
		conv, err := loadConversation(tx, req.ConvId, meta)
		if err != nil {
			return nil, err
		}
		return conversationResponse(conv), nil
	}
	var events []systemEvent
	if len(p.added) > 0 {
		ev := systemEvent{Event: "members_added", By: caller.UserId, Users: p.addedIDs()}
		for _, m := range p.added {
			if err := putMember(tx, req.ConvId, m); err != nil {
				return nil, err
			}
			if m.Role != syncpb.Role_ROLE_MEMBER {
				if ev.Roles == nil {
					ev.Roles = map[string]string{}
				}
				ev.Roles[m.UserId] = roleName(m.Role)
			}
		}
		events = append(events, ev)
	}
	if len(p.removed) > 0 {
		for _, u := range p.removed {
			deleteMember(tx, req.ConvId, u)
		}
		events = append(events, systemEvent{Event: "members_removed", By: caller.UserId, Users: p.removed})
	}
	if len(p.roles) > 0 {
		ev := systemEvent{Event: "roles_changed", By: caller.UserId, Roles: map[string]string{}}
		for _, m := range p.roles {
			if err := putMember(tx, req.ConvId, m); err != nil {
				return nil, err
			}
			ev.Roles[m.UserId] = roleName(m.Role)
		}
		events = append(events, ev)
	}
	if p.left {
		deleteMember(tx, req.ConvId, caller.UserId)
		events = append(events, systemEvent{Event: "member_left", By: caller.UserId, Users: []string{caller.UserId}})
	}
	meta.Members, meta.Owners = p.members, p.owners
	c.ConvID, c.MembersChanged = req.ConvId, true
	c.Added = append(c.Added, p.addedIDs()...)
	c.Removed = append(c.Removed, p.removed...)
	if p.left {
		c.Removed = append(c.Removed, caller.UserId)
	}
	for _, ev := range events {
		body, err := json.Marshal(ev)
		if err != nil {
			return nil, err
		}
		err = appendMessage(tx, c, req.ConvId, meta, &syncpb.Message{
			SenderUserId: caller.UserId, SenderDeviceId: caller.DeviceId,
			Body: body, ContentType: "application/json", Kind: syncpb.MessageKind_MESSAGE_KIND_SYSTEM,
		}, cmd.TsUnixMs)
		if err != nil {
			return nil, err
		}
	}
	tx.Set(metaKey(req.ConvId), meta.marshal())
	if p.left {
		// The caller is no longer a member: no member list.
		return conversationResponse(&syncpb.Conversation{
			Id: req.ConvId, WorkspaceId: meta.WorkspaceID, Type: meta.Type, Title: meta.Title,
			CreatedBy: meta.CreatedBy, CreatedUnixMs: meta.CreatedMs, LastSeq: meta.LastSeq,
		}), nil
	}
	conv, err := loadConversation(tx, req.ConvId, meta)
	if err != nil {
		return nil, err
	}
	return conversationResponse(conv), nil
}
