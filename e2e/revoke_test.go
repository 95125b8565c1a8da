package e2e_test

// End-to-end tests of access that ends: sessions and HTTP calls of a
// revoked device, of a user whose password changed, and of a token that
// expired, on every transport and on every edge.

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"sync/atomic"
	"testing"
	"time"

	"github.com/coder/websocket"

	"github.com/parley-chat/parley/client"
	"github.com/parley-chat/parley/client/rest"
	"github.com/parley-chat/parley/core/coretest"
	"github.com/parley-chat/parley/internal/poll"
	"github.com/parley-chat/parley/syncproto"
	"github.com/parley-chat/parley/syncproto/syncpb"
	"github.com/parley-chat/parley/system"
	"github.com/parley-chat/parley/systest"
)

// rawDevice is a device session driven frame by frame over a transport.
type rawDevice struct {
	t    *testing.T
	tr   client.Transport
	next uint64
}

// rawDial says hello over transport to dial with token and device and
// fails unless the edge welcomes the session.
func rawDial(t *testing.T, dial client.Dialer, token, device string) (*rawDevice, *syncpb.Welcome) {
	t.Helper()
	ctx, cancel := context.WithTimeout(t.Context(), 20*time.Second)
	defer cancel()
	tr, err := dial(ctx)
	if err != nil {
		t.Fatalf("dial: %v", err)
	}
	t.Cleanup(func() { _ = tr.Close(nil) })
	d := &rawDevice{t: t, tr: tr, next: 1}
	if err := tr.WriteFrame(ctx, &syncpb.Frame{Id: 1, Body: &syncpb.Frame_Hello{Hello: syncproto.NewHello(token, device)}}); err != nil {
		t.Fatalf("hello: %v", err)
	}
	f, err := tr.ReadFrame(ctx)
	if err != nil || f.GetWelcome() == nil {
		t.Fatalf("hello answered %v, %v", f, err)
	}
	return d, f.GetWelcome()
}

// request sends f and returns its answer, skipping pushes.
func (d *rawDevice) request(f *syncpb.Frame) *syncpb.Frame {
	d.t.Helper()
	d.next++
	f.Id = d.next
	ctx, cancel := context.WithTimeout(d.t.Context(), 20*time.Second)
	defer cancel()
	if err := d.tr.WriteFrame(ctx, f); err != nil {
		d.t.Fatalf("write %T: %v", f.Body, err)
	}
	for {
		a, err := d.tr.ReadFrame(ctx)
		if err != nil {
			d.t.Fatalf("waiting for the answer to %T: %v", f.Body, err)
		}
		if a.Id == f.Id {
			return a
		}
	}
}

// endsWith waits (20 s at most) for the edge to end the session with an
// Error of code (id 0), then checks it is closed: a send written after
// gets no SendAck. It returns the error the transport ended with.
func (d *rawDevice) endsWith(code syncpb.Code, conv string) error {
	d.t.Helper()
	ctx, cancel := context.WithTimeout(d.t.Context(), 20*time.Second)
	defer cancel()
	for {
		f, err := d.tr.ReadFrame(ctx)
		if err != nil {
			d.t.Fatalf("the session ended without an Error frame (want %v): %v", code, err)
		}
		if e := f.GetError(); e != nil && f.Id == 0 {
			if e.Code != code {
				d.t.Fatalf("the session ended with %v, want %v", e.Code, code)
			}
			break
		}
	}
	// Whatever the device sends now is not served.
	_ = d.tr.WriteFrame(ctx, &syncpb.Frame{Id: 99, Body: &syncpb.Frame_Send{Send: &syncpb.SendRequest{
		ConvId: conv, ClientMsgId: "after-the-end", Body: []byte("still here?")}}})
	for {
		f, err := d.tr.ReadFrame(ctx)
		if err != nil {
			if ctx.Err() != nil {
				d.t.Fatal("the edge did not close the session within 20s")
			}
			return err
		}
		if f.GetSendAck() != nil {
			d.t.Fatalf("a send after the end was acknowledged: %v", f)
		}
	}
}

