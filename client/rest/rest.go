// Package rest is a Go client of parley's /v1 HTTP API. It keeps the
// session's tokens, refreshes the access token when it expires, and
// retries sends that may not have landed with the same client_msg_id, so a
// retry never stores a message twice.
//
// Refresh tokens rotate: each refresh answers a new refresh token, and the
// one it replaced must not be presented again (the edge takes that as a
// stolen token and revokes the device). The client keeps the newest token,
// runs one refresh at a time, and reports new tokens to OnTokens so that
// an app that stores them stores the newest.
package rest

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/parley-chat/parley/syncproto"
	"github.com/parley-chat/parley/syncproto/syncpb"
)

// Client calls one parley edge. Safe for concurrent use.
type Client struct {
	base  string
	hc    *http.Client
	chunk int // Upload's chunk size; 0: DefaultUploadChunk

	onTokens func(access, refresh string)

	mu      sync.Mutex
	access  string
	refresh string
	// refreshing is held by the one refresh running.
	refreshing sync.Mutex
}

// Refresh's retries of a refresh that got no answer: each attempt is
// bounded so that the retries reach the edge within its grace (30 s by
// default), in which the replaced token is still answered.
const (
	refreshAttempts       = 3
	refreshAttemptTimeout = 8 * time.Second
)

// Option configures a Client.
type Option func(*Client)

// WithHTTPClient uses hc instead of a default client with a 30 s timeout.
func WithHTTPClient(hc *http.Client) Option { return func(c *Client) { c.hc = hc } }

// WithTokens starts the client with an existing session's tokens.
func WithTokens(access, refresh string) Option {
	return func(c *Client) { c.access, c.refresh = access, refresh }
}

// OnTokens makes the client call fn with the session's tokens each time a
// log-in or a refresh replaces them, one call at a time, in order. An app
// that keeps tokens across runs saves them here: an older refresh token
// than the newest must never be presented again.
func OnTokens(fn func(access, refresh string)) Option { return func(c *Client) { c.onTokens = fn } }

// New returns a client of the edge at baseURL ("http://127.0.0.1:8080").
func New(baseURL string, opts ...Option) *Client {
	c := &Client{base: strings.TrimRight(baseURL, "/"), hc: &http.Client{Timeout: 30 * time.Second}}
	for _, o := range opts {
		o(c)
	}
	return c
}

// Tokens returns the session's current access and refresh tokens.
func (c *Client) Tokens() (access, refresh string) {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.access, c.refresh
}

// Error is an API error: the wire error plus the HTTP status.
type Error struct {
	Code       syncpb.Code
	Message    string
	RetryAfter time.Duration
	Status     int
}

func (e *Error) Error() string {
	return fmt.Sprintf("parley: %s (HTTP %d): %s", syncproto.CodeName(e.Code), e.Status, e.Message)
}

// Wire is the error as a syncproto error.
func (e *Error) Wire() *syncproto.Error {
	return &syncproto.Error{Code: e.Code, Message: e.Message, RetryAfter: e.RetryAfter}
}

// Code is the wire code of err (CODE_OK when err is not an API error,
// e.g. a network failure).
func Code(err error) syncpb.Code {
	var e *Error
	if errors.As(err, &e) {
		return e.Code
	}
	return syncpb.Code_CODE_OK
}

type errorBody struct {
	Error struct {
		Code         string `json:"code"`
		NumericCode  int32  `json:"numeric_code"`
		Message      string `json:"message"`
		RetryAfterMS int64  `json:"retry_after_ms"`
	} `json:"error"`
}

