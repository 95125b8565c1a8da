package push

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"slices"
	"time"

	webpush "github.com/SherClockHolmes/webpush-go"
)

// Notification is what one push says. Its JSON is the Web Push payload
// (what a service worker receives); the gateway sender maps it onto
// Sygnal's notification.
type Notification struct {
	// ID is the push's id: a retry, or a resend after a core restart,
	// carries the same one, so a client shows it once.
	ID string `json:"push_id"`
	// Type is "message" or "clear".
	Type string `json:"type"`
	// Workspace and Conv name the conversation; Seq is the last message
	// the push covers (for a clear, the read position).
	Workspace string `json:"workspace_id"`
	Conv      string `json:"conv_id"`
	Seq       uint64 `json:"seq"`
	MsgID     string `json:"msg_id,omitempty"`
	// Count is how many messages the push covers (coalesced); 0 for a
	// clear.
	Count int `json:"count"`
	// Tag is the notification's tag ("parley:<conv>"): a clear closes the
	// notification with the same tag.
	Tag string `json:"tag"`
	// Content, left empty in no-content mode and for end-to-end
	// encrypted conversations.
	Title  string `json:"title,omitempty"`
	Sender string `json:"sender,omitempty"`
	Body   string `json:"body,omitempty"`
}

// Types of notification.
const (
	TypeMessage = "message"
	TypeClear   = "clear"
)

// Sender delivers one notification to one target. It is safe for
// concurrent use. Its error is a *SendError when the service answered.
type Sender interface {
	Send(ctx context.Context, t Target, n *Notification) error
}

// SendError is a push service's refusal.
type SendError struct {
	Status int // HTTP status; 0 for a gateway's rejected push key
	// Gone: the target no longer exists (404/410, or the gateway rejected
	// the push key): it is removed.
	Gone bool
	// Retry: worth retrying later (5xx).
	Retry bool
}

func (e *SendError) Error() string {
	if e.Status == 0 {
		return "push: push key rejected"
	}
	return fmt.Sprintf("push: push service answered %d", e.Status)
}

func statusError(code int) error {
	switch {
	case code >= 200 && code < 300:
		return nil
	case code == http.StatusNotFound || code == http.StatusGone:
		return &SendError{Status: code, Gone: true}
	case code >= 500:
		return &SendError{Status: code, Retry: true}
	}
	return &SendError{Status: code}
}

// VAPID is an application server's key pair (RFC 8292), base64url
// without padding: the private key the raw 32-byte scalar, the public key
// the 65-byte uncompressed point that browsers take as
// applicationServerKey.
type VAPID struct {
	Public  string
	Private string
}

// GenerateVAPID makes a new VAPID key pair.
func GenerateVAPID() (VAPID, error) {
	priv, pub, err := webpush.GenerateVAPIDKeys()
	return VAPID{Public: pub, Private: priv}, err
}

// WebPush sends to Web Push services with webpush-go.
type WebPush struct {
	Keys VAPID
	// Subscriber is the VAPID JWT's sub: a mailto: address or https URL
	// where the push service can reach the operator.
	Subscriber string
	// TTL is how long the push service keeps an undelivered push.
	TTL time.Duration
	// Client sends the requests; New builds one with the Guard's dialer.
	Client *http.Client
}

var _ Sender = (*WebPush)(nil)

// Send encrypts n for the subscription (aes128gcm) and posts it with a
// VAPID Authorization. A clear and the messages of one conversation share
// a Topic, so a push service replaces an undelivered one.
func (w *WebPush) Send(ctx context.Context, t Target, n *Notification) error {
	payload, err := json.Marshal(n)
	if err != nil {
		return err
	}
	sum := sha256.Sum256([]byte(n.Workspace + "/" + n.Conv))
	resp, err := webpush.SendNotificationWithContext(ctx, payload, &webpush.Subscription{
		Endpoint: t.Endpoint, Keys: webpush.Keys{P256dh: t.P256dh, Auth: t.Auth},
	}, &webpush.Options{
		HTTPClient: w.Client, Subscriber: w.Subscriber, TTL: int(w.TTL / time.Second),
		Topic: base64.RawURLEncoding.EncodeToString(sum[:24]), Urgency: urgency(n),
		VAPIDPublicKey: w.Keys.Public, VAPIDPrivateKey: w.Keys.Private,
	})
	if err != nil {
		return fmt.Errorf("push: web push: %w", err)
	}
	defer resp.Body.Close()
	_, _ = io.Copy(io.Discard, io.LimitReader(resp.Body, 64<<10))
	return statusError(resp.StatusCode)
}