// notStored checks that no message of conv has client_msg_id id.
func notStored(t *testing.T, rc *rest.Client, conv, id string) {
	t.Helper()
	h, err := rc.History(t.Context(), rest.HistoryRequest{ConvID: conv, Limit: 100})
	if err != nil {
		t.Fatal(err)
	}
	for _, m := range h.Messages {
		if m.ClientMsgID == id {
			t.Fatalf("message %q was stored", id)
		}
	}
}

// sdkDevice dials a Go SDK client over dial for the device of sess.
func sdkDevice(t *testing.T, dial client.Dialer, rc *rest.Client, sess *rest.Session, box *systest.Inbox, refresh func(context.Context) (string, error)) *client.Client {
	t.Helper()
	ctx, cancel := context.WithTimeout(t.Context(), 30*time.Second)
	defer cancel()
	c, err := client.Dial(ctx, client.Config{
		Dial:       dial,
		Token:      func(context.Context) (string, error) { a, _ := rc.Tokens(); return a, nil },
		Refresh:    refresh,
		DeviceID:   sess.Device.ID,
		OnMessage:  box.Add,
		MinBackoff: 10 * time.Millisecond, MaxBackoff: 100 * time.Millisecond,
	})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	return c
}

// stopsRevoked waits for c to stop for good with REVOKED.
func stopsRevoked(t *testing.T, c *client.Client) {
	t.Helper()
	select {
	case <-c.Done():
	case <-time.After(20 * time.Second):
		t.Fatal("the SDK client did not stop within 20s of the revocation")
	}
	if err := c.Err(); !errors.Is(err, syncproto.ErrRevoked) {
		t.Fatalf("the SDK client stopped with %v, want REVOKED", err)
	}
	if _, err := c.Send(t.Context(), &syncpb.SendRequest{ConvId: "c_x", Body: []byte("x")}); !errors.Is(err, syncproto.ErrRevoked) {
		t.Fatalf("a send on the stopped client: %v, want REVOKED", err)
	}
}

// A device revoked (here by another device of its user) loses its live
// sessions at once on every transport: the edge sends REVOKED and closes,
// nothing sent after is served, and the SDK stops instead of reconnecting.
func TestRevokedDeviceSessionsEnd(t *testing.T) {
	s := startTestSystem(t, "", nil)
	for _, transport := range []string{"ws", "quic", "wt"} {
		t.Run(transport, func(t *testing.T) {
			ctx := t.Context()
			phoneRC, phone := s.User(t, "acme", "ana-"+transport)
			laptopRC, _ := s.Login(t, "acme", "ana-"+transport, "laptop")
			boRC, _ := s.User(t, "acme", "bo-"+transport)
			g, err := boRC.CreateConversation(ctx, rest.NewConversation{Type: "group", Title: "t", MemberIDs: []string{phone.User.ID}})
			if err != nil {
				t.Fatal(err)
			}
			raw, _ := rawDial(t, s.Dialer(transport), phone.AccessToken, phone.Device.ID)
			if a := raw.request(&syncpb.Frame{Body: &syncpb.Frame_Send{Send: &syncpb.SendRequest{ConvId: g.ID, ClientMsgId: "before", Body: []byte("hi")}}}); a.GetSendAck() == nil {
				t.Fatalf("send before the revocation: %v", a)
			}
			box := systest.NewInbox()
			sdk := sdkDevice(t, s.Dialer(transport), phoneRC, phone, box, phoneRC.RefreshAccess)
			if _, err := boRC.Send(ctx, rest.SendRequest{ConvID: g.ID, Body: "live"}); err != nil {
				t.Fatal(err)
			}
			box.WaitFor(t, g.ID, 2, "phone")

			if err := laptopRC.RevokeDevice(ctx, phone.Device.ID); err != nil {
				t.Fatal(err)
			}
			err = raw.endsWith(syncpb.Code_CODE_REVOKED, g.ID)
			if transport == "ws" && websocket.CloseStatus(err) != 4000+websocket.StatusCode(syncpb.Code_CODE_REVOKED) {
				t.Errorf("WebSocket closed with %v, want close code 4016", err)
			}
			stopsRevoked(t, sdk)
			if n := sdk.Connections(); n != 1 {
				t.Errorf("the SDK client connected %d times, want 1 (no reconnect after REVOKED)", n)
			}
			notStored(t, boRC, g.ID, "after-the-end")
		})
	}
}

