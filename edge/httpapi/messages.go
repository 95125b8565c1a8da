package httpapi

import (
	"encoding/base64"
	"net/http"
	"time"

	"github.com/parley-chat/parley/syncproto"
	"github.com/parley-chat/parley/syncproto/syncpb"
)

type sendRequest struct {
	ConvID      string           `json:"conv_id"`
	ClientMsgID string           `json:"client_msg_id"`
	Body        *string          `json:"body"`
	BodyBase64  *string          `json:"body_base64"`
	ContentType string           `json:"content_type"`
	Attachments []attachmentJSON `json:"attachments"`
}

type sendResponse struct {
	ConvID      string `json:"conv_id"`
	MsgID       string `json:"msg_id"`
	Seq         uint64 `json:"seq"`
	TS          int64  `json:"ts"`
	ClientMsgID string `json:"client_msg_id"`
	Duplicate   bool   `json:"duplicate"`
}

// send: POST /v1/messages. 201 when the message is committed by this
// request, 200 with the first result when the caller already sent it
// under this client_msg_id, 409 (the core's CONFLICT) when the caller used
// the id for other content.
func (a *API) send(c *call) error {
	var req sendRequest
	if err := c.decode(&req); err != nil {
		return err
	}
	if err := checkID("conv_id", req.ConvID); err != nil {
		return err
	}
	c.info.conv = req.ConvID
	// The JSON forms are decoded here; the send's own checks are its
	// validator's (syncproto.ValidateSend), as on every transport.
	var body []byte
	switch {
	case req.Body != nil && req.BodyBase64 != nil:
		return invalid("send body or body_base64, not both")
	case req.Body != nil:
		body = []byte(*req.Body)
		if req.ContentType == "" {
			req.ContentType = defaultContentType
		}
	case req.BodyBase64 != nil:
		var err error
		if body, err = decodeBase64(*req.BodyBase64); err != nil {
			return invalid("body_base64 is not valid base64")
		}
		if req.ContentType == "" {
			req.ContentType = "application/octet-stream"
		}
	}
	atts := make([]*syncpb.Attachment, 0, len(req.Attachments))
	for i, at := range req.Attachments {
		meta, err := decodeBase64(at.MetaBase64)
		if err != nil {
			return invalid("attachments[%d].meta_base64 is not valid base64", i)
		}
		atts = append(atts, &syncpb.Attachment{Id: at.ID, Name: at.Name, ContentType: at.ContentType, Size: at.Size, Meta: meta})
	}
	start := time.Now()
	var r *syncpb.CoreResponse
	sendCore := func(atts []*syncpb.Attachment) (err error) {
		r, err = a.callCore(c, &syncpb.CoreRequest{Op: &syncpb.CoreRequest_Send{Send: &syncpb.SendRequest{
			ConvId: req.ConvID, ClientMsgId: req.ClientMsgID, Body: body, ContentType: req.ContentType, Attachments: atts,
		}}})
		return err
	}
	var err error
	if a.attach != nil && len(atts) > 0 {
		// The send as the client wrote it is checked first, so a bad one
		// gets the same answer on every transport.
		if _, _, err := syncproto.CheckRequest(&syncpb.CoreRequest{Op: &syncpb.CoreRequest_Send{Send: &syncpb.SendRequest{
			ConvId: req.ConvID, ClientMsgId: req.ClientMsgID, Body: body, ContentType: req.ContentType, Attachments: atts,
		}}}); err != nil {
			return err
		}
		err = a.attachAndSend(c, req.ConvID, req.ClientMsgID, atts, sendCore)
	} else {
		err = sendCore(atts)
	}
	a.metrics.Send("http", start, err)
	if err != nil {
		return err
	}
	ack := r.GetSendAck()
	if ack == nil {
		return missing("send ack")
	}
	status := http.StatusCreated
	if ack.Duplicate {
		status = http.StatusOK
	}
	writeJSON(c.w, status, sendResponse{ConvID: ack.ConvId, MsgID: ack.MsgId, Seq: ack.Seq, TS: ack.TsUnixMs,
		ClientMsgID: ack.ClientMsgId, Duplicate: ack.Duplicate})
	return nil
}

// decodeBase64 accepts standard base64, padded or not.
func decodeBase64(s string) ([]byte, error) {
	if b, err := base64.StdEncoding.DecodeString(s); err == nil {
		return b, nil
	}
	return base64.RawStdEncoding.DecodeString(s)
}

type historyResponse struct {
	ConvID     string        `json:"conv_id"`
	Messages   []messageJSON `json:"messages"`
	NextCursor uint64        `json:"next_cursor"`
	LastSeq    uint64        `json:"last_seq"`
}

