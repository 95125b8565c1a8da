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
}

// Sentinels, one per code, for errors.Is. An *Error matches a sentinel when
// the codes are equal, whatever the message.
var (
	ErrMalformed          = &Error{Code: syncpb.Code_CODE_MALFORMED}
	ErrUnauthenticated    = &Error{Code: syncpb.Code_CODE_UNAUTHENTICATED}
	ErrTokenExpired       = &Error{Code: syncpb.Code_CODE_TOKEN_EXPIRED}
	ErrForbidden          = &Error{Code: syncpb.Code_CODE_FORBIDDEN}
	ErrNotFound           = &Error{Code: syncpb.Code_CODE_NOT_FOUND}
	ErrConflict           = &Error{Code: syncpb.Code_CODE_CONFLICT}
	ErrTooLarge           = &Error{Code: syncpb.Code_CODE_TOO_LARGE}
	ErrRateLimited        = &Error{Code: syncpb.Code_CODE_RATE_LIMITED}
	ErrUnsupportedVersion = &Error{Code: syncpb.Code_CODE_UNSUPPORTED_VERSION}
	ErrUnavailable        = &Error{Code: syncpb.Code_CODE_UNAVAILABLE}
	ErrInternal           = &Error{Code: syncpb.Code_CODE_INTERNAL}
	ErrTimeout            = &Error{Code: syncpb.Code_CODE_TIMEOUT}
	ErrInvalidArgument    = &Error{Code: syncpb.Code_CODE_INVALID_ARGUMENT}
	ErrNotMember          = &Error{Code: syncpb.Code_CODE_NOT_MEMBER}
	ErrRefreshTokenReused = &Error{Code: syncpb.Code_CODE_REFRESH_TOKEN_REUSED}
	ErrRevoked            = &Error{Code: syncpb.Code_CODE_REVOKED}
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

// Is reports whether target is an *Error with the same code.
func (e *Error) Is(target error) bool {
	t, ok := target.(*Error)
	return ok && t.Code == e.Code
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
