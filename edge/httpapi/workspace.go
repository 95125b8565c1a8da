package httpapi

import (
	"net/http"

	"github.com/parley-chat/parley/syncproto/syncpb"
)

type workspaceJSON struct {
	ID            string `json:"id"`
	Name          string `json:"name"`
	CreatedTS     int64  `json:"created_ts"`
	PresenceOff   bool   `json:"presence_off"`
	SearchOff     bool   `json:"search_off"`
	PushNoContent bool   `json:"push_no_content"`
}

type updateWorkspaceRequest struct {
	PresenceOff   *bool `json:"presence_off"`
	SearchOff     *bool `json:"search_off"`
	PushNoContent *bool `json:"push_no_content"`
}

func writeWorkspace(c *call, r *syncpb.CoreResponse) error {
	ws := r.GetWorkspace()
	if ws == nil {
		return missing("workspace")
	}
	writeJSON(c.w, http.StatusOK, workspaceJSON{ID: ws.Id, Name: ws.Name, CreatedTS: ws.CreatedUnixMs, PresenceOff: ws.PresenceOff, SearchOff: ws.SearchOff,
		PushNoContent: ws.PushNoContent})
	return nil
}

// getWorkspace: GET /v1/workspace, the caller's workspace and its settings.
func (a *API) getWorkspace(c *call) error {
	r, err := a.callCore(c, &syncpb.CoreRequest{Op: &syncpb.CoreRequest_GetWorkspace{GetWorkspace: &syncpb.GetWorkspaceRequest{}}})
	if err != nil {
		return err
	}
	return writeWorkspace(c, r)
}

// updateWorkspace: PATCH /v1/workspace, by the workspace's owner. Fields
// left out are not changed.
func (a *API) updateWorkspace(c *call) error {
	var req updateWorkspaceRequest
	if err := c.decode(&req); err != nil {
		return err
	}
	if req.PresenceOff == nil && req.SearchOff == nil && req.PushNoContent == nil {
		return invalid("nothing to change: the settings are presence_off, search_off and push_no_content")
	}
	r, err := a.callCore(c, &syncpb.CoreRequest{Op: &syncpb.CoreRequest_UpdateWorkspace{UpdateWorkspace: &syncpb.UpdateWorkspaceRequest{
		PresenceOff: req.PresenceOff, SearchOff: req.SearchOff, PushNoContent: req.PushNoContent,
	}}})
	if err != nil {
		return err
	}
	return writeWorkspace(c, r)
}

// removeUser: DELETE /v1/workspace/users/{user_id}, by the workspace's
// owner (not of itself). The user can no longer log in or be added to
// conversations; every device of it is revoked at once on every edge, and
// its live sessions end. Answers the user, marked removed.
func (a *API) removeUser(c *call) error {
	id := c.r.PathValue("user_id")
	if err := checkID("user id", id); err != nil {
		return err
	}
	r, err := a.callCore(c, &syncpb.CoreRequest{Op: &syncpb.CoreRequest_RemoveUser{RemoveUser: &syncpb.RemoveUserRequest{UserId: id}}})
	if err != nil {
		return err
	}
	u := r.GetUser()
	if u == nil {
		return missing("user")
	}
	a.log.Info("user removed from the workspace", "user", u.Id, "by", c.claims.UserID,
		"devices_revoked", len(r.GetRevocation().GetDeviceIds()))
	writeJSON(c.w, http.StatusOK, userResponse{User: toUser(u)})
	return nil
}
