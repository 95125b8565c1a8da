package syncproto

import (
	"fmt"
	"strings"
	"testing"

	"github.com/parley-chat/parley/syncproto/syncpb"
)

func TestValidateSend(t *testing.T) {
	send := func(edit func(r *syncpb.SendRequest)) *syncpb.SendRequest {
		r := goldenSend()
		edit(r)
		return r
	}
	attachments := func(n int) []*syncpb.Attachment {
		out := make([]*syncpb.Attachment, n)
		for i := range out {
			out[i] = &syncpb.Attachment{Id: fmt.Sprintf("a_%d", i)}
		}
		return out
	}
	tests := []struct {
		name string
		r    *syncpb.SendRequest
		want *Error
	}{
		{"golden", goldenSend(), nil},
		{"body only", send(func(r *syncpb.SendRequest) { r.Attachments = nil; r.ContentType = "" }), nil},
		{"attachments only", send(func(r *syncpb.SendRequest) { r.Body = nil }), nil},
		{"largest body", send(func(r *syncpb.SendRequest) { r.Body = make([]byte, MaxBodySize) }), nil},
		{"most attachments", send(func(r *syncpb.SendRequest) { r.Attachments = attachments(MaxAttachments) }), nil},
		{"longest fields", send(func(r *syncpb.SendRequest) {
			r.ContentType = strings.Repeat("t", MaxContentTypeLen)
			r.ClientMsgId = strings.Repeat("~", MaxClientMsgIDLen)
			r.Attachments[0].Name = strings.Repeat("n", MaxAttachmentNameLen)
			r.Attachments[0].ContentType = strings.Repeat("t", MaxContentTypeLen)
			r.Attachments[0].Meta = make([]byte, MaxAttachmentMetaSize)
		}), nil},
		{"nil", nil, ErrMalformed},
		{"no conv", send(func(r *syncpb.SendRequest) { r.ConvId = "" }), ErrInvalidArgument},
		{"bad conv", send(func(r *syncpb.SendRequest) { r.ConvId = "c_Team" }), ErrInvalidArgument},
		{"no client_msg_id", send(func(r *syncpb.SendRequest) { r.ClientMsgId = "" }), ErrInvalidArgument},
		{"client_msg_id with space", send(func(r *syncpb.SendRequest) { r.ClientMsgId = "a b" }), ErrInvalidArgument},
		{"client_msg_id too long", send(func(r *syncpb.SendRequest) { r.ClientMsgId = strings.Repeat("x", MaxClientMsgIDLen+1) }), ErrInvalidArgument},
		{"empty message", send(func(r *syncpb.SendRequest) { r.Body = nil; r.Attachments = nil }), ErrInvalidArgument},
		{"body too large", send(func(r *syncpb.SendRequest) { r.Body = make([]byte, MaxBodySize+1) }), ErrTooLarge},
		{"too many attachments", send(func(r *syncpb.SendRequest) { r.Attachments = attachments(MaxAttachments + 1) }), ErrTooLarge},
		{"content type too long", send(func(r *syncpb.SendRequest) { r.ContentType = strings.Repeat("t", MaxContentTypeLen+1) }), ErrInvalidArgument},
		{"content type not ascii", send(func(r *syncpb.SendRequest) { r.ContentType = "text/plain; charset=\u00e9" }), ErrInvalidArgument},
		{"content type control", send(func(r *syncpb.SendRequest) { r.ContentType = "text/plain\r\n" }), ErrInvalidArgument},
		{"nil attachment", send(func(r *syncpb.SendRequest) { r.Attachments = append(r.Attachments, nil) }), ErrInvalidArgument},
		{"attachment id", send(func(r *syncpb.SendRequest) { r.Attachments[0].Id = "a b" }), ErrInvalidArgument},
		{"attachment name too long", send(func(r *syncpb.SendRequest) { r.Attachments[0].Name = strings.Repeat("n", MaxAttachmentNameLen+1) }), ErrInvalidArgument},
		{"attachment name not utf-8", send(func(r *syncpb.SendRequest) { r.Attachments[0].Name = "a\xffb" }), ErrInvalidArgument},
		{"attachment name control", send(func(r *syncpb.SendRequest) { r.Attachments[0].Name = "a\x00b" }), ErrInvalidArgument},
		{"attachment content type", send(func(r *syncpb.SendRequest) { r.Attachments[0].ContentType = "image/\x7f" }), ErrInvalidArgument},
		{"attachment meta too large", send(func(r *syncpb.SendRequest) { r.Attachments[0].Meta = make([]byte, MaxAttachmentMetaSize+1) }), ErrTooLarge},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			checkValidation(t, ValidateSend(tt.r), tt.want)
		})
	}
}

func TestValidateHistory(t *testing.T) {
	tests := []struct {
		name string
		r    *syncpb.HistoryRequest
		want *Error
	}{
		{"golden", goldenHistory(), nil},
		{"forward, any limit", &syncpb.HistoryRequest{ConvId: gTeam, Direction: syncpb.Direction_DIRECTION_FORWARD, Limit: 1 << 30}, nil},
		{"nil", nil, ErrMalformed},
		{"bad conv", &syncpb.HistoryRequest{ConvId: "c team"}, ErrInvalidArgument},
		{"unknown direction", &syncpb.HistoryRequest{ConvId: gTeam, Direction: 7}, ErrInvalidArgument},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			checkValidation(t, ValidateHistory(tt.r), tt.want)
		})
	}
}

