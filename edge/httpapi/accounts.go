package httpapi

import (
	"errors"
	"net/http"
	"time"

	"github.com/parley-chat/parley/edge/auth"
	"github.com/parley-chat/parley/syncproto"
	"github.com/parley-chat/parley/syncproto/syncpb"
)

type registerRequest struct {
	Workspace   string `json:"workspace"`
	Username    string `json:"username"`
	Password    string `json:"password"`
	DisplayName string `json:"display_name"`
}

type userResponse struct {
	User *userJSON `json:"user"`
}

// register: POST /v1/accounts. The edge hashes the password; the core
// stores only the hash. The workspace is created when it does not exist.
func (a *API) register(c *call) error {
	var req registerRequest
	if err := c.decode(&req); err != nil {
		return err
	}
	if err := checkText("workspace", req.Workspace, syncproto.MaxNameLen, true); err != nil {
		return err
	}
	if err := checkUsername("username", req.Username); err != nil {
		return err
	}
	if req.DisplayName == "" {
		req.DisplayName = req.Username
	}
	if err := checkText("display_name", req.DisplayName, syncproto.MaxNameLen, true); err != nil {
		return err
	}
	if len(req.Password) < minPassword || len(req.Password) > maxPassword {
		return invalid("password must be %d to %d bytes", minPassword, maxPassword)
	}
	hash, err := a.auth.HashPassword(c.ctx, req.Password)
	if err != nil {
		return err
	}
	resp, err := a.callCore(c, &syncpb.CoreRequest{Op: &syncpb.CoreRequest_RegisterUser{RegisterUser: &syncpb.RegisterUserRequest{
		WorkspaceName: req.Workspace, Username: req.Username, DisplayName: req.DisplayName, PasswordHash: hash,
	}}})
	if err != nil {
		return err
	}
	if resp.GetUser() == nil {
		return missing("user")
	}
	writeJSON(c.w, http.StatusCreated, userResponse{User: toUser(resp.GetUser())})
	return nil
}

type loginRequest struct {
	Workspace  string `json:"workspace"`
	Username   string `json:"username"`
	Password   string `json:"password"`
	DeviceID   string `json:"device_id"`
	DeviceName string `json:"device_name"`
	Platform   string `json:"platform"`
}

type sessionResponse struct {
	AccessToken      string      `json:"access_token"`
	RefreshToken     string      `json:"refresh_token"`
	TokenType        string      `json:"token_type"`
	ExpiresIn        int64       `json:"expires_in"`
	RefreshExpiresIn int64       `json:"refresh_expires_in"`
	User             *userJSON   `json:"user,omitempty"`
	Device           *deviceJSON `json:"device"`
}

var errBadLogin = syncproto.Errorf(syncpb.Code_CODE_UNAUTHENTICATED, "wrong workspace, username or password")