// A revoked access token that has not expired is refused over HTTP at
// once on the edge that revoked it, and within moments on another edge;
// its refresh token too.
func TestRevokedTokenRefusedOverHTTP(t *testing.T) {
	s := startTestSystem(t, "", nil)
	b, _ := s.startExtraEdge(t, time.Second)
	baseB := "http://" + b.Addr().String()
	_, phone := s.User(t, "acme", "ana")
	laptopRC, _ := s.Login(t, "acme", "ana", "laptop")
	if r := s.do(t, "GET", "/v1/me", phone.AccessToken, nil); r.status != 200 {
		t.Fatalf("before: %d %s", r.status, r.body)
	}
	if err := laptopRC.RevokeDevice(t.Context(), phone.Device.ID); err != nil {
		t.Fatal(err)
	}
	if r := s.do(t, "GET", "/v1/me", phone.AccessToken, nil); r.status != 401 || r.code(t) != "revoked" {
		t.Fatalf("the revoking edge: %d %s, want 401 revoked", r.status, r.body)
	}
	waitHTTP(t, baseB, phone.AccessToken, 401, "revoked")
	r := s.do(t, "POST", "/v1/sessions/refresh", "", mustJSON(t, map[string]string{"refresh_token": phone.RefreshToken}))
	if r.status != 401 {
		t.Fatalf("refresh of the revoked device: %d %s", r.status, r.body)
	}
	if r := s.do(t, "GET", "/v1/me", accessOf(laptopRC), nil); r.status != 200 {
		t.Fatalf("the other device: %d %s", r.status, r.body)
	}
}

func accessOf(rc *rest.Client) string {
	a, _ := rc.Tokens()
	return a
}

// waitHTTP polls GET /v1/me at base with token until it answers status
// and code (20 s at most).
func waitHTTP(t *testing.T, base, token string, status int, code string) {
	t.Helper()
	rc := rest.New(base, rest.WithTokens(token, ""))
	poll.NoError(t, 20*time.Second, base+"/v1/me", func() error {
		_, _, err := rc.Me(t.Context())
		got, gotStatus := "", 200
		var e *rest.Error
		if errors.As(err, &e) {
			got, gotStatus = syncproto.CodeName(e.Code), e.Status
		} else if err != nil {
			t.Fatal(err)
		}
		if gotStatus != status || got != code {
			return fmt.Errorf("%d %s, want %d %s", gotStatus, got, status, code)
		}
		return nil
	})
}

