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
// same answer after the same work (a check against a dummy hash). Each
// account's attempts pass the login throttle first (see auth.Throttle):
// after a few failures in a row, from any IP, the next attempt must wait
// and is answered RATE_LIMITED with Retry-After until it may. Each log-in
// starts a new refresh-token family for the device (a new device without
// device_id), ending the device's earlier one.
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

	attempt, err := a.logins.Begin(req.Workspace, req.Username, clientIP(c.r))
	if err != nil {
		if ok, held := a.loginLog.take(a.now()); ok {
			a.log.Warn("log-in throttled", "workspace", req.Workspace, "username", req.Username, "ip", clientIP(c.r),
				"retry_after", syncproto.AsError(err).RetryAfter, "held_back", held)
		}
		return err
	}
	defer attempt.Cancel() // no password checked: the attempt counts for nothing

	resp, err := a.callCore(c, &syncpb.CoreRequest{Op: &syncpb.CoreRequest_GetCredentials{GetCredentials: &syncpb.GetCredentialsRequest{
		WorkspaceName: req.Workspace, Username: req.Username,
	}}})
	switch {
	case errors.Is(err, syncproto.ErrNotFound):
		if err := a.auth.CheckDummy(c.ctx, req.Password); !errors.Is(err, auth.ErrPasswordMismatch) {
			return err
		}
		a.loginFailed(c, &req, attempt)
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
		a.loginFailed(c, &req, attempt)
		return errBadLogin
	case err != nil:
		return err // a corrupt stored hash is INTERNAL, a ctx error TIMEOUT
	}
	attempt.Succeed()
	c.info.user = user.Id
	id := &syncpb.Caller{WorkspaceId: user.WorkspaceId, UserId: user.Id}

	devID := req.DeviceID
	if devID == "" {
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
		if r.GetDevice() == nil {
			return missing("device")
		}
		devID = r.GetDevice().Id
	}
	c.info.device = devID
	// A log-in starts the device's token family, ending the one before.
	// Another user's device is NOT_FOUND, a revoked one FORBIDDEN.
	r, err := a.core.Call(c.ctx, &syncpb.CoreRequest{Caller: id, Op: &syncpb.CoreRequest_StartTokenFamily{StartTokenFamily: &syncpb.StartTokenFamilyRequest{
		DeviceId: devID,
	}}})
	if err != nil {
		return err
	}
	if r.GetDevice() == nil {
		return missing("device")
	}
	return a.issue(c, user.WorkspaceId, user, r.GetDevice())
}

// loginFailed counts a wrong password (or unknown account) against the
// account and logs it with the client's IP, within the log budget.
func (a *API) loginFailed(c *call, req *loginRequest, attempt *auth.Attempt) {
	failures, delay := attempt.Fail()
	if ok, held := a.loginLog.take(a.now()); ok {
		a.log.Warn("failed log-in", "workspace", req.Workspace, "username", req.Username, "ip", clientIP(c.r),
			"failures", failures, "delay", delay, "held_back", held)
	}
}

type refreshRequest struct {
	RefreshToken string `json:"refresh_token"`
}

var (
	errDeviceGone   = syncproto.Errorf(syncpb.Code_CODE_UNAUTHENTICATED, "device no longer exists")
	errTokenReused  = syncproto.Errorf(syncpb.Code_CODE_REFRESH_TOKEN_REUSED, "refresh token was already used: the device has been signed out; log in again")
	errNoGeneration = syncproto.Errorf(syncpb.Code_CODE_UNAUTHENTICATED, "refresh token belongs to no session; log in again")
)

