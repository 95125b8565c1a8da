package httpapi

import (
	"net/http"
	"strings"

	"github.com/parley-chat/parley/syncproto"
	"github.com/parley-chat/parley/syncproto/syncpb"
)

// maxUserLookup bounds one GET /v1/users (the directory's own bound).
const maxUserLookup = syncproto.MaxConversationMembers

type usersResponse struct {
	Users []*userJSON `json:"users"`
}

// lookupUsers: GET /v1/users?ids=u_1,u_2&usernames=ana,bo: the users of the
// caller's workspace with those ids or names (a web app names the members
// of a conversation); unknown ones are left out.
func (a *API) lookupUsers(c *call) error {
	q := c.r.URL.Query()
	split := func(s string) []string {
		var out []string
		for _, v := range strings.Split(s, ",") {
			if v = strings.TrimSpace(v); v != "" {
				out = append(out, v)
			}
		}
		return out
	}
	ids, names := split(q.Get("ids")), split(q.Get("usernames"))
	switch {
	case len(ids)+len(names) == 0:
		return syncproto.Errorf(syncpb.Code_CODE_INVALID_ARGUMENT, "name users with ids or usernames")
	case len(ids)+len(names) > maxUserLookup:
		return syncproto.Errorf(syncpb.Code_CODE_INVALID_ARGUMENT, "at most %d users at a time", maxUserLookup)
	}
	for _, id := range ids {
		if !syncproto.ValidID(id) {
			return syncproto.Errorf(syncpb.Code_CODE_INVALID_ARGUMENT, "invalid user id")
		}
	}
	r, err := a.callCore(c, &syncpb.CoreRequest{Op: &syncpb.CoreRequest_LookupUsers{LookupUsers: &syncpb.LookupUsersRequest{
		UserIds: ids, Usernames: names,
	}}})
	if err != nil {
		return err
	}
	out := usersResponse{Users: []*userJSON{}}
	for _, u := range r.GetUsers().GetUsers() {
		out.Users = append(out.Users, toUser(u))
	}
	writeJSON(c.w, http.StatusOK, out)
	return nil
}
