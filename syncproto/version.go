package syncproto

import (
	"strings"
	"unicode"
	"unicode/utf8"

	"github.com/parley-chat/parley/syncproto/syncpb"
)

// Protocol versions this build speaks: every version from
// MinProtocolVersion to ProtocolVersion.
//
// History (also in README.md; a version is never reused or changed):
//
//	1  First version: Hello/Welcome, send and send_ack, deliver, sync,
//	   history, receipts, presence, typing, ping/pong, resync, go_away,
//	   error; uvarint-length-prefixed protobuf frames.
//
// Adding a field or a frame type that an older peer may ignore needs no new
// version (unknown fields are dropped and unknown frames skipped). A new
// version is needed when an old peer would misread the conversation:
// changed meaning of an existing field, a frame the peer must not ignore,
// or a change to the framing.
const (
	ProtocolVersion    uint32 = 1
	MinProtocolVersion uint32 = 1
)

// NewHello returns a Hello offering every version this build speaks.
// deviceID is empty for a device that has none yet. Callers add the sync
// position and client name.
func NewHello(accessToken, deviceID string) *syncpb.Hello {
	return &syncpb.Hello{
		MinVersion:  MinProtocolVersion,
		MaxVersion:  ProtocolVersion,
		AccessToken: accessToken,
		DeviceId:    deviceID,
	}
}

// Negotiate returns the highest version in both the client's offered range
// [h.min_version, h.max_version] and this build's range. It fails with
// MALFORMED for a nil Hello and UNSUPPORTED_VERSION, naming the server's
// range, when the ranges do not meet. Servers negotiate before CheckHello,
// so a client of another version learns that first.
func Negotiate(h *syncpb.Hello) (uint32, error) {
	if h == nil {
		return 0, Errorf(syncpb.Code_CODE_MALFORMED, "hello is missing")
	}
	hi := min(h.MaxVersion, ProtocolVersion)
	lo := max(h.MinVersion, MinProtocolVersion)
	if h.MaxVersion == 0 || h.MinVersion > h.MaxVersion || lo > hi {
		return 0, Errorf(syncpb.Code_CODE_UNSUPPORTED_VERSION,
			"client offers protocol versions %d to %d; this server speaks %d to %d",
			h.MinVersion, h.MaxVersion, MinProtocolVersion, ProtocolVersion)
	}
	return hi, nil
}

// CheckHello checks the fields of a Hello other than its versions (see
// Negotiate): an access token is present (UNAUTHENTICATED when not) and
// bounded, the device id is a valid id or empty for a new device, the
// client name is short UTF-8 text, and the sync position is valid (see
// ValidatePosition). Other failures are INVALID_ARGUMENT or TOO_LARGE with
// user-safe messages. It does not verify the token.
func CheckHello(h *syncpb.Hello) error {
	switch {
	case h == nil:
		return Errorf(syncpb.Code_CODE_MALFORMED, "hello is missing")
	case h.AccessToken == "":
		return Errorf(syncpb.Code_CODE_UNAUTHENTICATED, "access_token is required")
	case len(h.AccessToken) > MaxAccessTokenLen:
		return Errorf(syncpb.Code_CODE_TOO_LARGE, "access_token is longer than %d bytes", MaxAccessTokenLen)
	case h.DeviceId != "" && !ValidID(h.DeviceId):
		return invalid("device_id is not a valid id")
	case len(h.ClientName) > MaxClientNameLen:
		return invalid("client_name is longer than %d bytes", MaxClientNameLen)
	case !cleanText(h.ClientName):
		return invalid("client_name must be UTF-8 text without control characters")
	}
	return ValidatePosition(h.Position)
}

// cleanText reports whether s is valid UTF-8 without control characters.
func cleanText(s string) bool {
	return utf8.ValidString(s) && strings.IndexFunc(s, unicode.IsControl) < 0
}
