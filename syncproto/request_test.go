package syncproto

import (
	"errors"
	"testing"

	"google.golang.org/protobuf/proto"

	"github.com/parley-chat/parley/syncproto/syncpb"
)

// TestRequestTable checks that every CoreRequest op has a row, and that
// every Frame body a client sends as a request has one: a new op or
// request frame without a row fails here.
func TestRequestTable(t *testing.T) {
	for i := 0; i < coreRequestOp.Fields().Len(); i++ {
		name := coreRequestOp.Fields().Get(i).Name()
		if Requests.ByOp(name) == nil {
			t.Errorf("CoreRequest op %s has no row in requestRows", name)
		}
	}
	// Frames a client sends that are not requests, and server frames: the
	// rows' replies and those the edge sends on its own.
	notRequests := map[string]bool{"hello": true, "pong": true, "welcome": true, "deliver": true,
		"receipt_update": true, "presence": true, "error": true, "resync": true, "go_away": true}
	for _, r := range Requests.Rows() {
		if r.FrameReply != "" {
			notRequests[string(r.FrameReply)] = true
		}
	}
	for i := 0; i < frameBody.Fields().Len(); i++ {
		name := frameBody.Fields().Get(i).Name()
		if r := Requests.ByFrame(name); (r == nil) != notRequests[string(name)] {
			t.Errorf("Frame body %s: row %v, want a row: %v", name, r, !notRequests[string(name)])
		}
	}
	for _, r := range Requests.Rows() {
		if r.Route == RouteConversation && r.Op == "" {
			t.Errorf("%s: a conversation route needs an op", r.Name())
		}
		if r.Frame != "" && !r.NoReply && r.FrameReply == "" {
			t.Errorf("%s: a request frame needs a reply frame", r.Name())
		}
	}
}

func TestNewTableRejects(t *testing.T) {
	for name, rows := range map[string][]Request{
		"unknown op":         {{Op: "no_such_op"}},
		"op twice":           {{Op: "send"}, {Op: "send"}},
		"frame of another":   {{Op: "history", Frame: "send"}},
		"no conv_id":         {{Op: "list_devices", Route: RouteConversation}},
		"reply type differs": {{Op: "send", Result: "send_ack", Frame: "send", FrameReply: "history_response"}},
		"empty":              {{}},
	} {
		if _, err := NewTable(rows); err == nil {
			t.Errorf("%s: NewTable accepted %v", name, rows)
		}
	}
}

func TestRequestOfAndCheck(t *testing.T) {
	caller := &syncpb.Caller{UserId: "u_1"}
	for _, tt := range []struct {
		name string
		req  *syncpb.CoreRequest
		op   string
		conv string
		of   error // from RequestOf
		chk  error // from CheckRequest
	}{
		{"no op", &syncpb.CoreRequest{}, "", "", ErrMalformed, ErrMalformed},
		{"send", NewRequest(caller, &syncpb.SendRequest{ConvId: "c_1", ClientMsgId: "m", Body: []byte("hi")}), "send", "c_1", nil, nil},
		{"send, bad conv", NewRequest(caller, &syncpb.SendRequest{ConvId: "C/x", ClientMsgId: "m", Body: []byte("hi")}), "", "", ErrInvalidArgument, ErrInvalidArgument},
		{"send, empty", NewRequest(caller, &syncpb.SendRequest{ConvId: "c_1", ClientMsgId: "m"}), "send", "c_1", nil, ErrInvalidArgument},
		{"send, nil body", &syncpb.CoreRequest{Op: &syncpb.CoreRequest_Send{}}, "", "", ErrMalformed, ErrMalformed},
		{"directory", NewRequest(caller, &syncpb.ListDevicesRequest{}), "list_devices", "", nil, nil},
		{"typing", NewRequest(caller, &syncpb.Typing{ConvId: "c_2"}), "typing", "c_2", nil, nil},
		{"receipt", NewRequest(caller, &syncpb.ReceiptReport{ConvId: "c_3", Seq: 1, Type: syncpb.ReceiptType_RECEIPT_TYPE_READ}), "receipt", "c_3", nil, nil},
		{"receipt at 0", NewRequest(caller, &syncpb.ReceiptReport{ConvId: "c_3", Type: syncpb.ReceiptType_RECEIPT_TYPE_READ}), "receipt", "c_3", nil, ErrInvalidArgument},
	} {
		r, body, err := RequestOf(tt.req)
		if !errors.Is(err, tt.of) || (tt.of == nil) != (err == nil) {
			t.Errorf("%s: RequestOf error %v, want %v", tt.name, err, tt.of)
			continue
		}
		if err == nil {
			if string(r.Op) != tt.op || r.Conv(body) != tt.conv {
				t.Errorf("%s: RequestOf = %s conv %q, want %s conv %q", tt.name, r.Op, r.Conv(body), tt.op, tt.conv)
			}
			if got := r.Wrap(caller, body); !proto.Equal(got, &syncpb.CoreRequest{Caller: caller, Op: tt.req.Op}) {
				t.Errorf("%s: Wrap = %v, want %v", tt.name, got, tt.req)
			}
		}
		if _, _, err := CheckRequest(tt.req); !errors.Is(err, tt.chk) || (tt.chk == nil) != (err == nil) {
			t.Errorf("%s: CheckRequest error %v, want %v", tt.name, err, tt.chk)
		}
	}
}

func TestRequestFrames(t *testing.T) {
	f := &syncpb.Frame{Id: 7, Body: &syncpb.Frame_HistoryRequest{HistoryRequest: &syncpb.HistoryRequest{ConvId: "c_1"}}}
	r, body := Requests.FrameOf(f)
	if r == nil || r.Op != "history" {
		t.Fatalf("FrameOf(history_request) = %v", r)
	}
	req := r.Wrap(&syncpb.Caller{UserId: "u_1"}, body)
	if req.GetHistory().GetConvId() != "c_1" {
		t.Fatalf("Wrap = %v", req)
	}
	resp := &syncpb.CoreResponse{Result: &syncpb.CoreResponse_History{History: &syncpb.HistoryResponse{LastSeq: 3}}}
	out, err := r.Reply(7, resp)
	if err != nil || out.Id != 7 || out.GetHistoryResponse().GetLastSeq() != 3 {
		t.Fatalf("Reply = %v, %v", out, err)
	}
	if _, err := r.Reply(7, &syncpb.CoreResponse{}); !errors.Is(err, ErrInternal) {
		t.Fatalf("Reply without the result: %v, want INTERNAL", err)
	}
	if r, _ := Requests.FrameOf(&syncpb.Frame{Body: &syncpb.Frame_Pong{Pong: &syncpb.Pong{}}}); r != nil {
		t.Fatalf("FrameOf(pong) = %v, want none", r)
	}
	if r, _ := Requests.FrameOf(&syncpb.Frame{}); r != nil {
		t.Fatalf("FrameOf(empty) = %v, want none", r)
	}
}