func TestHistoryLimit(t *testing.T) {
	for _, tt := range []struct {
		in   uint32
		want int
	}{{0, DefaultHistoryLimit}, {1, 1}, {MaxHistoryLimit, MaxHistoryLimit}, {MaxHistoryLimit + 1, MaxHistoryLimit}, {1<<32 - 1, MaxHistoryLimit}} {
		if got := HistoryLimit(tt.in); got != tt.want {
			t.Errorf("HistoryLimit(%d) = %d, want %d", tt.in, got, tt.want)
		}
	}
}

func TestValidateReceipt(t *testing.T) {
	tests := []struct {
		name string
		r    *syncpb.ReceiptReport
		want *Error
	}{
		{"read", goldenReceipt(), nil},
		{"delivered at 1", &syncpb.ReceiptReport{ConvId: gTeam, Seq: 1, Type: syncpb.ReceiptType_RECEIPT_TYPE_DELIVERED}, nil},
		{"delivered at 0", &syncpb.ReceiptReport{ConvId: gTeam, Type: syncpb.ReceiptType_RECEIPT_TYPE_DELIVERED}, ErrInvalidArgument},
		{"read at 0", &syncpb.ReceiptReport{ConvId: gTeam, Type: syncpb.ReceiptType_RECEIPT_TYPE_READ}, ErrInvalidArgument},
		{"nil", nil, ErrMalformed},
		{"bad conv", &syncpb.ReceiptReport{ConvId: strings.Repeat("c", MaxIDLen+1), Type: syncpb.ReceiptType_RECEIPT_TYPE_READ}, ErrInvalidArgument},
		{"unspecified type", &syncpb.ReceiptReport{ConvId: gTeam, Seq: 1}, ErrInvalidArgument},
		{"unknown type", &syncpb.ReceiptReport{ConvId: gTeam, Seq: 1, Type: 3}, ErrInvalidArgument},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			checkValidation(t, ValidateReceipt(tt.r), tt.want)
		})
	}
}

func TestValidateSearch(t *testing.T) {
	q := func(query string) *syncpb.SearchRequest { return &syncpb.SearchRequest{Query: query} }
	tests := []struct {
		name string
		r    *syncpb.SearchRequest
		want *Error
	}{
		{"words", q("deploy done"), nil},
		{"filter only", &syncpb.SearchRequest{FromUserId: gAna}, nil},
		{"everything", &syncpb.SearchRequest{Query: "x", ConvId: gTeam, FromUserId: gAna, BeforeUnixMs: 2, AfterUnixMs: 1,
			HasAttachment: true, Sort: syncpb.SearchSort_SEARCH_SORT_RELEVANCE, Limit: MaxSearchLimit, Cursor: "c"}, nil},
		{"nil", nil, ErrMalformed},
		{"nothing", q("   "), ErrInvalidArgument},
		{"long query", q(strings.Repeat("a", MaxSearchQueryLen+1)), ErrTooLarge},
		{"bad utf-8", q("caf\xe9"), ErrInvalidArgument},
		{"bad conv", &syncpb.SearchRequest{Query: "x", ConvId: "c/1"}, ErrInvalidArgument},
		{"bad from", &syncpb.SearchRequest{Query: "x", FromUserId: "u 1"}, ErrInvalidArgument},
		{"negative before", &syncpb.SearchRequest{Query: "x", BeforeUnixMs: -1}, ErrInvalidArgument},
		{"unknown sort", &syncpb.SearchRequest{Query: "x", Sort: 7}, ErrInvalidArgument},
		{"limit", &syncpb.SearchRequest{Query: "x", Limit: MaxSearchLimit + 1}, ErrInvalidArgument},
		{"long cursor", &syncpb.SearchRequest{Query: "x", Cursor: strings.Repeat("c", MaxSearchCursorLen+1)}, ErrInvalidArgument},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			checkValidation(t, ValidateSearch(tt.r), tt.want)
		})
	}
	if SearchLimit(0) != DefaultSearchLimit || SearchLimit(7) != 7 || SearchLimit(MaxSearchLimit+5) != MaxSearchLimit {
		t.Error("SearchLimit does not default to DefaultSearchLimit and cap at MaxSearchLimit")
	}
}

func TestValidateSync(t *testing.T) {
	wm := func(convs ...string) *syncpb.SyncPosition {
		p := &syncpb.SyncPosition{}
		for _, c := range convs {
			p.Watermarks = append(p.Watermarks, &syncpb.Watermark{ConvId: c, Seq: 1})
		}
		return p
	}
	tests := []struct {
		name string
		r    *syncpb.SyncRequest
		want *Error
	}{
		{"no position", &syncpb.SyncRequest{}, nil},
		{"watermarks", &syncpb.SyncRequest{Position: wm(gTeam, gDirect)}, nil},
		{"token", &syncpb.SyncRequest{Position: &syncpb.SyncPosition{Token: make([]byte, MaxSyncTokenLen)}}, nil},
		{"nil", nil, ErrMalformed},
		{"nil watermark", &syncpb.SyncRequest{Position: &syncpb.SyncPosition{Watermarks: []*syncpb.Watermark{nil}}}, ErrInvalidArgument},
		{"bad conv", &syncpb.SyncRequest{Position: wm(gTeam, "C")}, ErrInvalidArgument},
		{"repeated conv", &syncpb.SyncRequest{Position: wm(gTeam, gDirect, gTeam)}, ErrInvalidArgument},
		{"token too long", &syncpb.SyncRequest{Position: &syncpb.SyncPosition{Token: make([]byte, MaxSyncTokenLen+1)}}, ErrTooLarge},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			checkValidation(t, ValidateSync(tt.r), tt.want)
		})
	}
}