// login: POST /v1/sessions. An unknown user and a wrong password get the
// same answer after the same work (a check against a dummy hash).
func (a *API) login(c *call) error {
	var req loginRequest
	if err := c.decode(&req); err != nil {
		return err
	}
	if req.Workspace == "" || req.Username == "" || req.Password == "" {
		return invalid("workspace, username and password are required")
	}
	if len(req.Workspace) > syncproto.MaxNameLen || len(req.Username) > syncproto.MaxNameLen || len(req.Password) > maxPassword {
		return errBadLogin // no account can have these
	}
	if req.DeviceID != "" {
		if err := checkID("device_id", req.DeviceID); err != nil {
			return err
		}
	}
	if err := checkText("device_name", req.DeviceName, syncproto.MaxNameLen, false); err != nil {
		return err
	}
	if err := checkASCII("platform", req.Platform, syncproto.MaxNameLen); err != nil {
		return err
	}

	resp, err := a.callCore(c, &syncpb.CoreRequest{Op: &syncpb.CoreRequest_GetCredentials{GetCredentials: &syncpb.GetCredentialsRequest{
		WorkspaceName: req.Workspace, Username: req.Username,
	}}})
	switch {
	case errors.Is(err, syncproto.ErrNotFound):
		if err := a.auth.CheckDummy(c.ctx, req.Password); !errors.Is(err, auth.ErrPasswordMismatch) {
			return err
		}
		return errBadLogin
	case err != nil:
		return err
	}
	creds := resp.GetCredentials()
	user := creds.GetUser()
	if user == nil {
		return missing("credentials")
	}
	switch err := a.auth.CheckPassword(c.ctx, req.Password, creds.GetPasswordHash()); {
	case errors.Is(err, auth.ErrPasswordMismatch):
		return errBadLogin
	case err != nil:
		return err // a corrupt stored hash is INTERNAL, a ctx error TIMEOUT
	}
	c.info.user = user.Id
	id := &syncpb.Caller{WorkspaceId: user.WorkspaceId, UserId: user.Id}

	var dev *syncpb.Device
	if req.DeviceID != "" {
		if dev, err = a.ownDevice(c, user.Id, req.DeviceID); err != nil {
			return err
		}
	} else {
		if req.Platform == "" {
			req.Platform = "http"
		}
		if req.DeviceName == "" {
			req.DeviceName = req.Platform
		}
		r, err := a.core.Call(c.ctx, &syncpb.CoreRequest{Caller: id, Op: &syncpb.CoreRequest_RegisterDevice{RegisterDevice: &syncpb.RegisterDeviceRequest{
			Name: req.DeviceName, Platform: req.Platform,
		}}})
		if err != nil {
			return err
		}
		if dev = r.GetDevice(); dev == nil {
			return missing("device")
		}
	}
	c.info.device = dev.Id
	return a.issue(c, user.WorkspaceId, user, dev)
}

// ownDevice fetches device id and checks it is user's and not revoked:
// another user's device is NOT_FOUND, a revoked one FORBIDDEN.
func (a *API) ownDevice(c *call, userID, deviceID string) (*syncpb.Device, error) {
	r, err := a.core.Call(c.ctx, &syncpb.CoreRequest{Op: &syncpb.CoreRequest_GetDevice{GetDevice: &syncpb.GetDeviceRequest{DeviceId: deviceID}}})
	if err != nil {
		return nil, err
	}
	dev := r.GetDevice()
	if dev == nil || dev.UserId != userID {
		return nil, syncproto.Errorf(syncpb.Code_CODE_NOT_FOUND, "no such device")
	}
	if dev.Revoked {
		return nil, syncproto.Errorf(syncpb.Code_CODE_FORBIDDEN, "device has been revoked; log in without device_id to register a new one")
	}
	return dev, nil
}

type refreshRequest struct {
	RefreshToken string `json:"refresh_token"`
}

// refresh: POST /v1/sessions/refresh. The device must still exist and not
// be revoked; revoking a device ends its sessions at the next refresh.
func (a *API) refresh(c *call) error {
	var req refreshRequest
	if err := c.decode(&req); err != nil {
		return err
	}
	claims, err := a.auth.Verify(req.RefreshToken, auth.Refresh)
	if err != nil {
		return err
	}
	c.info.user, c.info.device = claims.UserID, claims.DeviceID
	r, err := a.core.Call(c.ctx, &syncpb.CoreRequest{Op: &syncpb.CoreRequest_GetDevice{GetDevice: &syncpb.GetDeviceRequest{DeviceId: claims.DeviceID}}})
	if errors.Is(err, syncproto.ErrNotFound) {
		return syncproto.Errorf(syncpb.Code_CODE_UNAUTHENTICATED, "device no longer exists")
	}
	if err != nil {
		return err
	}
	dev := r.GetDevice()
	if dev == nil || dev.UserId != claims.UserID {
		return syncproto.Errorf(syncpb.Code_CODE_UNAUTHENTICATED, "device no longer exists")
	}
	if dev.Revoked {
		return syncproto.Errorf(syncpb.Code_CODE_UNAUTHENTICATED, "device has been revoked")
	}
	if err := checkNotBefore(claims, dev); err != nil {
		return err
	}
	return a.issue(c, claims.WorkspaceID, nil, dev)
}

