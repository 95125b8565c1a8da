package e2e_test

// The same bad request gets the same error code over HTTP /v1, WebSocket,
// raw QUIC and WebTransport: every transport checks it with its one
// validator (syncproto.Requests), and the core checks it again.

import (
	"context"
	"encoding/base64"
	"strings"
	"testing"
	"time"

	"google.golang.org/protobuf/proto"

	"github.com/parley-chat/parley/client/rest"
	"github.com/parley-chat/parley/syncproto"
	"github.com/parley-chat/parley/syncproto/syncpb"
)

// invalidCase is one bad request: its frame for device sessions and, when
// /v1 has a form of it, the HTTP request that carries the same content.
type invalidCase struct {
	name  string
	frame func(conv string) *syncpb.Frame
	http  func(conv string) (method, path string, body any)
}

// sendCase is a send of r (conv_id filled in) over both.
func sendCase(name string, r *syncpb.SendRequest) invalidCase {
	with := func(conv string) *syncpb.SendRequest {
		c := proto.Clone(r).(*syncpb.SendRequest)
		if c.ConvId == "" {
			c.ConvId = conv
		}
		return c
	}
	return invalidCase{name: name,
		frame: func(conv string) *syncpb.Frame { return &syncpb.Frame{Body: &syncpb.Frame_Send{Send: with(conv)}} },
		http: func(conv string) (string, string, any) {
			s := with(conv)
			body := map[string]any{"conv_id": s.ConvId, "client_msg_id": s.ClientMsgId, "content_type": s.ContentType}
			if len(s.Body) > 0 {
				body["body_base64"] = base64.StdEncoding.EncodeToString(s.Body)
			}
			var atts []map[string]any
			for _, a := range s.Attachments {
				atts = append(atts, map[string]any{"id": a.Id, "name": a.Name, "content_type": a.ContentType,
					"meta_base64": base64.StdEncoding.EncodeToString(a.Meta)})
			}
			if atts != nil {
				body["attachments"] = atts
			}
			return "POST", "/v1/messages", body
		}}
}

func attachments(n int, mod func(*syncpb.Attachment)) []*syncpb.Attachment {
	out := make([]*syncpb.Attachment, n)
	for i := range out {
		out[i] = &syncpb.Attachment{Id: syncproto.NewID("f_"), Name: "a.png", ContentType: "image/png"}
		if mod != nil {
			mod(out[i])
		}
	}
	return out
}

