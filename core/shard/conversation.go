package shard

import (
	"cmp"
	"context"
	"slices"
	"strings"
	"unicode/utf8"

	"google.golang.org/protobuf/proto"

	"github.com/parley-chat/parley/core/internal/cmdpb"
	"github.com/parley-chat/parley/core/internal/kvfsm"
	"github.com/parley-chat/parley/syncproto"
	"github.com/parley-chat/parley/syncproto/syncpb"
)

func invalid(msg string) error {
	return syncproto.Errorf(syncpb.Code_CODE_INVALID_ARGUMENT, "%s", msg)
}

// loadConversation builds the wire form of conv: metadata and members
// sorted by user id (reads add the caller's read position: withRead).
func loadConversation(r kvfsm.Reader, conv string, meta *convMeta) (*syncpb.Conversation, error) {
	c := &syncpb.Conversation{
		Id: conv, WorkspaceId: meta.WorkspaceID, Type: meta.Type, Title: meta.Title,
		CreatedBy: meta.CreatedBy, CreatedUnixMs: meta.CreatedMs, LastSeq: meta.LastSeq,
		Members: make([]*syncpb.Member, 0, min(meta.Members, 1024)),
	}
	err := r.Scan(memberPrefix(conv), nil, false, func(_, val []byte) (bool, error) {
		m := &syncpb.Member{}
		if err := proto.Unmarshal(val, m); err != nil {
			return false, errCorrupt
		}
		c.Members = append(c.Members, m)
		return true, nil
	})
	if err != nil {
		return nil, err
	}
	return c, nil
}

// withRead sets c's read position and unread count for caller.
func (f *FSM) withRead(r kvfsm.Reader, c *syncpb.Conversation, caller string) error {
	pos, err := f.position(r, c.Id, caller)
	if err != nil {
		return err
	}
	read := pos.Read.Value
	c.ReadSeq = read
	if c.LastSeq > read {
		c.Unread = c.LastSeq - read
	}
	return nil
}

// createPlan is a validated create request: the other members, sorted.
type createPlan struct {
	others []string
	title  string
}

func planCreate(caller *syncpb.Caller, req *syncpb.CreateConversationRequest) (*createPlan, error) {
	if req == nil {
		return nil, syncproto.Errorf(syncpb.Code_CODE_MALFORMED, "empty request")
	}
	if err := checkConvID(req.ConvId); err != nil {
		return nil, err
	}
	if len(req.MemberUserIds) > maxMembers {
		return nil, invalid("too many members")
	}
	seen := map[string]bool{caller.UserId: true}
	p := &createPlan{}
	for _, u := range req.MemberUserIds {
		if !syncproto.ValidID(u) {
			return nil, invalid("invalid user id")
		}
		if !seen[u] {
			seen[u] = true
			p.others = append(p.others, u)
		}
	}
	slices.Sort(p.others)
	switch req.Type {
	case syncpb.ConversationType_CONVERSATION_TYPE_DIRECT:
		if len(p.others) != 1 {
			return nil, invalid("a direct conversation has exactly one other member")
		}
		if req.ConvId != syncproto.DirectConversationID(caller.WorkspaceId, caller.UserId, p.others[0]) {
			return nil, invalid("direct conversation id does not match its members")
		}
		// Direct conversations have no title; one sent is ignored.
	case syncpb.ConversationType_CONVERSATION_TYPE_GROUP:
		if !strings.HasPrefix(req.ConvId, syncproto.PrefixGroupConv) {
			return nil, invalid("group conversation ids start with " + syncproto.PrefixGroupConv)
		}
		if len(p.others)+1 > maxMembers {
			return nil, invalid("too many members")
		}
		if len(req.Title) > maxTitleLen || !utf8.ValidString(req.Title) {
			return nil, invalid("invalid title")
		}
		p.title = req.Title
	default:
		return nil, invalid("unknown conversation type")
	}
	return p, nil
}