// A password change ends the sessions of the user's other devices and
// refuses their tokens; the device that changed it carries on.
func TestPasswordChangeEndsOtherSessions(t *testing.T) {
	s := startTestSystem(t, "", nil)
	ctx := t.Context()
	phoneRC, phone := s.User(t, "acme", "ana")
	tabletRC, tablet := s.Login(t, "acme", "ana", "tablet")
	g, err := phoneRC.CreateConversation(ctx, rest.NewConversation{Type: "group", Title: "me"})
	if err != nil {
		t.Fatal(err)
	}
	phoneBox, tabletBox := systest.NewInbox(), systest.NewInbox()
	phoneC := sdkDevice(t, s.Dialer("ws"), phoneRC, phone, phoneBox, phoneRC.RefreshAccess)
	tabletC := sdkDevice(t, s.Dialer("quic"), tabletRC, tablet, tabletBox, tabletRC.RefreshAccess)
	raw, _ := rawDial(t, s.Dialer("wt"), tablet.AccessToken, tablet.Device.ID)

	if err := phoneRC.ChangePassword(ctx, "wrong password", "a new password"); rest.Code(err) != syncpb.Code_CODE_FORBIDDEN {
		t.Fatalf("with a wrong current password: %v", err)
	}
	if err := phoneRC.ChangePassword(ctx, testPassword, "a new password"); err != nil {
		t.Fatal(err)
	}
	raw.endsWith(syncpb.Code_CODE_REVOKED, g.ID)
	stopsRevoked(t, tabletC)
	if r := s.do(t, "GET", "/v1/me", tablet.AccessToken, nil); r.status != 401 || r.code(t) != "revoked" {
		t.Fatalf("the tablet's access token: %d %s, want 401 revoked", r.status, r.body)
	}
	if err := tabletRC.Refresh(ctx); rest.Code(err) != syncpb.Code_CODE_REVOKED {
		t.Fatalf("the tablet's refresh: %v, want REVOKED", err)
	}
	// The phone's session and tokens carry on.
	if _, err := phoneC.Send(ctx, &syncpb.SendRequest{ConvId: g.ID, Body: []byte("still me")}); err != nil {
		t.Fatal(err)
	}
	phoneBox.WaitFor(t, g.ID, 1, "phone")
	if err := phoneRC.Refresh(ctx); err != nil {
		t.Fatal(err)
	}
	// The tablet logs in again with the new password.
	again := rest.New(s.base)
	if _, err := again.Login(ctx, rest.LoginRequest{Workspace: "acme", Username: "ana", Password: testPassword, DeviceID: tablet.Device.ID}); rest.Code(err) != syncpb.Code_CODE_UNAUTHENTICATED {
		t.Fatalf("log-in with the old password: %v", err)
	}
	if _, err := again.Login(ctx, rest.LoginRequest{Workspace: "acme", Username: "ana", Password: "a new password", DeviceID: tablet.Device.ID}); err != nil {
		t.Fatal(err)
	}
	if _, _, err := again.Me(ctx); err != nil {
		t.Fatalf("the tablet after logging in again: %v", err)
	}
}

