package syncproto

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"os"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/parley-chat/parley/syncproto/syncpb"
)

// codeTable is the error code table of README.md.
var codeTable = []struct {
	code      syncpb.Code
	sentinel  *Error
	name      string
	status    int
	retryable bool
}{
	{syncpb.Code_CODE_MALFORMED, ErrMalformed, "malformed", http.StatusBadRequest, false},
	{syncpb.Code_CODE_UNAUTHENTICATED, ErrUnauthenticated, "unauthenticated", http.StatusUnauthorized, false},
	{syncpb.Code_CODE_TOKEN_EXPIRED, ErrTokenExpired, "token_expired", http.StatusUnauthorized, false},
	{syncpb.Code_CODE_FORBIDDEN, ErrForbidden, "forbidden", http.StatusForbidden, false},
	{syncpb.Code_CODE_NOT_FOUND, ErrNotFound, "not_found", http.StatusNotFound, false},
	{syncpb.Code_CODE_CONFLICT, ErrConflict, "conflict", http.StatusConflict, false},
	{syncpb.Code_CODE_TOO_LARGE, ErrTooLarge, "too_large", http.StatusRequestEntityTooLarge, false},
	{syncpb.Code_CODE_RATE_LIMITED, ErrRateLimited, "rate_limited", http.StatusTooManyRequests, true},
	{syncpb.Code_CODE_UNSUPPORTED_VERSION, ErrUnsupportedVersion, "unsupported_version", http.StatusBadRequest, false},
	{syncpb.Code_CODE_UNAVAILABLE, ErrUnavailable, "unavailable", http.StatusServiceUnavailable, true},
	{syncpb.Code_CODE_INTERNAL, ErrInternal, "internal", http.StatusInternalServerError, false},
	{syncpb.Code_CODE_TIMEOUT, ErrTimeout, "timeout", http.StatusGatewayTimeout, true},
	{syncpb.Code_CODE_INVALID_ARGUMENT, ErrInvalidArgument, "invalid_argument", http.StatusBadRequest, false},
	{syncpb.Code_CODE_NOT_MEMBER, ErrNotMember, "not_member", http.StatusForbidden, false},
	{syncpb.Code_CODE_REFRESH_TOKEN_REUSED, ErrRefreshTokenReused, "refresh_token_reused", http.StatusUnauthorized, false},
	{syncpb.Code_CODE_REVOKED, ErrRevoked, "revoked", http.StatusUnauthorized, false},
}

func TestCodes(t *testing.T) {
	if len(codeTable) != len(syncpb.Code_name)-1 { // all but CODE_OK
		t.Fatalf("codeTable has %d codes, the schema %d: add the new code here and to README.md", len(codeTable), len(syncpb.Code_name)-1)
	}
	for _, tt := range codeTable {
		t.Run(tt.name, func(t *testing.T) {
			if got := CodeName(tt.code); got != tt.name {
				t.Errorf("CodeName = %q, want %q", got, tt.name)
			}
			if got := HTTPStatus(tt.code); got != tt.status {
				t.Errorf("HTTPStatus = %d, want %d", got, tt.status)
			}
			if tt.sentinel.Code != tt.code {
				t.Errorf("sentinel has code %v", tt.sentinel.Code)
			}
			e := Errorf(tt.code, "detail %d", 7)
			if e.Retryable() != tt.retryable {
				t.Errorf("Retryable = %v, want %v", e.Retryable(), tt.retryable)
			}
			if want := "syncproto: " + tt.name + ": detail 7"; e.Error() != want {
				t.Errorf("Error() = %q, want %q", e.Error(), want)
			}
			if want := "syncproto: " + tt.name; tt.sentinel.Error() != want {
				t.Errorf("sentinel Error() = %q, want %q", tt.sentinel.Error(), want)
			}
			if !errors.Is(fmt.Errorf("op: %w", e), tt.sentinel) {
				t.Error("wrapped error does not match its sentinel")
			}
			if CodeOf(fmt.Errorf("op: %w", e)) != tt.code {
				t.Errorf("CodeOf = %v", CodeOf(e))
			}
		})
	}
	if CodeName(syncpb.Code_CODE_OK) != "ok" || HTTPStatus(syncpb.Code_CODE_OK) != http.StatusOK {
		t.Error("CODE_OK is not ok / 200")
	}
	if CodeName(99) != "code_99" || HTTPStatus(99) != http.StatusInternalServerError {
		t.Errorf("unknown code: %q, %d", CodeName(99), HTTPStatus(99))
	}
}

