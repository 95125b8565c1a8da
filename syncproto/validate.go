package syncproto

import (
	"strconv"
	"strings"
	"unicode/utf8"

	"github.com/parley-chat/parley/syncproto/syncpb"
)

// Checks of requests that edges run before asking a core and cores run
// again before applying: both sides hold the same limits. Each returns nil
// or an *Error whose message is safe to show to the user: MALFORMED for a
// missing request, TOO_LARGE for something over a size limit, and
// INVALID_ARGUMENT otherwise. Membership and existence are the core's to
// check; these only look at the request.

func invalid(format string, args ...any) *Error {
	return Errorf(syncpb.Code_CODE_INVALID_ARGUMENT, format, args...)
}

// ValidateSend checks a SendRequest: conv_id a valid id, client_msg_id
// valid (ValidClientMsgID), a body or at least one attachment, body at most
// MaxBodySize, content_type printable ASCII of at most MaxContentTypeLen
// (empty means text), at most MaxAttachments attachments, and each
// attachment with a valid id, a UTF-8 name without control characters of
// at most MaxAttachmentNameLen, a bounded content type and at most
// MaxAttachmentMetaSize of meta.
func ValidateSend(r *syncpb.SendRequest) error {
	switch {
	case r == nil:
		return Errorf(syncpb.Code_CODE_MALFORMED, "send request is missing")
	case !ValidID(r.ConvId):
		return invalid("conv_id is not a valid id")
	case !ValidClientMsgID(r.ClientMsgId):
		return invalid("client_msg_id must be 1 to %d printable ASCII characters", MaxClientMsgIDLen)
	case len(r.Body) > MaxBodySize:
		return Errorf(syncpb.Code_CODE_TOO_LARGE, "message body is larger than %d bytes", MaxBodySize)
	case len(r.Body) == 0 && len(r.Attachments) == 0:
		return invalid("a message needs a body or attachments")
	case len(r.Attachments) > MaxAttachments:
		return Errorf(syncpb.Code_CODE_TOO_LARGE, "a message may have at most %d attachments", MaxAttachments)
	}
	if err := checkContentType("content_type", r.ContentType); err != nil {
		return err
	}
	for i, a := range r.Attachments {
		switch {
		case a == nil:
			return invalid("attachments[%d] is empty", i)
		case !ValidID(a.Id):
			return invalid("attachments[%d].id is not a valid id", i)
		case len(a.Name) > MaxAttachmentNameLen:
			return invalid("attachments[%d].name is longer than %d bytes", i, MaxAttachmentNameLen)
		case !cleanText(a.Name):
			return invalid("attachments[%d].name must be UTF-8 text without control characters", i)
		case len(a.Meta) > MaxAttachmentMetaSize:
			return Errorf(syncpb.Code_CODE_TOO_LARGE, "attachments[%d].meta is larger than %d bytes", i, MaxAttachmentMetaSize)
		}
		if err := checkContentType("attachments["+strconv.Itoa(i)+"].content_type", a.ContentType); err != nil {
			return err
		}
	}
	return nil
}

// ValidateHistory checks a HistoryRequest: conv_id a valid id and a known
// direction. Any limit is accepted; HistoryLimit says what it means.
func ValidateHistory(r *syncpb.HistoryRequest) error {
	switch {
	case r == nil:
		return Errorf(syncpb.Code_CODE_MALFORMED, "history request is missing")
	case !ValidID(r.ConvId):
		return invalid("conv_id is not a valid id")
	case r.Direction != syncpb.Direction_DIRECTION_BACKWARD && r.Direction != syncpb.Direction_DIRECTION_FORWARD:
		return invalid("direction must be backward or forward")
	}
	return nil
}

// HistoryLimit is the page size a history request's limit asks for:
// DefaultHistoryLimit for 0, at most MaxHistoryLimit.
func HistoryLimit(limit uint32) int {
	switch {
	case limit == 0:
		return DefaultHistoryLimit
	case limit > MaxHistoryLimit:
		return MaxHistoryLimit
	}
	return int(limit)
}

// ValidateReceipt checks a ReceiptReport: conv_id a valid id, seq at
// least 1 (messages start at 1; a receipt at 0 would report nothing) and
// type DELIVERED or READ. Whether seq exists is the core's to check.
func ValidateReceipt(r *syncpb.ReceiptReport) error {
	switch {
	case r == nil:
		return Errorf(syncpb.Code_CODE_MALFORMED, "receipt is missing")
	case !ValidID(r.ConvId):
		return invalid("conv_id is not a valid id")
	case r.Seq == 0:
		return invalid("seq must be at least 1")
	case r.Type != syncpb.ReceiptType_RECEIPT_TYPE_DELIVERED && r.Type != syncpb.ReceiptType_RECEIPT_TYPE_READ:
		return invalid("receipt type must be delivered or read")
	}
	return nil
}

