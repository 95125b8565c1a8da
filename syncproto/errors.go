package syncproto

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"strings"
	"time"

	"github.com/parley-chat/parley/syncproto/syncpb"
)

// Error is an error that crosses the wire: a stable numeric code and a
// message that is safe to show to a user. Internal detail belongs in logs,
// never in Message.
type Error struct {
	Code       syncpb.Code
	Message    string
	RetryAfter time.Duration

	sentinel bool // one of the ErrX below: matches every error of its code
}

// Sentinels, one per code, for errors.Is. An *Error matches the sentinel
// of its code, whatever its message; two other errors match only when they
// are the same value, so errors.Is tells apart errors that share a code
// (a package's own ErrX made with Errorf).
var (
	ErrMalformed          = &Error{Code: syncpb.Code_CODE_MALFORMED, sentinel: true}
	ErrUnauthenticated    = &Error{Code: syncpb.Code_CODE_UNAUTHENTICATED, sentinel: true}
	ErrTokenExpired       = &Error{Code: syncpb.Code_CODE_TOKEN_EXPIRED, sentinel: true}
	ErrForbidden          = &Error{Code: syncpb.Code_CODE_FORBIDDEN, sentinel: true}
	ErrNotFound           = &Error{Code: syncpb.Code_CODE_NOT_FOUND, sentinel: true}
	ErrConflict           = &Error{Code: syncpb.Code_CODE_CONFLICT, sentinel: true}
	ErrTooLarge           = &Error{Code: syncpb.Code_CODE_TOO_LARGE, sentinel: true}
	ErrRateLimited        = &Error{Code: syncpb.Code_CODE_RATE_LIMITED, sentinel: true}
	ErrUnsupportedVersion = &Error{Code: syncpb.Code_CODE_UNSUPPORTED_VERSION, sentinel: true}
	ErrUnavailable        = &Error{Code: syncpb.Code_CODE_UNAVAILABLE, sentinel: true}
	ErrInternal           = &Error{Code: syncpb.Code_CODE_INTERNAL, sentinel: true}
	ErrTimeout            = &Error{Code: syncpb.Code_CODE_TIMEOUT, sentinel: true}
	ErrInvalidArgument    = &Error{Code: syncpb.Code_CODE_INVALID_ARGUMENT, sentinel: true}
	ErrNotMember          = &Error{Code: syncpb.Code_CODE_NOT_MEMBER, sentinel: true}
	ErrRefreshTokenReused = &Error{Code: syncpb.Code_CODE_REFRESH_TOKEN_REUSED, sentinel: true}
	ErrRevoked            = &Error{Code: syncpb.Code_CODE_REVOKED, sentinel: true}
)

// Errorf returns an *Error with code and a user-safe formatted message.
func Errorf(code syncpb.Code, format string, args ...any) *Error {
	return &Error{Code: code, Message: fmt.Sprintf(format, args...)}
}

func (e *Error) Error() string {
	if e.Message == "" {
		return "syncproto: " + CodeName(e.Code)
	}
	return "syncproto: " + CodeName(e.Code) + ": " + e.Message
}

// Is reports whether e and target have the same code and one of them is
// that code's sentinel (ErrNotFound matches every NOT_FOUND error, both
// ways). errors.Is has compared the values already: an *Error made with
// Errorf matches only itself and its code's sentinel.
func (e *Error) Is(target error) bool {
	t, ok := target.(*Error)
	return ok && (t.sentinel || e.sentinel) && t.Code == e.Code
}

// Retryable reports whether the same request may succeed if sent again.
func (e *Error) Retryable() bool {
	switch e.Code {
	case syncpb.Code_CODE_UNAVAILABLE, syncpb.Code_CODE_TIMEOUT, syncpb.Code_CODE_RATE_LIMITED:
		return true
	}
	return false
}

// Proto returns the wire form of e.
func (e *Error) Proto() *syncpb.Error {
	return &syncpb.Error{Code: e.Code, Message: e.Message, RetryAfterMs: uint32(e.RetryAfter / time.Millisecond)}
}

// FromProto returns the Go form of a wire error, or nil for nil or CODE_OK.
func FromProto(p *syncpb.Error) *Error {
	if p == nil || p.Code == syncpb.Code_CODE_OK {
		return nil
	}
	return &Error{Code: p.Code, Message: p.Message, RetryAfter: time.Duration(p.RetryAfterMs) * time.Millisecond}
}

// AsError converts any error to an *Error: an *Error in the chain is
// returned as is, context errors become TIMEOUT, and anything else becomes
// INTERNAL with a generic message (the detail stays with the caller's log).
func AsError(err error) *Error {
	if err == nil {
		return nil
	}
	var e *Error
	if errors.As(err, &e) {
		return e
	}
	if errors.Is(err, context.DeadlineExceeded) {
		return &Error{Code: syncpb.Code_CODE_TIMEOUT, Message: "the request timed out"}
	}
	if errors.Is(err, context.Canceled) {
		return &Error{Code: syncpb.Code_CODE_UNAVAILABLE, Message: "the request was cancelled"}
	}
	return &Error{Code: syncpb.Code_CODE_INTERNAL, Message: "internal error"}
}

// CodeOf returns the wire code of err (CODE_OK for nil).
func CodeOf(err error) syncpb.Code {
	if err == nil {
		return syncpb.Code_CODE_OK
	}
	return AsError(err).Code
}

// CodeName is the stable lower-case name of a code, used in JSON errors:
// CODE_NOT_MEMBER -> "not_member". Unknown codes are "code_<n>".
func CodeName(c syncpb.Code) string {
	n, ok := syncpb.Code_name[int32(c)]
	if !ok {
		return fmt.Sprintf("code_%d", int32(c))
	}
	return strings.ToLower(strings.TrimPrefix(n, "CODE_"))
}

// HTTPStatus maps a code to the status the /v1 API answers with.
func HTTPStatus(c syncpb.Code) int {
	switch c {
	case syncpb.Code_CODE_OK:
		return http.StatusOK
	case syncpb.Code_CODE_MALFORMED, syncpb.Code_CODE_INVALID_ARGUMENT, syncpb.Code_CODE_UNSUPPORTED_VERSION:
		return http.StatusBadRequest
	case syncpb.Code_CODE_UNAUTHENTICATED, syncpb.Code_CODE_TOKEN_EXPIRED, syncpb.Code_CODE_REFRESH_TOKEN_REUSED,
		syncpb.Code_CODE_REVOKED:
		return http.StatusUnauthorized
	case syncpb.Code_CODE_FORBIDDEN, syncpb.Code_CODE_NOT_MEMBER:
		return http.StatusForbidden
	case syncpb.Code_CODE_NOT_FOUND:
		return http.StatusNotFound
	case syncpb.Code_CODE_CONFLICT:
		return http.StatusConflict
	case syncpb.Code_CODE_TOO_LARGE:
		return http.StatusRequestEntityTooLarge
	case syncpb.Code_CODE_RATE_LIMITED:
		return http.StatusTooManyRequests
	case syncpb.Code_CODE_UNAVAILABLE:
		return http.StatusServiceUnavailable
	case syncpb.Code_CODE_TIMEOUT:
		return http.StatusGatewayTimeout
	default:
		return http.StatusInternalServerError
	}
}
