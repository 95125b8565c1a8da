package httpapi

import (
	"bytes"
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"strconv"
	"time"

	"github.com/parley-chat/parley/syncproto"
	"github.com/parley-chat/parley/syncproto/syncpb"
)

// errorJSON is the body of every error response:
// {"error":{"code":"not_member","numeric_code":14,"message":"..."}}.
type errorJSON struct {
	Error errorDetail `json:"error"`
}

type errorDetail struct {
	Code         string `json:"code"`
	NumericCode  int32  `json:"numeric_code"`
	Message      string `json:"message"`
	RetryAfterMS int64  `json:"retry_after_ms,omitempty"`
}

func errorBody(e *syncproto.Error) errorJSON {
	msg := e.Message
	if msg == "" {
		msg = syncproto.CodeName(e.Code)
	}
	return errorJSON{Error: errorDetail{
		Code: syncproto.CodeName(e.Code), NumericCode: int32(e.Code), Message: msg,
		RetryAfterMS: e.RetryAfter.Milliseconds(),
	}}
}

// writeError answers with err as a JSON error. Only an *syncproto.Error's
// user-safe message reaches the client; anything else is logged and
// answered as INTERNAL.
func (a *API) writeError(w http.ResponseWriter, r *http.Request, err error) {
	e := syncproto.AsError(err)
	if e.Code == syncpb.Code_CODE_INTERNAL {
		a.log.Error("internal error", "method", r.Method, "path", r.URL.Path, "err", err)
	}
	if e.Code == syncpb.Code_CODE_RATE_LIMITED || e.RetryAfter > 0 {
		secs := int64((max(e.RetryAfter, time.Second) + time.Second - 1) / time.Second)
		w.Header().Set("Retry-After", strconv.FormatInt(secs, 10))
	}
	writeJSON(w, syncproto.HTTPStatus(e.Code), errorBody(e))
}

// writeJSON answers with status and v as JSON.
func writeJSON(w http.ResponseWriter, status int, v any) {
	b, err := json.Marshal(v)
	if err != nil {
		// Every response type marshals; this is a broken invariant.
		panic("httpapi: marshal response: " + err.Error())
	}
	h := w.Header()
	h.Set("Content-Type", "application/json; charset=utf-8")
	h.Set("Cache-Control", "no-store")
	h.Set("X-Content-Type-Options", "nosniff")
	w.WriteHeader(status)
	_, _ = w.Write(append(b, '\n'))
}

// decode reads the (bounded) request body as JSON into v. Unknown fields
// are ignored. Errors: TOO_LARGE over the body limit, MALFORMED for
// anything that is not one JSON value of the right shape.
func (c *call) decode(v any) error {
	b, err := io.ReadAll(c.r.Body)
	if err != nil {
		var tooBig *http.MaxBytesError
		if errors.As(err, &tooBig) {
			return syncproto.Errorf(syncpb.Code_CODE_TOO_LARGE, "request body exceeds %d bytes", tooBig.Limit)
		}
		return syncproto.Errorf(syncpb.Code_CODE_MALFORMED, "could not read the request body")
	}
	if len(bytes.TrimSpace(b)) == 0 {
		return syncproto.Errorf(syncpb.Code_CODE_MALFORMED, "request body is empty; want a JSON object")
	}
	if err := json.Unmarshal(b, v); err != nil {
		var typeErr *json.UnmarshalTypeError
		var synErr *json.SyntaxError
		switch {
		case errors.As(err, &typeErr) && typeErr.Field != "":
			return syncproto.Errorf(syncpb.Code_CODE_MALFORMED, "field %q has the wrong JSON type (%s)", typeErr.Field, typeErr.Value)
		case errors.As(err, &typeErr):
			return syncproto.Errorf(syncpb.Code_CODE_MALFORMED, "request body must be a JSON object")
		case errors.As(err, &synErr):
			return syncproto.Errorf(syncpb.Code_CODE_MALFORMED, "invalid JSON at byte %d", synErr.Offset)
		default:
			return syncproto.Errorf(syncpb.Code_CODE_MALFORMED, "invalid JSON")
		}
	}
	return nil
}

// callCore sends req with the request's deadline and, as its caller, the
// verified token's identity (none on routes without auth).
func (a *API) callCore(c *call, req *syncpb.CoreRequest) (*syncpb.CoreResponse, error) {
	return a.callAs(c, c.caller(), req)
}

// callAs is callCore for a request made as caller: a refresh, whose
// caller is its token's, revokes the device on a reused token. The
// request's validator (syncproto.Requests) runs first, as on every
// transport.
func (a *API) callAs(c *call, caller *syncpb.Caller, req *syncpb.CoreRequest) (*syncpb.CoreResponse, error) {
	if _, _, err := syncproto.CheckRequest(req); err != nil {
		return nil, err
	}
	req.Caller = caller
	resp, err := a.core.Call(c.ctx, req)
	if rv := resp.GetRevocation(); err == nil && rv != nil && a.revoked != nil {
		a.revoked(rv) // this edge refuses the tokens before answering
	}
	return resp, err
}

// missing is the error for a core answer that lacks its result.
func missing(what string) error {
	return syncproto.Errorf(syncpb.Code_CODE_INTERNAL, "core answer had no %s", what)
}
