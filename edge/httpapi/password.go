package httpapi

import (
	"errors"
	"net/http"

	"github.com/parley-chat/parley/edge/auth"
	"github.com/parley-chat/parley/syncproto"
	"github.com/parley-chat/parley/syncproto/syncpb"
)

type passwordRequest struct {
	CurrentPassword string `json:"current_password"`
	NewPassword     string `json:"new_password"`
}

var errWrongPassword = syncproto.Errorf(syncpb.Code_CODE_FORBIDDEN, "current_password is wrong")

// changePassword: POST /v1/me/password. The caller proves the current
// password; the new one replaces it only if nobody changed it meanwhile
// (409 otherwise). Wrong current passwords are throttled per user as
// log-ins are per account (429 with Retry-After). Every other device of the user loses its tokens, access
// and refresh, and its live sessions end (REVOKED); the calling device
// keeps its own.
func (a *API) changePassword(c *call) error {
	var req passwordRequest
	if err := c.decode(&req); err != nil {
		return err
	}
	if req.CurrentPassword == "" || len(req.CurrentPassword) > maxPassword {
		return invalid("current_password is required")
	}
	if len(req.NewPassword) < minPassword || len(req.NewPassword) > maxPassword {
		return invalid("new_password must be %d to %d bytes", minPassword, maxPassword)
	}
	attempt, err := a.reauths.Begin(c.claims.WorkspaceID, c.claims.UserID, clientIP(c.r))
	if err != nil {
		if ok, held := a.loginLog.take(a.now()); ok {
			a.log.Warn("password change throttled", "user", c.claims.UserID, "device", c.claims.DeviceID, "ip", clientIP(c.r),
				"retry_after", syncproto.AsError(err).RetryAfter, "held_back", held)
		}
		return err
	}
	defer attempt.Cancel() // no password checked: the attempt counts for nothing
	r, err := a.callCore(c, &syncpb.CoreRequest{Op: &syncpb.CoreRequest_GetCredentials{GetCredentials: &syncpb.GetCredentialsRequest{
		UserId: c.claims.UserID,
	}}})
	if err != nil {
		return err
	}
	creds := r.GetCredentials()
	if creds == nil {
		return missing("credentials")
	}
	switch err := a.auth.CheckPassword(c.ctx, req.CurrentPassword, creds.GetPasswordHash()); {
	case errors.Is(err, auth.ErrPasswordMismatch):
		failures, delay := attempt.Fail()
		if ok, held := a.loginLog.take(a.now()); ok {
			a.log.Warn("password change with a wrong current password", "user", c.claims.UserID, "device", c.claims.DeviceID,
				"ip", clientIP(c.r), "failures", failures, "delay", delay, "held_back", held)
		}
		return errWrongPassword
	case err != nil:
		return err
	}
	attempt.Succeed()
	hash, err := a.auth.HashPassword(c.ctx, req.NewPassword)
	if err != nil {
		return err
	}
	if _, err := a.callCore(c, &syncpb.CoreRequest{Op: &syncpb.CoreRequest_ChangePassword{ChangePassword: &syncpb.ChangePasswordRequest{
		PasswordHash: hash, PreviousHash: creds.GetPasswordHash(),
	}}}); err != nil {
		return err
	}
	a.log.Info("password changed", "user", c.claims.UserID, "device", c.claims.DeviceID)
	c.w.WriteHeader(http.StatusNoContent)
	return nil
}

// checkNotBefore refuses a refresh token issued before its device's
// tokens were revoked (the password changed on another device).
func checkNotBefore(claims *auth.Claims, dev *syncpb.Device) error {
	if claims.IssuedAt.UnixMilli() < dev.GetTokensNotBeforeUnixMs() {
		return auth.ErrRevoked
	}
	return nil
}