// ValidateSearch checks a SearchRequest's shape: a query of at most
// MaxSearchQueryLen bytes of UTF-8, or at least one filter; ids valid when
// set; time bounds not negative; a known sort; a limit of at most
// MaxSearchLimit; a cursor of at most MaxSearchCursorLen bytes. The query's
// syntax is the core's to check.
func ValidateSearch(r *syncpb.SearchRequest) error {
	switch {
	case r == nil:
		return Errorf(syncpb.Code_CODE_MALFORMED, "search request is missing")
	case len(r.Query) > MaxSearchQueryLen:
		return Errorf(syncpb.Code_CODE_TOO_LARGE, "query is longer than %d bytes", MaxSearchQueryLen)
	case !utf8.ValidString(r.Query):
		return invalid("query is not valid UTF-8")
	case strings.TrimSpace(r.Query) == "" && r.ConvId == "" && r.FromUserId == "" && r.BeforeUnixMs == 0 && r.AfterUnixMs == 0 && !r.HasAttachment:
		return invalid("a query or a filter is required")
	case r.ConvId != "" && !ValidID(r.ConvId):
		return invalid("conv_id is not a valid id")
	case r.FromUserId != "" && !ValidID(r.FromUserId):
		return invalid("from is not a valid user id")
	case r.BeforeUnixMs < 0 || r.AfterUnixMs < 0:
		return invalid("before and after are Unix milliseconds, not negative")
	case r.Sort != syncpb.SearchSort_SEARCH_SORT_NEWEST && r.Sort != syncpb.SearchSort_SEARCH_SORT_RELEVANCE:
		return invalid("sort must be newest or relevance")
	case r.Limit > MaxSearchLimit:
		return invalid("limit must be at most %d", MaxSearchLimit)
	case len(r.Cursor) > MaxSearchCursorLen:
		return invalid("cursor is not one this server issued")
	}
	return nil
}

// SearchLimit is the page size a search request's limit asks for:
// DefaultSearchLimit for 0.
func SearchLimit(limit uint32) int {
	if limit == 0 {
		return DefaultSearchLimit
	}
	return int(min(limit, MaxSearchLimit))
}

// ValidateSync checks a SyncRequest: its position (ValidatePosition).
func ValidateSync(r *syncpb.SyncRequest) error {
	if r == nil {
		return Errorf(syncpb.Code_CODE_MALFORMED, "sync request is missing")
	}
	return ValidatePosition(r.Position)
}

// ValidatePosition checks a SyncPosition, which may be nil (a device that
// holds nothing): at most MaxWatermarks watermarks, each for a valid
// conv_id named once, and a token of at most MaxSyncTokenLen bytes.
func ValidatePosition(p *syncpb.SyncPosition) error {
	if p == nil {
		return nil
	}
	switch {
	case len(p.Watermarks) > MaxWatermarks:
		return Errorf(syncpb.Code_CODE_TOO_LARGE, "a sync position may hold at most %d watermarks", MaxWatermarks)
	case len(p.Token) > MaxSyncTokenLen:
		return Errorf(syncpb.Code_CODE_TOO_LARGE, "sync token is longer than %d bytes", MaxSyncTokenLen)
	}
	seen := make(map[string]struct{}, len(p.Watermarks))
	for i, w := range p.Watermarks {
		if w == nil || !ValidID(w.ConvId) {
			return invalid("watermarks[%d].conv_id is not a valid id", i)
		}
		if _, dup := seen[w.ConvId]; dup {
			return invalid("watermarks[%d] repeats conversation %s", i, w.ConvId)
		}
		seen[w.ConvId] = struct{}{}
	}
	return nil
}

// checkContentType checks an optional content type.
func checkContentType(field, s string) error {
	if len(s) > MaxContentTypeLen {
		return invalid("%s is longer than %d bytes", field, MaxContentTypeLen)
	}
	for i := 0; i < len(s); i++ {
		if s[i] < 0x20 || s[i] > 0x7e {
			return invalid("%s must be printable ASCII", field)
		}
	}
	return nil
}

// ValidateReauth checks a Reauth: an access token present (UNAUTHENTICATED
// when not) and at most MaxAccessTokenLen (TOO_LARGE). It does not verify
// the token.
func ValidateReauth(r *syncpb.Reauth) error {
	switch {
	case r == nil:
		return Errorf(syncpb.Code_CODE_MALFORMED, "reauth is missing")
	case r.AccessToken == "":
		return Errorf(syncpb.Code_CODE_UNAUTHENTICATED, "access_token is required")
	case len(r.AccessToken) > MaxAccessTokenLen:
		return Errorf(syncpb.Code_CODE_TOO_LARGE, "access_token is longer than %d bytes", MaxAccessTokenLen)
	}
	return nil
}
