package syncproto

import (
	"errors"
	"fmt"
	"strings"
	"testing"

	"google.golang.org/protobuf/proto"

	"github.com/parley-chat/parley/syncproto/syncpb"
)

func TestValidateRevocation(t *testing.T) {
	rev := func(edit func(r *syncpb.Revocation)) *syncpb.Revocation {
		r := goldenRevocation()
		edit(r)
		return r
	}
	many := make([]string, MaxRevocationDevices+1)
	for i := range many {
		many[i] = fmt.Sprintf("d_%d", i)
	}
	tests := []struct {
		name string
		r    *syncpb.Revocation
		want *Error
	}{
		{"golden", goldenRevocation(), nil},
		{"revoked device", rev(func(r *syncpb.Revocation) { r.DeviceIds = r.DeviceIds[:1]; r.NotBeforeUnixMs = NotBeforeAll }), nil},
		{"most devices", rev(func(r *syncpb.Revocation) { r.DeviceIds = many[:MaxRevocationDevices] }), nil},
		{"nil", nil, ErrMalformed},
		{"no workspace", rev(func(r *syncpb.Revocation) { r.WorkspaceId = "" }), ErrInvalidArgument},
		{"bad user", rev(func(r *syncpb.Revocation) { r.UserId = "U!" }), ErrInvalidArgument},
		{"no devices", rev(func(r *syncpb.Revocation) { r.DeviceIds = nil }), ErrInvalidArgument},
		{"too many devices", rev(func(r *syncpb.Revocation) { r.DeviceIds = many }), ErrInvalidArgument},
		{"bad device", rev(func(r *syncpb.Revocation) { r.DeviceIds[1] = strings.Repeat("d", MaxIDLen+1) }), ErrInvalidArgument},
		{"no not_before", rev(func(r *syncpb.Revocation) { r.NotBeforeUnixMs = 0 }), ErrInvalidArgument},
		{"no revoke time", rev(func(r *syncpb.Revocation) { r.RevokedUnixMs = -1 }), ErrInvalidArgument},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			err := ValidateRevocation(tt.r)
			if (tt.want == nil) != (err == nil) || (tt.want != nil && !errors.Is(err, tt.want)) {
				t.Fatalf("ValidateRevocation = %v, want %v", err, tt.want)
			}
			b, merr := proto.Marshal(tt.r)
			if merr != nil {
				t.Fatal(merr)
			}
			got, derr := DecodeRevocation(b)
			switch {
			case tt.want == nil && (derr != nil || !proto.Equal(got, tt.r)):
				t.Fatalf("DecodeRevocation = %v, %v", got, derr)
			case tt.want != nil && tt.r != nil && !errors.Is(derr, tt.want):
				t.Fatalf("DecodeRevocation error %v, want %v", derr, tt.want)
			}
		})
	}
	if _, err := DecodeRevocation([]byte{0x0a, 0x05, 'w'}); !errors.Is(err, ErrMalformed) {
		t.Fatalf("truncated: %v, want MALFORMED", err)
	}
}

func TestValidateReauth(t *testing.T) {
	for _, tt := range []struct {
		name string
		r    *syncpb.Reauth
		want *Error
	}{
		{"token", &syncpb.Reauth{AccessToken: "a.b"}, nil},
		{"nil", nil, ErrMalformed},
		{"no token", &syncpb.Reauth{}, ErrUnauthenticated},
		{"long token", &syncpb.Reauth{AccessToken: strings.Repeat("a", MaxAccessTokenLen+1)}, ErrTooLarge},
	} {
		if err := ValidateReauth(tt.r); (tt.want == nil) != (err == nil) || (tt.want != nil && !errors.Is(err, tt.want)) {
			t.Errorf("%s: ValidateReauth = %v, want %v", tt.name, err, tt.want)
		}
	}
}

func TestRevocationPage(t *testing.T) {
	for in, want := range map[uint32]int{0: DefaultRevocationPage, 1: 1, MaxRevocationPage: MaxRevocationPage, MaxRevocationPage + 1: MaxRevocationPage} {
		if got := RevocationPage(in); got != want {
			t.Errorf("RevocationPage(%d) = %d, want %d", in, got, want)
		}
	}
}