// do sends one request; in and out are JSON (either may be nil). With
// auth, a 401 on an expired access token refreshes once and retries.
func (c *Client) do(ctx context.Context, method, path string, in, out any, auth bool) error {
	var body []byte
	if in != nil {
		var err error
		if body, err = json.Marshal(in); err != nil {
			return fmt.Errorf("rest: encode %s %s: %w", method, path, err)
		}
	}
	var access string
	if auth {
		access, _ = c.Tokens()
	}
	err := c.once(ctx, method, path, body, out, auth, access)
	if auth && Code(err) == syncpb.Code_CODE_TOKEN_EXPIRED {
		if _, refresh := c.Tokens(); refresh != "" {
			if rerr := c.refreshAfter(ctx, access); rerr == nil {
				access, _ = c.Tokens()
				err = c.once(ctx, method, path, body, out, auth, access)
			}
		}
	}
	return err
}

// once sends one request, with access as its bearer token when auth.
func (c *Client) once(ctx context.Context, method, path string, body []byte, out any, auth bool, access string) error {
	var rd io.Reader
	if body != nil {
		rd = bytes.NewReader(body)
	}
	req, err := http.NewRequestWithContext(ctx, method, c.base+path, rd)
	if err != nil {
		return &requestError{err}
	}
	if body != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	if auth {
		req.Header.Set("Authorization", "Bearer "+access)
	}
	resp, err := c.hc.Do(req)
	if err != nil {
		return fmt.Errorf("rest: %s %s: %w", method, path, err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(io.LimitReader(resp.Body, 64<<20))
	if err != nil {
		return fmt.Errorf("rest: %s %s: read response: %w", method, path, err)
	}
	if resp.StatusCode >= 300 {
		return apiError(resp, b)
	}
	if out != nil {
		if err := json.Unmarshal(b, out); err != nil {
			return fmt.Errorf("rest: %s %s: decode response: %w", method, path, err)
		}
	}
	return nil
}

// apiError is the *Error of an error answer resp with body b.
func apiError(resp *http.Response, b []byte) error {
	retryAfter := headerRetryAfter(resp.Header)
	var eb errorBody
	if json.Unmarshal(b, &eb) != nil || eb.Error.Code == "" {
		// Not the edge's answer (a proxy's, say): the status decides.
		return &Error{Code: statusCode(resp.StatusCode), Message: fmt.Sprintf("%.200s", b), Status: resp.StatusCode, RetryAfter: retryAfter}
	}
	code := syncpb.Code(eb.Error.NumericCode)
	if code == syncpb.Code_CODE_OK {
		code = codeByName(eb.Error.Code)
	}
	if eb.Error.RetryAfterMS > 0 {
		retryAfter = time.Duration(eb.Error.RetryAfterMS) * time.Millisecond
	}
	return &Error{Status: resp.StatusCode, Code: code, Message: eb.Error.Message, RetryAfter: retryAfter}
}

// User is an account.
type User struct {
	ID            string `json:"id"`
	WorkspaceID   string `json:"workspace_id"`
	Username      string `json:"username"`
	DisplayName   string `json:"display_name"`
	CreatedTS     int64  `json:"created_ts"`
	WorkspaceRole string `json:"workspace_role"`
	// Removed: the workspace's owner removed the user.
	Removed bool `json:"removed,omitempty"`
}

// Device is one of a user's devices.
type Device struct {
	ID        string `json:"id"`
	UserID    string `json:"user_id"`
	Name      string `json:"name"`
	Platform  string `json:"platform"`
	CreatedTS int64  `json:"created_ts"`
	Revoked   bool   `json:"revoked"`
}

// Register creates an account (and its workspace, the first time).
func (c *Client) Register(ctx context.Context, workspace, username, password string) (*User, error) {
	var out struct {
		User *User `json:"user"`
	}
	in := map[string]string{"workspace": workspace, "username": username, "password": password}
	if err := c.do(ctx, http.MethodPost, "/v1/accounts", in, &out, false); err != nil {
		return nil, err
	}
	return out.User, nil
}

// Session is a logged-in device.
type Session struct {
	AccessToken  string  `json:"access_token"`
	RefreshToken string  `json:"refresh_token"`
	ExpiresIn    int64   `json:"expires_in"`
	User         *User   `json:"user"`
	Device       *Device `json:"device"`
}

// LoginRequest logs a device in; an empty DeviceID registers a new device.
type LoginRequest struct {
	Workspace  string `json:"workspace"`
	Username   string `json:"username"`
	Password   string `json:"password"`
	DeviceID   string `json:"device_id,omitempty"`
	DeviceName string `json:"device_name,omitempty"`
	Platform   string `json:"platform,omitempty"`
}

// Login starts a session; the client keeps its tokens.
func (c *Client) Login(ctx context.Context, req LoginRequest) (*Session, error) {
	var s Session
	if err := c.do(ctx, http.MethodPost, "/v1/sessions", req, &s, false); err != nil {
		return nil, err
	}
	c.refreshing.Lock()
	defer c.refreshing.Unlock()
	c.setTokens(s.AccessToken, s.RefreshToken)
	return &s, nil
}

// setTokens keeps a new pair and reports it; the caller holds refreshing.
func (c *Client) setTokens(access, refresh string) {
	c.mu.Lock()
	c.access, c.refresh = access, refresh
	c.mu.Unlock()
	if c.onTokens != nil {
		c.onTokens(access, refresh)
	}
}

// Refresh trades the refresh token for a new token pair and keeps it. The
// refresh token is good for one refresh; calls that overlap make one
// refresh, which all of them wait for. A refresh that got no answer (a
// network failure, 503, 504) is retried with the same token, which the
// edge answers with the same new token within its grace; a retry after
// the grace revokes the device. A refused refresh (401: revoked,
// refresh_token_reused) needs a new log-in.
func (c *Client) Refresh(ctx context.Context) error {
	access, _ := c.Tokens()
	return c.refreshAfter(ctx, access)
}

// refreshAfter refreshes unless the tokens changed since the caller read
// access (another call refreshed, or a log-in happened, meanwhile).
func (c *Client) refreshAfter(ctx context.Context, access string) error {
	c.refreshing.Lock()
	defer c.refreshing.Unlock()
	cur, refresh := c.Tokens()
	if cur != access {
		return nil
	}
	if refresh == "" {
		return &Error{Code: syncpb.Code_CODE_UNAUTHENTICATED, Message: "no refresh token: log in", Status: http.StatusUnauthorized}
	}
	body, err := json.Marshal(map[string]string{"refresh_token": refresh})
	if err != nil {
		return fmt.Errorf("rest: encode refresh: %w", err)
	}
	backoff := 100 * time.Millisecond
	for attempt := 1; ; attempt++ {
		var s Session
		actx, cancel := context.WithTimeout(ctx, refreshAttemptTimeout)
		err = c.once(actx, http.MethodPost, "/v1/sessions/refresh", body, &s, false, "")
		cancel()
		if err == nil {
			c.setTokens(s.AccessToken, s.RefreshToken)
			return nil
		}
		if attempt == refreshAttempts || !retryable(err) || ctx.Err() != nil {
			return err
		}
		select {
		case <-ctx.Done():
			return err
		case <-time.After(backoff):
		}
		backoff *= 2
	}
}

// Me returns the session's user and device id.
func (c *Client) Me(ctx context.Context) (*User, string, error) {
	var out struct {
		User     *User  `json:"user"`
		DeviceID string `json:"device_id"`
	}
	if err := c.do(ctx, http.MethodGet, "/v1/me", nil, &out, true); err != nil {
		return nil, "", err
	}
	return out.User, out.DeviceID, nil
}

// Member is a conversation member.
type Member struct {
	UserID   string `json:"user_id"`
	Role     string `json:"role"`
	JoinedTS int64  `json:"joined_ts"`
}

// Conversation is a 1:1 ("direct") or group conversation.
type Conversation struct {
	ID          string   `json:"id"`
	WorkspaceID string   `json:"workspace_id"`
	Type        string   `json:"type"`
	Title       string   `json:"title"`
	CreatedBy   string   `json:"created_by"`
	CreatedTS   int64    `json:"created_ts"`
	LastSeq     uint64   `json:"last_seq"`
	Members     []Member `json:"members"`
	ReadSeq     uint64   `json:"read_seq"`
	Unread      uint64   `json:"unread"`
}

// NewConversation describes a conversation to create. Type is "group" or
// "direct" (one other member); members are named by id or username.
type NewConversation struct {
	Type            string   `json:"type"`
	Title           string   `json:"title,omitempty"`
	MemberIDs       []string `json:"member_ids,omitempty"`
	MemberUsernames []string `json:"member_usernames,omitempty"`
}

// CreateConversation creates a conversation (a direct one that exists is
// returned as it is).
func (c *Client) CreateConversation(ctx context.Context, req NewConversation) (*Conversation, error) {
	var out struct {
		Conversation *Conversation `json:"conversation"`
	}
	if err := c.do(ctx, http.MethodPost, "/v1/conversations", req, &out, true); err != nil {
		return nil, err
	}
	return out.Conversation, nil
}

// Conversation fetches one conversation.
func (c *Client) Conversation(ctx context.Context, id string) (*Conversation, error) {
	var out struct {
		Conversation *Conversation `json:"conversation"`
	}
	if err := c.do(ctx, http.MethodGet, "/v1/conversations/"+url.PathEscape(id), nil, &out, true); err != nil {
		return nil, err
	}
	return out.Conversation, nil
}

// Conversations lists the caller's conversations, newest first.
func (c *Client) Conversations(ctx context.Context) ([]*Conversation, error) {
	var out struct {
		Conversations []*Conversation `json:"conversations"`
	}
	if err := c.do(ctx, http.MethodGet, "/v1/conversations", nil, &out, true); err != nil {
		return nil, err
	}
	return out.Conversations, nil
}

// AddMembers adds users (by id or username) to a group conversation.
func (c *Client) AddMembers(ctx context.Context, convID string, userIDs, usernames []string) (*Conversation, error) {
	var out struct {
		Conversation *Conversation `json:"conversation"`
	}
	in := map[string][]string{"user_ids": userIDs, "usernames": usernames}
	if err := c.do(ctx, http.MethodPost, "/v1/conversations/"+url.PathEscape(convID)+"/members", in, &out, true); err != nil {
		return nil, err
	}
	return out.Conversation, nil
}

// RemoveMember kicks a user, or leaves when userID is the caller's own.
func (c *Client) RemoveMember(ctx context.Context, convID, userID string) error {
	return c.do(ctx, http.MethodDelete, "/v1/conversations/"+url.PathEscape(convID)+"/members/"+url.PathEscape(userID), nil, nil, true)
}

// SetRole changes a member's role (owner, admin, member).
func (c *Client) SetRole(ctx context.Context, convID, userID, role string) error {
	return c.do(ctx, http.MethodPatch, "/v1/conversations/"+url.PathEscape(convID)+"/members/"+url.PathEscape(userID),
		map[string]string{"role": role}, nil, true)
}

// SendRequest is a message to send. An empty ClientMsgID gets a random one.
type SendRequest struct {
	ConvID      string `json:"conv_id"`
	ClientMsgID string `json:"client_msg_id"`
	Body        string `json:"body"`
	ContentType string `json:"content_type,omitempty"`
	// Attachments are finished uploads of the caller's (see Upload).
	Attachments []AttachmentRef `json:"attachments,omitempty"`
}

// SendResult is the server's acknowledgement.
type SendResult struct {
	ConvID      string `json:"conv_id"`
	MsgID       string `json:"msg_id"`
	Seq         uint64 `json:"seq"`
	TS          int64  `json:"ts"`
	ClientMsgID string `json:"client_msg_id"`
	Duplicate   bool   `json:"duplicate"`
}

// Send sends a message. When the outcome is unknown (a network error, or
// the core asked for a retry) it resends with the same client_msg_id until
// ctx ends; the server stores the message once and answers the same ack.
// A client_msg_id this user already sent in the conversation with other
// content is an *Error with code CONFLICT (HTTP 409), returned at once.
func (c *Client) Send(ctx context.Context, req SendRequest) (*SendResult, error) {
	if req.ClientMsgID == "" {
		req.ClientMsgID = NewClientMsgID()
	}
	backoff := 20 * time.Millisecond
	for {
		var out SendResult
		err := c.do(ctx, http.MethodPost, "/v1/messages", req, &out, true)
		if err == nil {
			return &out, nil
		}
		if !retryable(err) || ctx.Err() != nil {
			return nil, err
		}
		wait := backoff
		var e *Error
		if errors.As(err, &e) && e.RetryAfter > wait {
			wait = e.RetryAfter
		}
		select {
		case <-ctx.Done():
			return nil, err
		case <-time.After(wait):
		}
		backoff = min(backoff*2, time.Second)
	}
}

// requestError is a request that could not be built.
type requestError struct{ err error }

func (e *requestError) Error() string { return "rest: " + e.err.Error() }
func (e *requestError) Unwrap() error { return e.err }

func retryable(err error) bool {
	var e *Error
	if errors.As(err, &e) {
		return e.Wire().Retryable()
	}
	// A request that could not be built (a bad base URL) never will be.
	var reqErr *requestError
	if errors.As(err, &reqErr) {
		return false
	}
	// A 2xx answer that does not decode: the request was served, and
	// resending it gets the same answer.
	var syntaxErr *json.SyntaxError
	var typeErr *json.UnmarshalTypeError
	if errors.As(err, &syntaxErr) || errors.As(err, &typeErr) {
		return false
	}
	return true // transport error: the outcome is unknown
}

// statusCode is the wire code for an error status without an edge error
// body: gateway failures may be retried, anything else is INTERNAL.
func statusCode(status int) syncpb.Code {
	switch status {
	case http.StatusBadGateway, http.StatusServiceUnavailable:
		return syncpb.Code_CODE_UNAVAILABLE
	case http.StatusGatewayTimeout:
		return syncpb.Code_CODE_TIMEOUT
	case http.StatusTooManyRequests:
		return syncpb.Code_CODE_RATE_LIMITED
	}
	return syncpb.Code_CODE_INTERNAL
}

// codeByName maps a JSON error code ("not_member") to its wire code.
func codeByName(name string) syncpb.Code {
	if v, ok := syncpb.Code_value["CODE_"+strings.ToUpper(name)]; ok {
		return syncpb.Code(v)
	}
	return syncpb.Code_CODE_INTERNAL
}

// headerRetryAfter reads a Retry-After header in seconds (0 if absent).
func headerRetryAfter(h http.Header) time.Duration {
	secs, err := strconv.Atoi(h.Get("Retry-After"))
	if err != nil || secs <= 0 {
		return 0
	}
	return time.Duration(min(secs, 3600)) * time.Second
}

// NewClientMsgID returns a random client message id.
func NewClientMsgID() string { return syncproto.NewClientMsgID() }

// Message is a stored message. System messages (membership changes) have
// Kind "system" and a JSON body.
type Message struct {
	ConvID         string       `json:"conv_id"`
	Seq            uint64       `json:"seq"`
	MsgID          string       `json:"msg_id"`
	ClientMsgID    string       `json:"client_msg_id"`
	SenderUserID   string       `json:"sender_user_id"`
	SenderDeviceID string       `json:"sender_device_id"`
	TS             int64        `json:"ts"`
	Body           string       `json:"body"`
	BodyBase64     string       `json:"body_base64"`
	ContentType    string       `json:"content_type"`
	Kind           string       `json:"kind"`
	Attachments    []Attachment `json:"attachments"`
}

// History is one page of messages, ascending by seq.
type History struct {
	ConvID     string    `json:"conv_id"`
	Messages   []Message `json:"messages"`
	NextCursor uint64    `json:"next_cursor"`
	LastSeq    uint64    `json:"last_seq"`
}

// HistoryRequest pages through a conversation. Cursor is an exclusive seq
// bound (0 starts at the beginning forward, or at the end backward).
type HistoryRequest struct {
	ConvID   string
	Cursor   uint64
	Limit    int
	Backward bool
}

// History reads one page.
func (c *Client) History(ctx context.Context, req HistoryRequest) (*History, error) {
	q := url.Values{}
	if req.Cursor > 0 {
		q.Set("cursor", strconv.FormatUint(req.Cursor, 10))
	}
	if req.Limit > 0 {
		q.Set("limit", strconv.Itoa(req.Limit))
	}
	if req.Backward {
		q.Set("dir", "backward")
	} else {
		q.Set("dir", "forward")
	}
	var h History
	if err := c.do(ctx, http.MethodGet, "/v1/conversations/"+url.PathEscape(req.ConvID)+"/history?"+q.Encode(), nil, &h, true); err != nil {
		return nil, err
	}
	return &h, nil
}

// SearchRequest is one search (GET /v1/search): Query in the query
// language, and optional filters. Before and After are Unix
// milliseconds (0: unbounded); Sort is "newest" (default) or
// "relevance"; Cursor is a previous page's NextCursor.
type SearchRequest struct {
	Query         string
	ConvID        string
	From          string
	Before, After int64
	HasAttachment bool
	Sort          string
	Limit         int
	Cursor        string
}

// SearchResult is one page of hits.
type SearchResult struct {
	Hits       []SearchHit `json:"hits"`
	Total      int         `json:"total"` // on the first page only
	NextCursor string      `json:"next_cursor"`
}

// SearchHit is one matching message: a snippet of its text with the
// matched byte ranges.
type SearchHit struct {
	ConvID   string `json:"conv_id"`
	Seq      uint64 `json:"seq"`
	MsgID    string `json:"msg_id"`
	SenderID string `json:"sender_id"`
	TS       int64  `json:"ts"`
	Snippet  string `json:"snippet"`
	Marks    []struct {
		Start int `json:"start"`
		End   int `json:"end"`
	} `json:"marks"`
}

// Search searches the messages of the caller's conversations.
func (c *Client) Search(ctx context.Context, req SearchRequest) (*SearchResult, error) {
	q := url.Values{}
	for k, v := range map[string]string{"q": req.Query, "conv_id": req.ConvID, "from": req.From, "sort": req.Sort, "cursor": req.Cursor} {
		if v != "" {
			q.Set(k, v)
		}
	}
	if req.Before > 0 {
		q.Set("before", strconv.FormatInt(req.Before, 10))
	}
	if req.After > 0 {
		q.Set("after", strconv.FormatInt(req.After, 10))
	}
	if req.HasAttachment {
		q.Set("has", "attachment")
	}
	if req.Limit > 0 {
		q.Set("limit", strconv.Itoa(req.Limit))
	}
	var out SearchResult
	if err := c.do(ctx, http.MethodGet, "/v1/search?"+q.Encode(), nil, &out, true); err != nil {
		return nil, err
	}
	return &out, nil
}

// Receipt records that this device has delivered or read up to seq
// (typ "delivered" or "read").
func (c *Client) Receipt(ctx context.Context, convID string, seq uint64, typ string) error {
	in := map[string]any{"conv_id": convID, "seq": seq, "type": typ}
	return c.do(ctx, http.MethodPost, "/v1/receipts", in, nil, true)
}

// MemberReceipts is one member's positions in a conversation.
type MemberReceipts struct {
	UserID       string `json:"user_id"`
	DeliveredSeq uint64 `json:"delivered_seq"`
	ReadSeq      uint64 `json:"read_seq"`
	DeliveredTS  int64  `json:"delivered_ts"`
	ReadTS       int64  `json:"read_ts"`
}

// ReceiptList is who received and read a conversation: per member up to
// the server's large-group size, counts at the last message always.
type ReceiptList struct {
	ConvID         string           `json:"conv_id"`
	LastSeq        uint64           `json:"last_seq"`
	MemberCount    int              `json:"member_count"`
	DeliveredCount int              `json:"delivered_count"`
	ReadCount      int              `json:"read_count"`
	Members        []MemberReceipts `json:"members"`
}

// Receipts reads who has received and read convID.
func (c *Client) Receipts(ctx context.Context, convID string) (*ReceiptList, error) {
	var l ReceiptList
	if err := c.do(ctx, http.MethodGet, "/v1/conversations/"+url.PathEscape(convID)+"/receipts", nil, &l, true); err != nil {
		return nil, err
	}
	return &l, nil
}

// UnreadConversation is one conversation's unread count.
type UnreadConversation struct {
	ConvID  string `json:"conv_id"`
	Unread  uint64 `json:"unread"`
	ReadSeq uint64 `json:"read_seq"`
	LastSeq uint64 `json:"last_seq"`
}

// UnreadCounts are the caller's unread messages.
type UnreadCounts struct {
	Total         uint64               `json:"total"`
	Conversations []UnreadConversation `json:"conversations"`
}

// Unread reads the caller's unread counts (its own messages count as read).
func (c *Client) Unread(ctx context.Context) (*UnreadCounts, error) {
	var u UnreadCounts
	if err := c.do(ctx, http.MethodGet, "/v1/unread", nil, &u, true); err != nil {
		return nil, err
	}
	return &u, nil
}

// Workspace is the caller's workspace and its settings.
type Workspace struct {
	ID          string `json:"id"`
	Name        string `json:"name"`
	CreatedTS   int64  `json:"created_ts"`
	PresenceOff bool   `json:"presence_off"`
	SearchOff   bool   `json:"search_off"`
}

// Workspace reads the caller's workspace.
func (c *Client) Workspace(ctx context.Context) (*Workspace, error) {
	var w Workspace
	if err := c.do(ctx, http.MethodGet, "/v1/workspace", nil, &w, true); err != nil {
		return nil, err
	}
	return &w, nil
}

// SetPresenceOff turns members' presence off (or back on) in the caller's
// workspace; only its owner may.
func (c *Client) SetPresenceOff(ctx context.Context, off bool) (*Workspace, error) {
	var w Workspace
	if err := c.do(ctx, http.MethodPatch, "/v1/workspace", map[string]any{"presence_off": off}, &w, true); err != nil {
		return nil, err
	}
	return &w, nil
}

// SetSearchOff turns search off (or back on) in the caller's workspace;
// only its owner may. While it is off, its messages are not indexed and
// search finds nothing in it.
func (c *Client) SetSearchOff(ctx context.Context, off bool) (*Workspace, error) {
	var w Workspace
	if err := c.do(ctx, http.MethodPatch, "/v1/workspace", map[string]any{"search_off": off}, &w, true); err != nil {
		return nil, err
	}
	return &w, nil
}

// RemoveUser removes a user from the caller's workspace (its owner only):
// the user can no longer log in, its devices' tokens stop working at once
// on every edge and their live sessions end. It returns the user, marked
// removed.
func (c *Client) RemoveUser(ctx context.Context, userID string) (*User, error) {
	var out struct {
		User User `json:"user"`
	}
	if err := c.do(ctx, http.MethodDelete, "/v1/workspace/users/"+url.PathEscape(userID), nil, &out, true); err != nil {
		return nil, err
	}
	return &out.User, nil
}
