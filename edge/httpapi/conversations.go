package httpapi

import (
	"errors"
	"net/http"
	"strconv"
	"strings"

	"github.com/parley-chat/parley/syncproto"
	"github.com/parley-chat/parley/syncproto/syncpb"
)

type createConversationRequest struct {
	Type            string   `json:"type"`
	Title           string   `json:"title"`
	MemberIDs       []string `json:"member_ids"`
	MemberUsernames []string `json:"member_usernames"`
}

type conversationResponse struct {
	Conversation *conversationJSON `json:"conversation"`
}

type conversationsResponse struct {
	Conversations []*conversationJSON `json:"conversations"`
}

// createConversation: POST /v1/conversations. The edge names the
// conversation, which decides its shard: a group gets a fresh random id; a
// direct conversation the id derived from its two users, so asking twice
// (from either side) finds the same one, answered 200 instead of 201.
func (a *API) createConversation(c *call) error {
	var req createConversationRequest
	if err := c.decode(&req); err != nil {
		return err
	}
	if err := checkText("title", req.Title, syncproto.MaxTitleLen, false); err != nil {
		return err
	}
	members, err := a.resolveUsers(c, "member_ids", req.MemberIDs, "member_usernames", req.MemberUsernames)
	if err != nil {
		return err
	}
	others := members[:0]
	for _, id := range members {
		if id != c.claims.UserID {
			others = append(others, id)
		}
	}
	create := &syncpb.CreateConversationRequest{Title: req.Title, MemberUserIds: others}
	switch req.Type {
	case "group":
		create.Type = syncpb.ConversationType_CONVERSATION_TYPE_GROUP
		create.ConvId = syncproto.NewConversationID()
		if len(others)+1 > syncproto.MaxConversationMembers {
			return invalid("a conversation has at most %d members", syncproto.MaxConversationMembers)
		}
	case "direct":
		if len(others) != 1 {
			return invalid("a direct conversation has exactly one other member")
		}
		if req.Title != "" {
			return invalid("a direct conversation has no title")
		}
		create.Type = syncpb.ConversationType_CONVERSATION_TYPE_DIRECT
		create.ConvId = syncproto.DirectConversationID(c.claims.WorkspaceID, c.claims.UserID, others[0])
	case "":
		return invalid(`type is required ("direct" or "group")`)
	default:
		return invalid(`type must be "direct" or "group"`)
	}
	c.info.conv = create.ConvId
	status := http.StatusCreated
	if create.Type == syncpb.ConversationType_CONVERSATION_TYPE_DIRECT {
		// The core returns an existing direct conversation on create too;
		// asking first tells 200 (found) from 201 (created).
		r, err := a.callCore(c, &syncpb.CoreRequest{Op: &syncpb.CoreRequest_GetConversation{GetConversation: &syncpb.GetConversationRequest{ConvId: create.ConvId}}})
		switch {
		case err == nil && r.GetConversation() != nil:
			writeJSON(c.w, http.StatusOK, conversationResponse{Conversation: toConversation(r.GetConversation())})
			return nil
		case err != nil && !errors.Is(err, syncproto.ErrNotFound):
			return err
		}
	}
	// A retried create of our own fresh group id, or a direct conversation
	// created meanwhile, is answered with the conversation by the core.
	r, err := a.callCore(c, &syncpb.CoreRequest{Op: &syncpb.CoreRequest_CreateConversation{CreateConversation: create}})
	if err != nil {
		return err
	}
	if r.GetConversation() == nil {
		return missing("conversation")
	}
	writeJSON(c.w, status, conversationResponse{Conversation: toConversation(r.GetConversation())})
	return nil
}

// resolveUsers returns the distinct user ids named by ids and usernames
// (looked up in the caller's workspace), in order. An unknown username is
// NOT_FOUND; unknown ids are left for the core to reject.
func (a *API) resolveUsers(c *call, idField string, ids []string, nameField string, names []string) ([]string, error) {
	if len(ids)+len(names) > syncproto.MaxConversationMembers {
		return nil, invalid("at most %d users at once", syncproto.MaxConversationMembers)
	}
	if len(names) > maxNameInList {
		return nil, invalid("%s: at most %d usernames at once", nameField, maxNameInList)
	}
	var out []string
	seen := map[string]bool{}
	add := func(id string) {
		if !seen[id] {
			seen[id] = true
			out = append(out, id)
		}
	}
	for i, id := range ids {
		if err := checkID(idField+"["+strconv.Itoa(i)+"]", id); err != nil {
			return nil, err
		}
		add(id)
	}
	if len(names) == 0 {
		return out, nil
	}
	for i, n := range names {
		if err := checkUsername(nameField+"["+strconv.Itoa(i)+"]", n); err != nil {
			return nil, err
		}
	}
	r, err := a.callCore(c, &syncpb.CoreRequest{Op: &syncpb.CoreRequest_LookupUsers{LookupUsers: &syncpb.LookupUsersRequest{Usernames: names}}})
	if err != nil {
		return nil, err
	}
	found := map[string]string{} // lower-case username -> id
	for _, u := range r.GetUsers().GetUsers() {
		found[strings.ToLower(u.Username)] = u.Id
	}
	for _, n := range names {
		id, ok := found[strings.ToLower(n)]
		if !ok {
			return nil, syncproto.Errorf(syncpb.Code_CODE_NOT_FOUND, "no user %q in this workspace", n)
		}
		add(id)
	}
	return out, nil
}

