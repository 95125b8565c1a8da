package syncproto

import (
	"fmt"
	"time"

	"github.com/parley-chat/parley/syncproto/syncpb"
)

// Typing indicators. A device says it is typing in a conversation; the
// indicator lapses by itself after its TTL unless renewed, so a lost
// "stopped typing" costs at most a TTL of a stale indicator. Typing is
// best effort everywhere: rate-limited per device, dropped first under
// load, never answered.
const (
	// DefaultTypingTTL is the TTL of an indicator that names none.
	DefaultTypingTTL = 5 * time.Second
	// MaxTypingTTL caps a device's TTL: a longer one is clamped.
	MaxTypingTTL = 10 * time.Second
	// MaxDatagramSize bounds a datagram's payload (one length-prefixed
	// frame): it must fit a QUIC packet on any path (RFC 9000's 1200-byte
	// minimum, less QUIC and HTTP/3 datagram overhead).
	MaxDatagramSize = 1100
)

// TypingTTL is the TTL an indicator's ttl_ms asks for: DefaultTypingTTL
// for 0, at most MaxTypingTTL.
func TypingTTL(ms uint32) time.Duration {
	d := time.Duration(ms) * time.Millisecond
	switch {
	case ms == 0:
		return DefaultTypingTTL
	case d > MaxTypingTTL:
		return MaxTypingTTL
	}
	return d
}

// ValidateTyping checks a device's Typing: conv_id a valid id. Edges then
// stamp user, device and workspace themselves and clamp the TTL; whatever
// a device put there is ignored.
func ValidateTyping(t *syncpb.Typing) error {
	switch {
	case t == nil:
		return Errorf(syncpb.Code_CODE_MALFORMED, "typing is missing")
	case !ValidID(t.ConvId):
		return invalid("conv_id is not a valid id")
	}
	return nil
}

// AppendDatagram appends the datagram payload carrying t: one
// length-prefixed Frame (id 0) with the Typing body, as on every other
// transport. It fails with TOO_LARGE above MaxDatagramSize (a typing
// indicator is ~60 bytes; only absurd ids get there), and as AppendFrame.
func AppendDatagram(dst []byte, t *syncpb.Typing) ([]byte, error) {
	start := len(dst)
	out, err := AppendFrame(dst, &syncpb.Frame{Body: &syncpb.Frame_Typing{Typing: t}})
	if err != nil {
		return dst, err
	}
	if n := len(out) - start; n > MaxDatagramSize {
		return dst, fmt.Errorf("encode datagram: %w", Errorf(syncpb.Code_CODE_TOO_LARGE, "datagram of %d bytes exceeds %d", n, MaxDatagramSize))
	}
	return out, nil
}

// DecodeDatagram decodes a datagram payload: exactly one length-prefixed
// frame of at most MaxDatagramSize bytes (DecodeFrame) whose body is
// Typing. Errors: DecodeFrame's, and MALFORMED for any other body or a
// non-zero frame id (a datagram is never a request). Receivers drop a
// datagram that fails and carry on: datagrams may be lost anyway.
func DecodeDatagram(b []byte) (*syncpb.Typing, error) {
	if len(b) > MaxDatagramSize {
		return nil, fmt.Errorf("decode datagram: %w", Errorf(syncpb.Code_CODE_TOO_LARGE, "datagram of %d bytes exceeds %d", len(b), MaxDatagramSize))
	}
	f, _, err := DecodeFrame(b, MaxDatagramSize)
	if err != nil {
		return nil, fmt.Errorf("decode datagram: %w", err)
	}
	t := f.GetTyping()
	if t == nil || f.Id != 0 {
		return nil, fmt.Errorf("decode datagram: %w", Errorf(syncpb.Code_CODE_MALFORMED, "a datagram carries one typing frame with id 0"))
	}
	return t, nil
}