// history: GET /v1/conversations/{id}/history?cursor=&limit=&dir=.
// cursor is an exclusive seq bound (backward: seq < cursor, 0 = from the
// end; forward: seq > cursor); next_cursor continues, 0 when done.
func (a *API) history(c *call) error {
	id, err := c.convID()
	if err != nil {
		return err
	}
	cursor, err := queryUint(c.r, "cursor", 1<<63)
	if err != nil {
		return err
	}
	limit, err := queryUint(c.r, "limit", syncproto.MaxHistoryLimit)
	if err != nil {
		return err
	}
	if limit == 0 {
		limit = syncproto.DefaultHistoryLimit
	}
	dir := syncpb.Direction_DIRECTION_BACKWARD
	switch c.r.URL.Query().Get("dir") {
	case "", "backward":
	case "forward":
		dir = syncpb.Direction_DIRECTION_FORWARD
	default:
		return invalid(`dir must be "backward" or "forward"`)
	}
	r, err := a.callCore(c, &syncpb.CoreRequest{Op: &syncpb.CoreRequest_History{History: &syncpb.HistoryRequest{
		ConvId: id, Cursor: cursor, Limit: uint32(limit), Direction: dir,
	}}})
	if err != nil {
		return err
	}
	h := r.GetHistory()
	if h == nil {
		return missing("history")
	}
	out := historyResponse{ConvID: id, Messages: make([]messageJSON, 0, len(h.Messages)), NextCursor: h.NextCursor, LastSeq: h.LastSeq}
	for _, m := range h.Messages {
		out.Messages = append(out.Messages, toMessage(m))
	}
	writeJSON(c.w, http.StatusOK, out)
	return nil
}

type receiptRequest struct {
	ConvID string `json:"conv_id"`
	Seq    uint64 `json:"seq"`
	Type   string `json:"type"`
}

type receiptResponse struct {
	ConvID string `json:"conv_id"`
	Type   string `json:"type"`
	Seq    uint64 `json:"seq"`
}

// receipt: POST /v1/receipts. The answer carries the device's position
// after the merge, which never goes back.
func (a *API) receipt(c *call) error {
	var req receiptRequest
	if err := c.decode(&req); err != nil {
		return err
	}
	if err := checkID("conv_id", req.ConvID); err != nil {
		return err
	}
	c.info.conv = req.ConvID
	typ, ok := receiptTypes[req.Type]
	if !ok {
		return invalid(`type must be "delivered" or "read"`)
	}
	// seq (at least 1) is checked by the receipt's validator
	// (syncproto.ValidateReceipt), as on every transport.
	r, err := a.callCore(c, &syncpb.CoreRequest{Op: &syncpb.CoreRequest_Receipt{Receipt: &syncpb.ReceiptReport{
		ConvId: req.ConvID, Seq: req.Seq, Type: typ,
	}}})
	if err != nil {
		return err
	}
	ack := r.GetReceiptAck()
	if ack == nil {
		return missing("receipt ack")
	}
	writeJSON(c.w, http.StatusOK, receiptResponse{ConvID: ack.ConvId, Type: receiptTypeName(ack.Type), Seq: ack.Seq})
	return nil
}

type memberReceiptsJSON struct {
	UserID       string `json:"user_id"`
	DeliveredSeq uint64 `json:"delivered_seq"`
	ReadSeq      uint64 `json:"read_seq"`
	DeliveredTS  int64  `json:"delivered_ts,omitempty"`
	ReadTS       int64  `json:"read_ts,omitempty"`
}

type receiptsResponse struct {
	ConvID         string               `json:"conv_id"`
	LastSeq        uint64               `json:"last_seq"`
	MemberCount    uint32               `json:"member_count"`
	DeliveredCount uint32               `json:"delivered_count"`
	ReadCount      uint32               `json:"read_count"`
	Members        []memberReceiptsJSON `json:"members,omitempty"`
}

// receipts: GET /v1/conversations/{id}/receipts. Per member up to the
// large-group size; counts of members who received and read the last
// message always.
func (a *API) receipts(c *call) error {
	id, err := c.convID()
	if err != nil {
		return err
	}
	r, err := a.callCore(c, &syncpb.CoreRequest{Op: &syncpb.CoreRequest_GetReceipts{GetReceipts: &syncpb.GetReceiptsRequest{ConvId: id}}})
	if err != nil {
		return err
	}
	l := r.GetReceipts()
	if l == nil {
		return missing("receipts")
	}
	out := receiptsResponse{ConvID: l.ConvId, LastSeq: l.LastSeq, MemberCount: l.MemberCount,
		DeliveredCount: l.DeliveredCount, ReadCount: l.ReadCount}
	for _, m := range l.Members {
		out.Members = append(out.Members, memberReceiptsJSON{UserID: m.UserId, DeliveredSeq: m.DeliveredSeq, ReadSeq: m.ReadSeq,
			DeliveredTS: m.DeliveredAtUnixMs, ReadTS: m.ReadAtUnixMs})
	}
	writeJSON(c.w, http.StatusOK, out)
	return nil
}

type unreadJSON struct {
	ConvID  string `json:"conv_id"`
	Unread  uint64 `json:"unread"`
	ReadSeq uint64 `json:"read_seq"`
	LastSeq uint64 `json:"last_seq"`
}

type unreadResponse struct {
	Total         uint64       `json:"total"`
	Conversations []unreadJSON `json:"conversations"`
}

// unread: GET /v1/unread. The caller's unread counts: the total, and each
// conversation with any (newest first).
func (a *API) unread(c *call) error {
	r, err := a.callCore(c, &syncpb.CoreRequest{Op: &syncpb.CoreRequest_ListConversations{ListConversations: &syncpb.ListConversationsRequest{}}})
	if err != nil {
		return err
	}
	out := unreadResponse{Conversations: []unreadJSON{}}
	for _, cv := range r.GetConversations().GetConversations() {
		if cv.Unread == 0 {
			continue
		}
		out.Total += cv.Unread
		out.Conversations = append(out.Conversations, unreadJSON{ConvID: cv.Id, Unread: cv.Unread, ReadSeq: cv.ReadSeq, LastSeq: cv.LastSeq})
	}
	writeJSON(c.w, http.StatusOK, out)
	return nil
}