func urgency(n *Notification) webpush.Urgency {
	if n.Type == TypeClear {
		return webpush.UrgencyLow
	}
	return webpush.UrgencyHigh
}

// Gateway is an operator's push gateway: a URL that takes Sygnal's
// /_matrix/push/v1/notify JSON and does the last hop (FCM, APNs).
type Gateway struct {
	URL string
	// Rate and Burst limit the pushes a second to this gateway (defaults
	// 100 and 200).
	Rate  float64
	Burst int
}

// GatewaySender posts to operators' gateways.
type GatewaySender struct {
	Gateways map[string]Gateway
	Client   *http.Client
}

var _ Sender = (*GatewaySender)(nil)

// sygnal is the body of Sygnal's notify request.
type sygnal struct {
	Notification sygnalNotification `json:"notification"`
}

type sygnalNotification struct {
	EventID           string         `json:"event_id,omitempty"`
	RoomID            string         `json:"room_id"`
	Type              string         `json:"type,omitempty"`
	Sender            string         `json:"sender,omitempty"`
	SenderDisplayName string         `json:"sender_display_name,omitempty"`
	RoomName          string         `json:"room_name,omitempty"`
	Prio              string         `json:"prio"`
	Content           map[string]any `json:"content,omitempty"`
	Counts            sygnalCounts   `json:"counts"`
	Devices           []sygnalDevice `json:"devices"`
}

type sygnalCounts struct {
	Unread int `json:"unread"`
}

type sygnalDevice struct {
	AppID   string            `json:"app_id"`
	PushKey string            `json:"pushkey"`
	Data    map[string]string `json:"data"`
}

// Send posts the notification as Sygnal's: a message has event_id and,
// unless content is off, room_name, sender_display_name and a body; a
// clear has no event_id, prio low and an unread count of 0 (Sygnal's
// badge-only notification). A push key in the answer's rejected list is
// Gone.
func (g *GatewaySender) Send(ctx context.Context, t Target, n *Notification) error {
	gw, ok := g.Gateways[t.Gateway]
	if !ok {
		return &SendError{Status: http.StatusNotFound, Gone: true}
	}
	sn := sygnalNotification{RoomID: n.Conv, Prio: "high", Counts: sygnalCounts{Unread: n.Count},
		Devices: []sygnalDevice{{AppID: t.AppID, PushKey: t.PushKey, Data: map[string]string{
			"push_id": n.ID, "type": n.Type, "workspace_id": n.Workspace, "seq": fmt.Sprint(n.Seq), "tag": n.Tag,
		}}}}
	if n.Type == TypeClear {
		sn.Prio = "low"
	} else {
		sn.EventID, sn.Type = n.MsgID, "m.room.message"
		sn.RoomName, sn.SenderDisplayName = n.Title, n.Sender
		if n.Body != "" {
			sn.Content = map[string]any{"msgtype": "m.text", "body": n.Body}
		}
	}
	body, err := json.Marshal(sygnal{Notification: sn})
	if err != nil {
		return err
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, gw.URL, bytes.NewReader(body))
	if err != nil {
		return fmt.Errorf("push: gateway %s: %w", t.Gateway, err)
	}
	req.Header.Set("Content-Type", "application/json")
	resp, err := g.Client.Do(req)
	if err != nil {
		return fmt.Errorf("push: gateway %s: %w", t.Gateway, err)
	}
	defer resp.Body.Close()
	if err := statusError(resp.StatusCode); err != nil {
		var se *SendError
		if errors.As(err, &se) {
			se.Gone = false // a gateway's 404 is its own problem, not the device's
		}
		return err
	}
	var ans struct {
		Rejected []string `json:"rejected"`
	}
	if err := json.NewDecoder(io.LimitReader(resp.Body, 64<<10)).Decode(&ans); err != nil && !errors.Is(err, io.EOF) {
		return fmt.Errorf("push: gateway %s: bad answer: %w", t.Gateway, err)
	}
	if slices.Contains(ans.Rejected, t.PushKey) {
		return &SendError{Gone: true}
	}
	return nil
}