// A user the workspace's owner removes loses every live session at once,
// on every transport and every edge, and every token; it can no longer
// log in or be added to a conversation, while what it wrote stays.
func TestRemovedUserSessionsEnd(t *testing.T) {
	s := startTestSystem(t, "", nil)
	b, _ := s.startExtraEdge(t, time.Second)
	baseB := "http://" + b.Addr().String()
	ctx := t.Context()
	ownerRC, _ := s.User(t, "acme", "ana")
	boRC, bo := s.User(t, "acme", "bo")
	cyRC, _ := s.User(t, "acme", "cy")
	g, err := ownerRC.CreateConversation(ctx, rest.NewConversation{Type: "group", Title: "team", MemberIDs: []string{bo.User.ID}})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := boRC.Send(ctx, rest.SendRequest{ConvID: g.ID, ClientMsgID: "mine", Body: "bo was here"}); err != nil {
		t.Fatal(err)
	}
	raws := map[string]*rawDevice{}
	for _, transport := range []string{"ws", "quic", "wt"} {
		_, dev := s.Login(t, "acme", "bo", "bo-"+transport)
		raws[transport], _ = rawDial(t, s.Dialer(transport), dev.AccessToken, dev.Device.ID)
	}
	sdkBox := systest.NewInbox()
	sdk := sdkDevice(t, s.Dialer("ws"), boRC, bo, sdkBox, boRC.RefreshAccess)
	waitHTTP(t, baseB, bo.AccessToken, 200, "")

	// Only the owner may remove, and not itself.
	if _, err := cyRC.RemoveUser(ctx, bo.User.ID); rest.Code(err) != syncpb.Code_CODE_FORBIDDEN {
		t.Fatalf("a member removing bo: %v, want FORBIDDEN", err)
	}
	if _, err := ownerRC.RemoveUser(ctx, accessUser(t, ownerRC)); rest.Code(err) != syncpb.Code_CODE_FORBIDDEN {
		t.Fatalf("the owner removing itself: %v, want FORBIDDEN", err)
	}
	u, err := ownerRC.RemoveUser(ctx, bo.User.ID)
	if err != nil {
		t.Fatal(err)
	}
	if !u.Removed || u.ID != bo.User.ID {
		t.Fatalf("removed %+v", u)
	}
	for transport, raw := range raws {
		t.Run(transport, func(t *testing.T) { raw.endsWith(syncpb.Code_CODE_REVOKED, g.ID) })
	}
	stopsRevoked(t, sdk)
	if r := s.do(t, "GET", "/v1/me", bo.AccessToken, nil); r.status != 401 || r.code(t) != "revoked" {
		t.Fatalf("bo's access token: %d %s, want 401 revoked", r.status, r.body)
	}
	waitHTTP(t, baseB, bo.AccessToken, 401, "revoked")
	if err := boRC.Refresh(ctx); err == nil {
		t.Fatal("bo's refresh token still works")
	}
	if _, err := rest.New(s.base).Login(ctx, rest.LoginRequest{Workspace: "acme", Username: "bo", Password: testPassword}); rest.Code(err) != syncpb.Code_CODE_UNAUTHENTICATED {
		t.Fatalf("bo logging in: %v, want UNAUTHENTICATED", err)
	}
	if _, err := ownerRC.CreateConversation(ctx, rest.NewConversation{Type: "group", Title: "new", MemberIDs: []string{bo.User.ID}}); rest.Code(err) != syncpb.Code_CODE_NOT_FOUND {
		t.Fatalf("a new conversation with bo: %v, want NOT_FOUND", err)
	}
	h, err := ownerRC.History(ctx, rest.HistoryRequest{ConvID: g.ID})
	if err != nil {
		t.Fatal(err)
	}
	if !slices.ContainsFunc(h.Messages, func(m rest.Message) bool { return m.ClientMsgID == "mine" }) {
		t.Fatal("bo's message left the history")
	}
	// Everyone else carries on.
	if _, err := ownerRC.Send(ctx, rest.SendRequest{ConvID: g.ID, Body: "still here"}); err != nil {
		t.Fatal(err)
	}
	if _, _, err := cyRC.Me(ctx); err != nil {
		t.Fatal(err)
	}
}

// accessUser is the user id rc's session belongs to.
func accessUser(t *testing.T, rc *rest.Client) string {
	t.Helper()
	u, _, err := rc.Me(t.Context())
	if err != nil {
		t.Fatal(err)
	}
	return u.ID
}