var invalidCases = []invalidCase{
	sendCase("bad conv id", &syncpb.SendRequest{ConvId: "C/../x", ClientMsgId: "m1", Body: []byte("hi")}),
	sendCase("bad client_msg_id", &syncpb.SendRequest{ClientMsgId: "has space", Body: []byte("hi")}),
	sendCase("empty message", &syncpb.SendRequest{ClientMsgId: "m1"}),
	sendCase("body too large", &syncpb.SendRequest{ClientMsgId: "m1", Body: make([]byte, syncproto.MaxBodySize+1)}),
	sendCase("content type not ASCII", &syncpb.SendRequest{ClientMsgId: "m1", Body: []byte("hi"), ContentType: "text/é"}),
	sendCase("too many attachments", &syncpb.SendRequest{ClientMsgId: "m1", Attachments: attachments(syncproto.MaxAttachments+1, nil)}),
	sendCase("attachment id", &syncpb.SendRequest{ClientMsgId: "m1", Attachments: attachments(1, func(a *syncpb.Attachment) { a.Id = "F/x" })}),
	sendCase("attachment name with a control character", &syncpb.SendRequest{ClientMsgId: "m1",
		Attachments: attachments(1, func(a *syncpb.Attachment) { a.Name = "a\x07.png" })}),
	sendCase("attachment name too long", &syncpb.SendRequest{ClientMsgId: "m1",
		Attachments: attachments(1, func(a *syncpb.Attachment) { a.Name = strings.Repeat("a", syncproto.MaxAttachmentNameLen+1) })}),
	sendCase("attachment content type", &syncpb.SendRequest{ClientMsgId: "m1",
		Attachments: attachments(1, func(a *syncpb.Attachment) { a.ContentType = "image/\x01" })}),
	sendCase("attachment meta too large", &syncpb.SendRequest{ClientMsgId: "m1",
		Attachments: attachments(1, func(a *syncpb.Attachment) { a.Meta = make([]byte, syncproto.MaxAttachmentMetaSize+1) })}),
	{name: "history of a bad conv id",
		frame: func(string) *syncpb.Frame {
			return &syncpb.Frame{Body: &syncpb.Frame_HistoryRequest{HistoryRequest: &syncpb.HistoryRequest{ConvId: "NOT_VALID",
				Direction: syncpb.Direction_DIRECTION_BACKWARD}}}
		},
		http: func(string) (string, string, any) { return "GET", "/v1/conversations/NOT_VALID/history", nil }},
	{name: "receipt of a bad conv id",
		frame: func(string) *syncpb.Frame {
			return &syncpb.Frame{Body: &syncpb.Frame_Receipt{Receipt: &syncpb.ReceiptReport{ConvId: "C/x", Seq: 1,
				Type: syncpb.ReceiptType_RECEIPT_TYPE_READ}}}
		},
		http: func(string) (string, string, any) {
			return "POST", "/v1/receipts", map[string]any{"conv_id": "C/x", "seq": 1, "type": "read"}
		}},
	{name: "receipt at seq 0",
		frame: func(conv string) *syncpb.Frame {
			return &syncpb.Frame{Body: &syncpb.Frame_Receipt{Receipt: &syncpb.ReceiptReport{ConvId: conv,
				Type: syncpb.ReceiptType_RECEIPT_TYPE_READ}}}
		},
		http: func(conv string) (string, string, any) {
			return "POST", "/v1/receipts", map[string]any{"conv_id": conv, "seq": 0, "type": "read"}
		}},
	{name: "sync repeating a conversation", frame: func(conv string) *syncpb.Frame {
		return &syncpb.Frame{Body: &syncpb.Frame_SyncRequest{SyncRequest: &syncpb.SyncRequest{Position: &syncpb.SyncPosition{
			Watermarks: []*syncpb.Watermark{{ConvId: conv}, {ConvId: conv}}}}}}
	}},
	{name: "sync with too many watermarks", frame: func(conv string) *syncpb.Frame {
		wm := make([]*syncpb.Watermark, syncproto.MaxWatermarks+1)
		for i := range wm {
			wm[i] = &syncpb.Watermark{ConvId: syncproto.NewConversationID()}
		}
		return &syncpb.Frame{Body: &syncpb.Frame_SyncRequest{SyncRequest: &syncpb.SyncRequest{Position: &syncpb.SyncPosition{Watermarks: wm}}}}
	}},
	{name: "presence of a bad user id", frame: func(string) *syncpb.Frame {
		return &syncpb.Frame{Body: &syncpb.Frame_PresenceSubscribe{PresenceSubscribe: &syncpb.PresenceSubscribe{UserIds: []string{"U/x"}}}}
	}},
}

func TestInvalidRequestsEveryTransport(t *testing.T) {
	s := startTestSystem(t, "", nil)
	rc, sess := s.User(t, "acme", "ana")
	c, err := rc.CreateConversation(t.Context(), rest.NewConversation{Type: "group", Title: "checks"})
	if err != nil {
		t.Fatal(err)
	}
	codes := make([]map[string]string, len(invalidCases)) // case -> transport -> code
	for i := range codes {
		codes[i] = map[string]string{}
	}
	for i, tc := range invalidCases {
		if tc.http == nil {
			continue
		}
		method, path, body := tc.http(c.ID)
		var b []byte
		if body != nil {
			b = jsonBody(t, body)
		}
		r := s.do(t, method, path, sess.AccessToken, b)
		codes[i]["http"] = r.code(t)
	}
	for _, transport := range []string{"ws", "quic", "wt"} {
		ctx, cancel := context.WithTimeout(t.Context(), 30*time.Second)
		tr, err := s.Dialer(transport)(ctx)
		if err != nil {
			cancel()
			t.Fatalf("dial %s: %v", transport, err)
		}
		r := &rawSession{t: t, tr: tr, next: 1}
		if err := tr.WriteFrame(ctx, &syncpb.Frame{Id: 1, Body: &syncpb.Frame_Hello{Hello: syncproto.NewHello(sess.AccessToken, "")}}); err != nil {
			t.Fatalf("hello over %s: %v", transport, err)
		}
		if w := r.answer(1); w.GetWelcome() == nil {
			t.Fatalf("hello over %s: %v", transport, w)
		}
		for i, tc := range invalidCases {
			answer := r.do(tc.frame(c.ID))
			if e := answer.GetError(); e != nil {
				codes[i][transport] = syncproto.CodeName(e.Code)
			} else {
				codes[i][transport] = "ok"
			}
		}
		_ = tr.Close(nil)
		cancel()
	}
	for i, tc := range invalidCases {
		got := codes[i]
		want := got["ws"]
		if want == "ok" || want == "" {
			t.Errorf("%s: accepted over ws: %v", tc.name, got)
			continue
		}
		for _, code := range got {
			if code != want {
				t.Errorf("%s: codes differ by transport: %v", tc.name, got)
				break
			}
		}
		t.Logf("%s: %s %v", tc.name, want, got)
	}
}
