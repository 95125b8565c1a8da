package syncproto

import (
	"errors"
	"fmt"
	"strings"
	"testing"

	"github.com/parley-chat/parley/syncproto/syncpb"
)

func TestNegotiate(t *testing.T) {
	tests := []struct {
		name     string
		min, max uint32
		want     uint32 // 0: UNSUPPORTED_VERSION
	}{
		{"exact", 1, 1, 1},
		{"newer client overlapping", 1, 5, ProtocolVersion},
		{"min unset", 0, 1, 1},
		{"client only newer", ProtocolVersion + 1, ProtocolVersion + 3, 0},
		{"client only older", 0, MinProtocolVersion - 1, 0},
		{"nothing offered", 0, 0, 0},
		{"inverted range", 2, 1, 0},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := Negotiate(&syncpb.Hello{MinVersion: tt.min, MaxVersion: tt.max})
			if tt.want != 0 {
				if err != nil || got != tt.want {
					t.Fatalf("Negotiate = %d, %v; want %d", got, err, tt.want)
				}
				return
			}
			if !errors.Is(err, ErrUnsupportedVersion) || got != 0 {
				t.Fatalf("Negotiate = %d, %v; want UNSUPPORTED_VERSION", got, err)
			}
			if msg := AsError(err).Message; !strings.Contains(msg, fmt.Sprintf("speaks %d to %d", MinProtocolVersion, ProtocolVersion)) {
				t.Fatalf("message %q does not name the server's range", msg)
			}
		})
	}
	if _, err := Negotiate(nil); !errors.Is(err, ErrMalformed) {
		t.Fatalf("Negotiate(nil) = %v, want MALFORMED", err)
	}
	if v, err := Negotiate(NewHello("t", "")); err != nil || v != ProtocolVersion {
		t.Fatalf("Negotiate(NewHello) = %d, %v", v, err)
	}
}

func TestCheckHello(t *testing.T) {
	ok := func(edit func(h *syncpb.Hello)) *syncpb.Hello {
		h := goldenHello()
		edit(h)
		return h
	}
	many := make([]*syncpb.Watermark, MaxWatermarks+1)
	for i := range many {
		many[i] = &syncpb.Watermark{ConvId: fmt.Sprintf("c_%d", i)}
	}
	tests := []struct {
		name string
		h    *syncpb.Hello
		want *Error // nil: valid
	}{
		{"golden", goldenHello(), nil},
		{"new device", ok(func(h *syncpb.Hello) { h.DeviceId = "" }), nil},
		{"no position", ok(func(h *syncpb.Hello) { h.Position = nil }), nil},
		{"token only", &syncpb.Hello{AccessToken: "t"}, nil},
		{"client name at limit", ok(func(h *syncpb.Hello) { h.ClientName = strings.Repeat("é", MaxClientNameLen/2) }), nil},
		{"nil", nil, ErrMalformed},
		{"no token", ok(func(h *syncpb.Hello) { h.AccessToken = "" }), ErrUnauthenticated},
		{"token too long", ok(func(h *syncpb.Hello) { h.AccessToken = strings.Repeat("t", MaxAccessTokenLen+1) }), ErrTooLarge},
		{"bad device id", ok(func(h *syncpb.Hello) { h.DeviceId = "D_UPPER" }), ErrInvalidArgument},
		{"client name too long", ok(func(h *syncpb.Hello) { h.ClientName = strings.Repeat("x", MaxClientNameLen+1) }), ErrInvalidArgument},
		{"client name control", ok(func(h *syncpb.Hello) { h.ClientName = "app\n" }), ErrInvalidArgument},
		{"client name not utf-8", ok(func(h *syncpb.Hello) { h.ClientName = "\xff" }), ErrInvalidArgument},
		{"bad watermark", ok(func(h *syncpb.Hello) { h.Position.Watermarks[1].ConvId = "" }), ErrInvalidArgument},
		{"too many watermarks", ok(func(h *syncpb.Hello) { h.Position.Watermarks = many }), ErrTooLarge},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			checkValidation(t, CheckHello(tt.h), tt.want)
		})
	}
}

// checkValidation fails unless err is nil when want is, or an *Error with
// want's code and a message.
func checkValidation(t *testing.T, err error, want *Error) {
	t.Helper()
	if want == nil {
		if err != nil {
			t.Fatalf("err = %v, want nil", err)
		}
		return
	}
	var e *Error
	if !errors.As(err, &e) || !errors.Is(err, want) || e.Message == "" {
		t.Fatalf("err = %v, want an *Error with code %s and a message", err, CodeName(want.Code))
	}
}