// issue answers with a fresh token pair for dev (and user, when known).
func (a *API) issue(c *call, workspaceID string, user *syncpb.User, dev *syncpb.Device) error {
	pair, err := a.auth.IssuePair(auth.Identity{WorkspaceID: workspaceID, UserID: dev.UserId, DeviceID: dev.Id})
	if err != nil {
		return err
	}
	now := a.now()
	writeJSON(c.w, http.StatusOK, sessionResponse{
		AccessToken: pair.Access, RefreshToken: pair.Refresh, TokenType: "Bearer",
		ExpiresIn:        int64(pair.AccessExpiresAt.Sub(now) / time.Second),
		RefreshExpiresIn: int64(pair.RefreshExpiresAt.Sub(now) / time.Second),
		User:             toUser(user), Device: toDevice(dev),
	})
	return nil
}

type meResponse struct {
	User     *userJSON `json:"user"`
	DeviceID string    `json:"device_id"`
}

// me: GET /v1/me.
func (a *API) me(c *call) error {
	r, err := a.callCore(c, &syncpb.CoreRequest{Op: &syncpb.CoreRequest_LookupUsers{LookupUsers: &syncpb.LookupUsersRequest{
		UserIds: []string{c.claims.UserID},
	}}})
	if err != nil {
		return err
	}
	for _, u := range r.GetUsers().GetUsers() {
		if u.Id == c.claims.UserID {
			writeJSON(c.w, http.StatusOK, meResponse{User: toUser(u), DeviceID: c.claims.DeviceID})
			return nil
		}
	}
	return syncproto.Errorf(syncpb.Code_CODE_NOT_FOUND, "user not found")
}

type deviceRequest struct {
	Name     string `json:"name"`
	Platform string `json:"platform"`
}

type deviceResponse struct {
	Device *deviceJSON `json:"device"`
}

type devicesResponse struct {
	Devices []*deviceJSON `json:"devices"`
}

// createDevice: POST /v1/devices registers another device of the caller;
// it gets tokens by logging in with its device_id.
func (a *API) createDevice(c *call) error {
	var req deviceRequest
	if err := c.decode(&req); err != nil {
		return err
	}
	if err := checkText("name", req.Name, syncproto.MaxNameLen, true); err != nil {
		return err
	}
	if err := checkASCII("platform", req.Platform, syncproto.MaxNameLen); err != nil {
		return err
	}
	r, err := a.callCore(c, &syncpb.CoreRequest{Op: &syncpb.CoreRequest_RegisterDevice{RegisterDevice: &syncpb.RegisterDeviceRequest{
		Name: req.Name, Platform: req.Platform,
	}}})
	if err != nil {
		return err
	}
	if r.GetDevice() == nil {
		return missing("device")
	}
	writeJSON(c.w, http.StatusCreated, deviceResponse{Device: toDevice(r.GetDevice())})
	return nil
}

// listDevices: GET /v1/devices.
func (a *API) listDevices(c *call) error {
	r, err := a.callCore(c, &syncpb.CoreRequest{Op: &syncpb.CoreRequest_ListDevices{ListDevices: &syncpb.ListDevicesRequest{}}})
	if err != nil {
		return err
	}
	out := devicesResponse{Devices: []*deviceJSON{}}
	for _, d := range r.GetDevices().GetDevices() {
		out.Devices = append(out.Devices, toDevice(d))
	}
	writeJSON(c.w, http.StatusOK, out)
	return nil
}

// revokeDevice: DELETE /v1/devices/{id} (a device's log out when it is
// the caller's own). Its tokens, access and refresh, stop working at once
// on every edge, and its live sessions end.
func (a *API) revokeDevice(c *call) error {
	id := c.r.PathValue("id")
	if err := checkID("device id", id); err != nil {
		return err
	}
	r, err := a.callCore(c, &syncpb.CoreRequest{Op: &syncpb.CoreRequest_RevokeDevice{RevokeDevice: &syncpb.RevokeDeviceRequest{DeviceId: id}}})
	if err != nil {
		return err
	}
	if r.GetDevice() == nil {
		c.w.WriteHeader(http.StatusNoContent)
		return nil
	}
	writeJSON(c.w, http.StatusOK, deviceResponse{Device: toDevice(r.GetDevice())})
	return nil
}