func TestErrorIs(t *testing.T) {
	e := Errorf(syncpb.Code_CODE_NOT_MEMBER, "not in %s", "c_x")
	switch {
	case !errors.Is(e, ErrNotMember):
		t.Error("not_member does not match ErrNotMember")
	case errors.Is(e, ErrForbidden):
		t.Error("not_member matches ErrForbidden")
	case errors.Is(e, errors.New("syncproto: not_member: not in c_x")):
		t.Error("matches a plain error with the same text")
	case !errors.Is(ErrNotMember, e):
		t.Error("sentinel does not match an error of its code")
	}
	// Two errors of one code are told apart; each is its code's.
	conv := Errorf(syncpb.Code_CODE_NOT_FOUND, "conversation not found")
	user := Errorf(syncpb.Code_CODE_NOT_FOUND, "user not found")
	switch {
	case errors.Is(user, conv), errors.Is(conv, user):
		t.Error("two NOT_FOUND errors match each other")
	case !errors.Is(fmt.Errorf("lookup: %w", conv), conv):
		t.Error("a wrapped error does not match itself")
	case !errors.Is(user, ErrNotFound), !errors.Is(conv, ErrNotFound):
		t.Error("an error does not match its code's sentinel")
	case errors.Is(ErrNotFound, ErrNotMember):
		t.Error("two sentinels match")
	}
}

func TestAsError(t *testing.T) {
	notFound := Errorf(syncpb.Code_CODE_NOT_FOUND, "no such conversation")
	tests := []struct {
		name string
		err  error
		code syncpb.Code
		same bool // the *Error in the chain itself
	}{
		{"nil", nil, syncpb.Code_CODE_OK, false},
		{"*Error", notFound, syncpb.Code_CODE_NOT_FOUND, true},
		{"wrapped", fmt.Errorf("shard 3: %w", notFound), syncpb.Code_CODE_NOT_FOUND, true},
		{"joined", errors.Join(errors.New("other"), notFound), syncpb.Code_CODE_NOT_FOUND, true},
		{"deadline", fmt.Errorf("call: %w", context.DeadlineExceeded), syncpb.Code_CODE_TIMEOUT, false},
		{"canceled", context.Canceled, syncpb.Code_CODE_UNAVAILABLE, false},
		{"other", errors.New("disk on fire at /var/lib/x"), syncpb.Code_CODE_INTERNAL, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			e := AsError(tt.err)
			if tt.err == nil {
				if e != nil || CodeOf(nil) != syncpb.Code_CODE_OK {
					t.Fatalf("AsError(nil) = %v", e)
				}
				return
			}
			if e.Code != tt.code || (e == notFound) != tt.same {
				t.Fatalf("AsError = %+v, want code %v (same %v)", e, tt.code, tt.same)
			}
			if tt.code == syncpb.Code_CODE_INTERNAL && e.Message != "internal error" {
				t.Fatalf("internal detail leaked: %q", e.Message)
			}
		})
	}
}

func TestErrorProto(t *testing.T) {
	e := &Error{Code: syncpb.Code_CODE_RATE_LIMITED, Message: "slow down", RetryAfter: 1500 * time.Millisecond}
	p := e.Proto()
	if p.Code != e.Code || p.Message != e.Message || p.RetryAfterMs != 1500 {
		t.Fatalf("Proto = %v", p)
	}
	if back := FromProto(p); *back != *e {
		t.Fatalf("FromProto = %+v, want %+v", back, e)
	}
	if FromProto(nil) != nil || FromProto(&syncpb.Error{}) != nil {
		t.Fatal("FromProto of nil or CODE_OK is not nil")
	}
}

// TestREADMECodeTable keeps the error code table of README.md true.
func TestREADMECodeTable(t *testing.T) {
	b, err := os.ReadFile("README.md")
	if err != nil {
		t.Fatal(err)
	}
	rows := map[int]string{}
	for _, line := range strings.Split(string(b), "\n") {
		cells := strings.Split(line, "|")
		if len(cells) != 7 {
			continue
		}
		n, err := strconv.Atoi(strings.TrimSpace(cells[1]))
		if err != nil {
			continue
		}
		rows[n] = line
	}
	for _, tt := range codeTable {
		line, ok := rows[int(tt.code)]
		if !ok {
			t.Errorf("README.md has no row for code %d (%s)", tt.code, tt.name)
			continue
		}
		delete(rows, int(tt.code))
		cells := strings.Split(line, "|")
		retry := map[bool]string{true: "yes", false: "no"}[tt.retryable]
		if strings.TrimSpace(cells[2]) != tt.name || strings.TrimSpace(cells[3]) != strconv.Itoa(tt.status) || strings.TrimSpace(cells[5]) != retry {
			t.Errorf("README.md row %q; want name %s, HTTP %d, retryable %s", line, tt.name, tt.status, retry)
		}
	}
	for n, line := range rows {
		t.Errorf("README.md row for unknown code %d: %q", n, line)
	}
}