// existing answers a create for an id that exists: a direct conversation
// (or a group's creator retrying) gets it back, anyone else CONFLICT.
func existing(r kvfsm.Reader, caller *syncpb.Caller, conv string, meta *convMeta, typ syncpb.ConversationType) (*syncpb.CoreResponse, error) {
	if meta.WorkspaceID != caller.WorkspaceId || meta.Type != typ ||
		(typ == syncpb.ConversationType_CONVERSATION_TYPE_GROUP && meta.CreatedBy != caller.UserId) {
		return nil, syncproto.Errorf(syncpb.Code_CODE_CONFLICT, "conversation id already in use")
	}
	if _, ok, err := getMember(r, conv, caller.UserId); err != nil {
		return nil, err
	} else if !ok {
		return nil, errNotMember
	}
	c, err := loadConversation(r, conv, meta)
	if err != nil {
		return nil, err
	}
	return conversationResponse(c), nil
}

func (f *FSM) prepareCreate(ctx context.Context, caller *syncpb.Caller, req *syncpb.CreateConversationRequest, now int64) (*cmdpb.Command, *syncpb.CoreResponse, error) {
	p, err := planCreate(caller, req)
	if err != nil {
		return nil, nil, err
	}
	var resp *syncpb.CoreResponse
	err = f.view(func(v *kvfsm.View) error {
		meta, ok, err := getMeta(v, req.ConvId)
		if err != nil || !ok {
			return err
		}
		resp, err = existing(v, caller, req.ConvId, meta, req.Type)
		return err
	})
	if err != nil || resp != nil {
		return nil, resp, err
	}
	if err := f.verifyUsers(ctx, caller.WorkspaceId, p.others); err != nil {
		return nil, nil, err
	}
	cmd := &cmdpb.Command{
		Caller:   caller,
		TsUnixMs: now,
		Op: &cmdpb.Command_CreateConversation{CreateConversation: &syncpb.CreateConversationRequest{
			ConvId: req.ConvId, Type: req.Type, Title: p.title, MemberUserIds: p.others,
		}},
		VerifiedUserIds: p.others,
	}
	return cmd, nil, nil
}

// verifyUsers checks with the directory that every user exists in ws and
// was not removed from it.
func (f *FSM) verifyUsers(ctx context.Context, ws string, users []string) error {
	if len(users) == 0 {
		return nil
	}
	found, err := f.dir.LookupUsers(ctx, ws, users)
	if err != nil {
		return err
	}
	ok := make(map[string]bool, len(found))
	for _, u := range found {
		if u.GetWorkspaceId() == ws && !u.GetRemoved() {
			ok[u.GetId()] = true
		}
	}
	for _, u := range users {
		if !ok[u] {
			return syncproto.Errorf(syncpb.Code_CODE_NOT_FOUND, "user %s not found", u)
		}
	}
	return nil
}

// checkVerified rejects a command naming users the leader did not verify.
func checkVerified(cmd *cmdpb.Command, users []string) error {
	verified := make(map[string]bool, len(cmd.VerifiedUserIds))
	for _, u := range cmd.VerifiedUserIds {
		verified[u] = true
	}
	for _, u := range users {
		if !verified[u] {
			return invalid("user not verified by the directory")
		}
	}
	return nil
}

