package httpapi

import (
	"encoding/base64"
	"encoding/hex"
	"strings"
	"unicode/utf8"

	"github.com/parley-chat/parley/syncproto/syncpb"
)

// JSON shapes of the API. They mirror the protobuf messages with
// snake_case names; times are unix milliseconds in fields named ts or
// *_ts; bytes are base64 in fields named *_base64.

type userJSON struct {
	ID            string `json:"id"`
	WorkspaceID   string `json:"workspace_id"`
	Username      string `json:"username"`
	DisplayName   string `json:"display_name"`
	CreatedTS     int64  `json:"created_ts"`
	WorkspaceRole string `json:"workspace_role"`
	// Removed: the workspace's owner removed the user (only shown then).
	Removed bool `json:"removed,omitempty"`
}

func toUser(u *syncpb.User) *userJSON {
	if u == nil {
		return nil
	}
	return &userJSON{ID: u.Id, WorkspaceID: u.WorkspaceId, Username: u.Username, DisplayName: u.DisplayName,
		CreatedTS: u.CreatedUnixMs, WorkspaceRole: u.WorkspaceRole, Removed: u.Removed}
}

type deviceJSON struct {
	ID        string `json:"id"`
	UserID    string `json:"user_id"`
	Name      string `json:"name"`
	Platform  string `json:"platform"`
	CreatedTS int64  `json:"created_ts"`
	Revoked   bool   `json:"revoked"`
}

func toDevice(d *syncpb.Device) *deviceJSON {
	if d == nil {
		return nil
	}
	return &deviceJSON{ID: d.Id, UserID: d.UserId, Name: d.Name, Platform: d.Platform, CreatedTS: d.CreatedUnixMs, Revoked: d.Revoked}
}

type memberJSON struct {
	UserID   string `json:"user_id"`
	Role     string `json:"role"`
	JoinedTS int64  `json:"joined_ts"`
}

type conversationJSON struct {
	ID          string       `json:"id"`
	WorkspaceID string       `json:"workspace_id"`
	Type        string       `json:"type"`
	Title       string       `json:"title"`
	CreatedBy   string       `json:"created_by"`
	CreatedTS   int64        `json:"created_ts"`
	LastSeq     uint64       `json:"last_seq"`
	Members     []memberJSON `json:"members"`
	ReadSeq     uint64       `json:"read_seq"`
	Unread      uint64       `json:"unread"`
}

func toConversation(c *syncpb.Conversation) *conversationJSON {
	if c == nil {
		return nil
	}
	out := &conversationJSON{ID: c.Id, WorkspaceID: c.WorkspaceId, Type: convTypeName(c.Type), Title: c.Title,
		CreatedBy: c.CreatedBy, CreatedTS: c.CreatedUnixMs, LastSeq: c.LastSeq, ReadSeq: c.ReadSeq, Unread: c.Unread,
		Members: make([]memberJSON, 0, len(c.Members))}
	for _, m := range c.Members {
		out.Members = append(out.Members, memberJSON{UserID: m.UserId, Role: roleName(m.Role), JoinedTS: m.JoinedUnixMs})
	}
	return out
}

func convTypeName(t syncpb.ConversationType) string {
	switch t {
	case syncpb.ConversationType_CONVERSATION_TYPE_DIRECT:
		return "direct"
	case syncpb.ConversationType_CONVERSATION_TYPE_GROUP:
		return "group"
	}
	return "unspecified"
}

var roles = map[string]syncpb.Role{
	"member": syncpb.Role_ROLE_MEMBER,
	"admin":  syncpb.Role_ROLE_ADMIN,
	"owner":  syncpb.Role_ROLE_OWNER,
}

func roleName(r syncpb.Role) string {
	for name, v := range roles {
		if v == r {
			return name
		}
	}
	return "unspecified"
}

var receiptTypes = map[string]syncpb.ReceiptType{
	"delivered": syncpb.ReceiptType_RECEIPT_TYPE_DELIVERED,
	"read":      syncpb.ReceiptType_RECEIPT_TYPE_READ,
}

func receiptTypeName(t syncpb.ReceiptType) string {
	for name, v := range receiptTypes {
		if v == t {
			return name
		}
	}
	return "unspecified"
}

type attachmentJSON struct {
	ID          string `json:"id"`
	Name        string `json:"name"`
	ContentType string `json:"content_type"`
	Size        uint64 `json:"size"`
	MetaBase64  string `json:"meta_base64,omitempty"`
	// Set from the finished upload by the edge, never from the client.
	SHA256    string `json:"sha256,omitempty"` // hex
	Width     uint32 `json:"width,omitempty"`
	Height    uint32 `json:"height,omitempty"`
	Thumbnail bool   `json:"thumbnail,omitempty"`
}

type messageJSON struct {
	ConvID         string           `json:"conv_id"`
	Seq            uint64           `json:"seq"`
	MsgID          string           `json:"msg_id"`
	ClientMsgID    string           `json:"client_msg_id"`
	SenderUserID   string           `json:"sender_user_id"`
	SenderDeviceID string           `json:"sender_device_id"`
	TS             int64            `json:"ts"`
	Body           *string          `json:"body,omitempty"`
	BodyBase64     *string          `json:"body_base64,omitempty"`
	ContentType    string           `json:"content_type"`
	Attachments    []attachmentJSON `json:"attachments"`
	Kind           string           `json:"kind"`
}

// defaultContentType is the content type of a message sent with none.
const defaultContentType = "text/plain; charset=utf-8"

// isText reports whether a body of content type ct is shown as a string:
// valid UTF-8 of no type, text/*, application/json or any +json type (the
// core's system messages are application/json). Everything else is base64.
func isText(ct string, body []byte) bool {
	mt, _, _ := strings.Cut(strings.ToLower(ct), ";")
	mt = strings.TrimSpace(mt)
	textual := mt == "" || strings.HasPrefix(mt, "text/") || mt == "application/json" || strings.HasSuffix(mt, "+json")
	return textual && utf8.Valid(body)
}

func toMessage(m *syncpb.Message) messageJSON {
	out := messageJSON{ConvID: m.ConvId, Seq: m.Seq, MsgID: m.MsgId, ClientMsgID: m.ClientMsgId,
		SenderUserID: m.SenderUserId, SenderDeviceID: m.SenderDeviceId, TS: m.TsUnixMs,
		ContentType: m.ContentType, Attachments: make([]attachmentJSON, 0, len(m.Attachments)), Kind: "user"}
	if out.ContentType == "" {
		out.ContentType = defaultContentType
	}
	if isText(m.ContentType, m.Body) {
		s := string(m.Body)
		out.Body = &s
	} else {
		s := base64.StdEncoding.EncodeToString(m.Body)
		out.BodyBase64 = &s
	}
	if m.Kind == syncpb.MessageKind_MESSAGE_KIND_SYSTEM {
		out.Kind = "system"
	}
	for _, at := range m.Attachments {
		a := attachmentJSON{ID: at.Id, Name: at.Name, ContentType: at.ContentType, Size: at.Size,
			SHA256: hex.EncodeToString(at.Sha256), Width: at.Width, Height: at.Height, Thumbnail: at.Thumbnail}
		if len(at.Meta) > 0 {
			a.MetaBase64 = base64.StdEncoding.EncodeToString(at.Meta)
		}
		out.Attachments = append(out.Attachments, a)
	}
	return out
}
