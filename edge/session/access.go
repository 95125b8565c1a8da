package session

import (
	"time"

	"github.com/parley-chat/parley/edge/auth"
	"github.com/parley-chat/parley/syncproto"
	"github.com/parley-chat/parley/syncproto/syncpb"
)

// A session lasts as long as its access: until its token expires (unless
// the device sends Reauth with a fresh one), and not a moment after its
// device's tokens are revoked. Server.sweep ends sessions whose token
// expired; Server.Revoke ends those a revocation names.

var errTokenExpired = syncproto.Errorf(syncpb.Code_CODE_TOKEN_EXPIRED,
	"the session's access token expired; send Reauth with a fresh token before it does, or reconnect")

// access is the token a session runs on; guarded by session.mu.
type access struct {
	device    string
	issuedMs  int64
	expiresMs int64
}

// setAccess records the session's token once its hello verified it, and
// reports the revocation that already names it, if any: a revocation
// added before this was recorded is not seen by Server.Revoke.
func (s *session) setAccess(c *auth.Claims) error {
	s.mu.Lock()
	s.acc = access{device: c.DeviceID, issuedMs: c.IssuedAt.UnixMilli(), expiresMs: c.ExpiresAt.UnixMilli()}
	s.mu.Unlock()
	s.expires.Store(c.ExpiresAt.UnixMilli())
	if revs := s.cfg.Auth.Revocations(); revs != nil && revs.Revoked(c.DeviceID, c.IssuedAt) {
		return auth.ErrRevoked
	}
	return nil
}

// revokedBy reports whether rv takes the session's token away.
func (s *session) revokedBy(devices map[string]bool, notBefore int64) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.acc.device != "" && devices[s.acc.device] && s.acc.issuedMs < notBefore
}

// end ends the session with err: a last Error frame (id 0), then the
// transport closes with err's code. It never blocks; Server.sweep closes
// a session that has not ended Config.EndGrace later.
func (s *session) end(err error) {
	if !s.ending.CompareAndSwap(0, time.Now().UnixNano()) {
		return
	}
	s.mu.Lock()
	s.endErr = err
	live := s.live
	s.mu.Unlock()
	if live {
		s.queueFinal(err)
	}
	// Not live yet: run queues it once the Welcome is out.
}

// queueFinal hands err's Error frame to the writer, which ends the session
// after writing it.
func (s *session) queueFinal(err error) {
	select {
	case s.final <- finalFrame{errorFrame(0, err), err}:
	default: // another last frame is on its way
	}
	s.kickWriter()
}

// reauth answers a Reauth: a fresh access token for the same workspace,
// user and device extends the session to its expiry.
func (s *session) reauth(id uint64, r *syncpb.Reauth) (*syncpb.Frame, error) {
	c, err := s.cfg.Auth.Verify(r.AccessToken, auth.Access)
	if err != nil {
		return nil, err
	}
	if c.WorkspaceID != s.caller.WorkspaceId || c.UserID != s.caller.UserId || c.DeviceID != s.caller.DeviceId {
		return nil, syncproto.Errorf(syncpb.Code_CODE_UNAUTHENTICATED, "the token is not for this session's device")
	}
	exp := c.ExpiresAt.UnixMilli()
	s.mu.Lock()
	if exp > s.acc.expiresMs {
		s.acc.issuedMs, s.acc.expiresMs = c.IssuedAt.UnixMilli(), exp
	}
	exp = s.acc.expiresMs
	s.mu.Unlock()
	s.expires.Store(exp)
	return &syncpb.Frame{Id: id, Body: &syncpb.Frame_ReauthAck{ReauthAck: &syncpb.ReauthAck{
		TokenExpiresUnixMs: exp, ServerTimeUnixMs: s.cfg.Now().UnixMilli()}}}, nil
}

// Revoke ends at once every session whose token rv revokes, with REVOKED,
// and returns how many. It never blocks on a session.
func (s *Server) Revoke(rv *syncpb.Revocation) int {
	devices := make(map[string]bool, len(rv.GetDeviceIds()))
	for _, d := range rv.GetDeviceIds() {
		devices[d] = true
	}
	s.mu.Lock()
	all := make([]*session, 0, len(s.sessions))
	for ss := range s.sessions {
		all = append(all, ss)
	}
	s.mu.Unlock()
	n := 0
	for _, ss := range all {
		if ss.revokedBy(devices, rv.GetNotBeforeUnixMs()) {
			ss.log.Info("session ended: access revoked", "reason", rv.GetReason().String())
			ss.end(auth.ErrRevoked)
			n++
		}
	}
	return n
}

// expired reports whether a session must end at nowMs (its token
// expired), or be closed (it was told to end more than Config.EndGrace
// ago).
func (s *session) expired(nowMs, nowNs int64) (end, kill bool) {
	if e := s.ending.Load(); e != 0 {
		return false, time.Duration(nowNs-e) > s.cfg.EndGrace
	}
	exp := s.expires.Load()
	return exp != 0 && nowMs >= exp, false
}

// endErrOr is the error end was given, or err.
func (s *session) endErrOr(err error) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.endErr != nil {
		return s.endErr
	}
	return err
}