// A session ends when its access token expires, unless the device gives
// the edge a fresh one (Reauth): the SDK does so by itself and is never
// cut.
func TestSessionTokenExpiry(t *testing.T) {
	const ttl = 4 * time.Second
	s := startTestSystem(t, "", func(c *system.Config) { c.Edge.Auth.AccessTTL = ttl })
	for _, transport := range []string{"ws", "quic", "wt"} {
		t.Run(transport, func(t *testing.T) {
			t.Parallel()
			ctx := t.Context()
			rc, sess := s.User(t, "acme", "ana-"+transport)
			g, err := rc.CreateConversation(ctx, rest.NewConversation{Type: "group", Title: "t"})
			if err != nil {
				t.Fatal(err)
			}
			// Without Reauth, the session ends at expiry.
			raw, w := rawDial(t, s.Dialer(transport), sess.AccessToken, sess.Device.ID)
			if left := time.Until(time.UnixMilli(w.TokenExpiresUnixMs)); left <= 0 || left > ttl+time.Second {
				t.Fatalf("welcome: the token expires in %v, want about %v", left, ttl)
			}
			raw.endsWith(syncpb.Code_CODE_TOKEN_EXPIRED, g.ID)

			// With a fresh token (Reauth) halfway, it outlives the first.
			if err := rc.Refresh(ctx); err != nil {
				t.Fatal(err)
			}
			raw, w = rawDial(t, s.Dialer(transport), accessOf(rc), sess.Device.ID)
			first := time.UnixMilli(w.TokenExpiresUnixMs)
			waitClock(t, first.Add(-ttl/2))
			if err := rc.Refresh(ctx); err != nil {
				t.Fatal(err)
			}
			a := raw.request(&syncpb.Frame{Body: &syncpb.Frame_Reauth{Reauth: &syncpb.Reauth{AccessToken: accessOf(rc)}}}).GetReauthAck()
			if a == nil || !time.UnixMilli(a.TokenExpiresUnixMs).After(first) {
				t.Fatalf("reauth answered %v (the first token expires at %v)", a, first)
			}
			// The edge looks at expiries every second: past the first
			// token's, well before the second's.
			waitClock(t, first.Add(1200*time.Millisecond))
			if a := raw.request(&syncpb.Frame{Body: &syncpb.Frame_Send{Send: &syncpb.SendRequest{ConvId: g.ID, ClientMsgId: "later", Body: []byte("hi")}}}); a.GetSendAck() == nil {
				t.Fatalf("send after the first token expired: %v", a)
			}
			raw.endsWith(syncpb.Code_CODE_TOKEN_EXPIRED, g.ID)

			// The SDK refreshes and reauths by itself: one connection
			// through several token lifetimes.
			var refreshed atomic.Int32
			c := sdkDevice(t, s.Dialer(transport), rc, sess, systest.NewInbox(), func(ctx context.Context) (string, error) {
				refreshed.Add(1)
				return rc.RefreshAccess(ctx)
			})
			poll.Until(t, 20*time.Second, "three refreshes by the SDK", func() bool { return refreshed.Load() >= 3 })
			if _, err := c.Send(ctx, &syncpb.SendRequest{ConvId: g.ID, Body: []byte("still up")}); err != nil {
				t.Fatal(err)
			}
			if n := c.Connections(); n != 1 {
				t.Fatalf("the SDK connected %d times, want 1: its session was cut", n)
			}
		})
	}
}

// waitClock waits for the wall clock to pass at: the test is about time.
func waitClock(t *testing.T, at time.Time) {
	t.Helper()
	select {
	case <-time.After(time.Until(at)):
	case <-t.Context().Done():
		t.Fatal(t.Context().Err())
	}
}

// An edge whose NATS connection was down when a device was revoked still
// refuses the device's token once it is back, and ends the device's
// session that stayed open on it meanwhile.
func TestEdgeCatchesUpOnMissedRevocations(t *testing.T) {
	s := startTestSystem(t, "", func(c *system.Config) { c.Core.NATS.ClientAddr = "127.0.0.1:0" })
	u := s.node.NATSURL()
	proxy := coretest.NewProxy(t, u[len("nats://"):])
	b := s.startEdgeVia(t, "nats://"+proxy.Addr())
	baseB := "http://" + b.Addr().String()
	ctx := t.Context()
	phoneRC, phone := s.User(t, "acme", "ana")
	laptopRC, _ := s.Login(t, "acme", "ana", "laptop")
	g, err := phoneRC.CreateConversation(ctx, rest.NewConversation{Type: "group", Title: "t"})
	if err != nil {
		t.Fatal(err)
	}
	waitHTTP(t, baseB, phone.AccessToken, 200, "")
	raw, _ := rawDial(t, client.WebSocket("ws://"+b.Addr().String()+"/v1/ws"), phone.AccessToken, phone.Device.ID)

	proxy.Cut()
	// Edge B knows it may be missing revocations: it refuses tokens.
	waitHTTP(t, baseB, phone.AccessToken, 503, "unavailable")
	if err := laptopRC.RevokeDevice(ctx, phone.Device.ID); err != nil {
		t.Fatal(err)
	}
	proxy.Restore()
	waitHTTP(t, baseB, phone.AccessToken, 401, "revoked")
	raw.endsWith(syncpb.Code_CODE_REVOKED, g.ID)
	waitHTTP(t, baseB, accessOf(laptopRC), 200, "")
}
