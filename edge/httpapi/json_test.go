package httpapi

import (
	"testing"

	"github.com/parley-chat/parley/syncproto/syncpb"
)

func TestMessageBodyEncoding(t *testing.T) {
	for _, tc := range []struct {
		ct   string
		body []byte
		text bool
	}{
		{"", []byte("hi"), true},
		{"text/plain; charset=utf-8", []byte("héllo"), true},
		{"TEXT/Markdown", []byte("# x"), true},
		{"application/json", []byte(`{"event":"member_joined"}`), true},
		{"application/vnd.parley+json; v=1", []byte(`{}`), true},
		{"text/plain", []byte{0xff, 0xfe}, false},
		{"application/octet-stream", []byte("hi"), false},
		{"application/pgp-encrypted", []byte("x"), false},
		{"image/png", nil, false},
	} {
		m := toMessage(&syncpb.Message{ContentType: tc.ct, Body: tc.body})
		if (m.Body != nil) != tc.text || (m.BodyBase64 != nil) == tc.text {
			t.Errorf("content type %q body %q: body=%v body_base64=%v, want text=%v", tc.ct, tc.body, m.Body, m.BodyBase64, tc.text)
		}
	}
}