// refresh: POST /v1/sessions/refresh. Refresh tokens rotate: each one is
// good for one refresh, which answers the next one (the directory decides,
// so two edges racing on one token rotate it once). Presenting a token
// that was already used is taken as theft: the device is revoked and the
// answer is 401 refresh_token_reused. For a client whose answer was lost,
// the token just replaced still gets the same new refresh token (and a
// fresh access token) within auth's RefreshGrace of the refresh. A revoked
// device, or a token of an earlier log-in of the device, is 401
// unauthenticated.
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
	family, gen := claims.Family()
	if !syncproto.ValidTokenFamilyID(family) || gen == 0 {
		return errNoGeneration
	}
	caller := &syncpb.Caller{WorkspaceId: claims.WorkspaceID, UserId: claims.UserID, DeviceId: claims.DeviceID}
	r, err := a.core.Call(c.ctx, &syncpb.CoreRequest{Caller: caller, Op: &syncpb.CoreRequest_RotateRefresh{RotateRefresh: &syncpb.RotateRefreshRequest{
		DeviceId: claims.DeviceID, Family: family, Generation: gen, RotationId: syncproto.NewID(""),
		GraceMs: uint32(a.auth.RefreshGrace() / time.Millisecond),
	}}})
	if errors.Is(err, syncproto.ErrNotFound) {
		return errDeviceGone
	}
	if err != nil {
		return err
	}
	rot := r.GetRefreshRotation()
	switch rot.GetOutcome() {
	case syncpb.RefreshOutcome_REFRESH_OUTCOME_ROTATED, syncpb.RefreshOutcome_REFRESH_OUTCOME_REPEATED:
		// The directory refuses a family older than a password change; a
		// token from before it is refused here too.
		if err := checkNotBefore(claims, rot.GetDevice()); err != nil {
			return err
		}
		return a.issue(c, claims.WorkspaceID, nil, rot.GetDevice())
	case syncpb.RefreshOutcome_REFRESH_OUTCOME_REUSED:
		a.log.Warn("refresh token reused; revoking the device", "user", claims.UserID, "device", claims.DeviceID,
			"generation", gen, "ip", clientIP(c.r))
		if _, err := a.revoke(c, caller, claims.DeviceID); err != nil {
			// The family stays marked reused, so no token of it refreshes;
			// the next one presented tries the revocation again.
			a.log.Warn("revoke after refresh token reuse", "user", claims.UserID, "device", claims.DeviceID, "err", err)
		}
		return errTokenReused
	default:
		return missing("refresh rotation")
	}
}

// issue answers with a fresh access token and the refresh token of dev's
// token family (and user, when known).
func (a *API) issue(c *call, workspaceID string, user *syncpb.User, dev *syncpb.Device) error {
	fam := dev.GetRefresh()
	if fam == nil {
		return missing("token family")
	}
	pair, err := a.auth.IssuePair(auth.Identity{WorkspaceID: workspaceID, UserID: dev.UserId, DeviceID: dev.Id},
		auth.Family{ID: fam.Id, Generation: fam.Generation, IssuedAt: time.UnixMilli(fam.IssuedUnixMs)})
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
// the caller's own). Its token family ends, and its tokens, access and
// refresh, stop working at once on every edge; its live sessions end.
func (a *API) revokeDevice(c *call) error {
	id := c.r.PathValue("id")
	if err := checkID("device id", id); err != nil {
		return err
	}
	dev, err := a.revoke(c, c.caller(), id)
	if err != nil {
		return err
	}
	if dev == nil {
		c.w.WriteHeader(http.StatusNoContent)
		return nil
	}
	writeJSON(c.w, http.StatusOK, deviceResponse{Device: toDevice(dev)})
	return nil
}

// revoke revokes caller's device id through the directory's revoke_device:
// for DELETE /v1/devices/{id} and for a refresh token presented again.
func (a *API) revoke(c *call, caller *syncpb.Caller, id string) (*syncpb.Device, error) {
	r, err := a.callAs(c, caller, &syncpb.CoreRequest{Op: &syncpb.CoreRequest_RevokeDevice{RevokeDevice: &syncpb.RevokeDeviceRequest{DeviceId: id}}})
	if err != nil {
		return nil, err
	}
	return r.GetDevice(), nil
}