// convID returns the {id} path value, checked.
func (c *call) convID() (string, error) {
	id := c.r.PathValue("id")
	if err := checkID("conversation id", id); err != nil {
		return "", err
	}
	c.info.conv = id
	return id, nil
}

// getConversation: GET /v1/conversations/{id}.
func (a *API) getConversation(c *call) error {
	id, err := c.convID()
	if err != nil {
		return err
	}
	r, err := a.callCore(c, &syncpb.CoreRequest{Op: &syncpb.CoreRequest_GetConversation{GetConversation: &syncpb.GetConversationRequest{ConvId: id}}})
	if err != nil {
		return err
	}
	if r.GetConversation() == nil {
		return missing("conversation")
	}
	writeJSON(c.w, http.StatusOK, conversationResponse{Conversation: toConversation(r.GetConversation())})
	return nil
}

// listConversations: GET /v1/conversations?limit=.
func (a *API) listConversations(c *call) error {
	limit, err := queryUint(c.r, "limit", maxListLimit)
	if err != nil {
		return err
	}
	r, err := a.callCore(c, &syncpb.CoreRequest{Op: &syncpb.CoreRequest_ListConversations{ListConversations: &syncpb.ListConversationsRequest{Limit: uint32(limit)}}})
	if err != nil {
		return err
	}
	out := conversationsResponse{Conversations: []*conversationJSON{}}
	for _, cv := range r.GetConversations().GetConversations() {
		out.Conversations = append(out.Conversations, toConversation(cv))
	}
	writeJSON(c.w, http.StatusOK, out)
	return nil
}

type addMembersRequest struct {
	UserIDs   []string `json:"user_ids"`
	Usernames []string `json:"usernames"`
}

// addMembers: POST /v1/conversations/{id}/members.
func (a *API) addMembers(c *call) error {
	id, err := c.convID()
	if err != nil {
		return err
	}
	var req addMembersRequest
	if err := c.decode(&req); err != nil {
		return err
	}
	users, err := a.resolveUsers(c, "user_ids", req.UserIDs, "usernames", req.Usernames)
	if err != nil {
		return err
	}
	if len(users) == 0 {
		return invalid("name at least one user in user_ids or usernames")
	}
	return a.changeMembers(c, &syncpb.ChangeMembersRequest{ConvId: id, AddUserIds: users})
}

// removeMember: DELETE /v1/conversations/{id}/members/{user_id}: the
// caller leaves when user_id is the caller, else removes user_id.
func (a *API) removeMember(c *call) error {
	id, err := c.convID()
	if err != nil {
		return err
	}
	user := c.r.PathValue("user_id")
	if err := checkID("user id", user); err != nil {
		return err
	}
	req := &syncpb.ChangeMembersRequest{ConvId: id}
	if user == c.claims.UserID {
		req.Leave = true
	} else {
		req.RemoveUserIds = []string{user}
	}
	return a.changeMembers(c, req)
}

type setRoleRequest struct {
	Role string `json:"role"`
}

// setRole: PATCH /v1/conversations/{id}/members/{user_id}.
func (a *API) setRole(c *call) error {
	id, err := c.convID()
	if err != nil {
		return err
	}
	user := c.r.PathValue("user_id")
	if err := checkID("user id", user); err != nil {
		return err
	}
	var req setRoleRequest
	if err := c.decode(&req); err != nil {
		return err
	}
	role, ok := roles[req.Role]
	if !ok {
		return invalid(`role must be "member", "admin" or "owner"`)
	}
	return a.changeMembers(c, &syncpb.ChangeMembersRequest{ConvId: id, SetRoles: map[string]syncpb.Role{user: role}})
}

// changeMembers sends a membership change and answers with the
// conversation, or 204 when the core returns none (the caller left).
func (a *API) changeMembers(c *call, req *syncpb.ChangeMembersRequest) error {
	r, err := a.callCore(c, &syncpb.CoreRequest{Op: &syncpb.CoreRequest_ChangeMembers{ChangeMembers: req}})
	if err != nil {
		return err
	}
	if r.GetConversation() == nil {
		c.w.WriteHeader(http.StatusNoContent)
		return nil
	}
	writeJSON(c.w, http.StatusOK, conversationResponse{Conversation: toConversation(r.GetConversation())})
	return nil
}

// queryUint parses an optional unsigned query parameter (0 when absent).
func queryUint(r *http.Request, name string, max uint64) (uint64, error) {
	s := r.URL.Query().Get(name)
	if s == "" {
		return 0, nil
	}
	v, err := strconv.ParseUint(s, 10, 64)
	if err != nil || v > max {
		return 0, invalid("%s must be an integer from 0 to %d", name, max)
	}
	return v, nil
}