func applyCreate(tx *kvfsm.Tx, c *Committed, cmd *cmdpb.Command, req *syncpb.CreateConversationRequest) (*syncpb.CoreResponse, error) {
	caller := cmd.Caller
	p, err := planCreate(caller, req)
	if err != nil {
		return nil, err
	}
	if err := checkVerified(cmd, p.others); err != nil {
		return nil, err
	}
	if meta, ok, err := getMeta(tx, req.ConvId); err != nil {
		return nil, err
	} else if ok {
		return existing(tx, caller, req.ConvId, meta, req.Type)
	}
	meta := &convMeta{
		Type: req.Type, WorkspaceID: caller.WorkspaceId, Title: p.title, CreatedBy: caller.UserId,
		CreatedMs: cmd.TsUnixMs, LastMs: cmd.TsUnixMs, Members: uint64(len(p.others) + 1),
	}
	creatorRole := syncpb.Role_ROLE_MEMBER
	if req.Type == syncpb.ConversationType_CONVERSATION_TYPE_GROUP {
		creatorRole = syncpb.Role_ROLE_OWNER
		meta.Owners = 1
	}
	members := []*syncpb.Member{{UserId: caller.UserId, Role: creatorRole, JoinedUnixMs: cmd.TsUnixMs}}
	for _, u := range p.others {
		members = append(members, &syncpb.Member{UserId: u, Role: syncpb.Role_ROLE_MEMBER, JoinedUnixMs: cmd.TsUnixMs})
	}
	for _, m := range members {
		if err := putMember(tx, req.ConvId, m); err != nil {
			return nil, err
		}
	}
	tx.Set(metaKey(req.ConvId), meta.marshal())
	c.ConvID, c.MembersChanged = req.ConvId, true
	for _, m := range members {
		c.Added = append(c.Added, m.UserId)
	}
	slices.SortFunc(members, func(a, b *syncpb.Member) int { return cmp.Compare(a.UserId, b.UserId) })
	return conversationResponse(&syncpb.Conversation{
		Id: req.ConvId, WorkspaceId: meta.WorkspaceID, Type: meta.Type, Title: meta.Title,
		CreatedBy: meta.CreatedBy, CreatedUnixMs: meta.CreatedMs, Members: members,
	}), nil
}

func putMember(tx *kvfsm.Tx, conv string, m *syncpb.Member) error {
	b, err := encode(m)
	if err != nil {
		return err
	}
	tx.Set(memberKey(conv, m.UserId), b)
	tx.Set(userConvKey(m.UserId, conv), nil)
	return nil
}

func deleteMember(tx *kvfsm.Tx, conv, user string) {
	tx.Delete(memberKey(conv, user))
	tx.Delete(userConvKey(user, conv))
	tx.Delete(notifyKey(conv, user))
}

func (f *FSM) getConversation(caller *syncpb.Caller, req *syncpb.GetConversationRequest) (*syncpb.CoreResponse, error) {
	var resp *syncpb.CoreResponse
	err := f.view(func(v *kvfsm.View) error {
		meta, _, err := access(v, caller, req.GetConvId())
		if err != nil {
			return err
		}
		c, err := loadConversation(v, req.GetConvId(), meta)
		if err != nil {
			return err
		}
		if err := f.withRead(v, c, caller.UserId); err != nil {
			return err
		}
		resp = conversationResponse(c)
		return nil
	})
	return resp, err
}

// listConversations returns the caller's conversations on this shard,
// newest first (by creation, then id), at most limit when limit > 0.
func (f *FSM) listConversations(caller *syncpb.Caller, req *syncpb.ListConversationsRequest) (*syncpb.CoreResponse, error) {
	var out []*syncpb.Conversation
	err := f.view(func(v *kvfsm.View) error {
		convs, err := userConvs(v, caller.UserId)
		if err != nil {
			return err
		}
		for _, conv := range convs {
			meta, ok, err := getMeta(v, conv)
			if err != nil {
				return err
			}
			if !ok || meta.WorkspaceID != caller.WorkspaceId {
				continue
			}
			c, err := loadConversation(v, conv, meta)
			if err != nil {
				return err
			}
			if err := f.withRead(v, c, caller.UserId); err != nil {
				return err
			}
			out = append(out, c)
		}
		return nil
	})
	if err != nil {
		return nil, err
	}
	slices.SortFunc(out, func(a, b *syncpb.Conversation) int {
		if c := cmp.Compare(b.CreatedUnixMs, a.CreatedUnixMs); c != 0 {
			return c
		}
		return cmp.Compare(a.Id, b.Id)
	})
	if lim := int(req.GetLimit()); lim > 0 && len(out) > lim {
		out = out[:lim]
	}
	return &syncpb.CoreResponse{Result: &syncpb.CoreResponse_Conversations{
		Conversations: &syncpb.ConversationList{Conversations: out},
	}}, nil
}

// userConvs lists the conversations of user on this shard (its index).
func userConvs(v *kvfsm.View, user string) ([]string, error) {
	var convs []string
	prefix := userConvPrefix(user)
	err := v.Scan(prefix, nil, false, func(k, _ []byte) (bool, error) {
		convs = append(convs, string(k[len(prefix):]))
		return true, nil
	})
	return convs, err
}
