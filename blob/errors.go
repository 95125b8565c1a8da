package blob

import (
	"context"
	"errors"
)

// Code is an error's stable name, for logs, metrics and mapping onto the
// wire's error codes. Codes never change meaning.
type Code string

const (
	CodeNotFound     Code = "not_found"     // no blob under the key
	CodeTooLarge     Code = "too_large"     // past the store's maximum size
	CodeSizeMismatch Code = "size_mismatch" // the stream's length differs from the declared size
	CodeBadKey       Code = "bad_key"       // the key fails ValidKey
	CodeBadRange     Code = "bad_range"     // the range starts past the end (HTTP 416)
	CodeInvalid      Code = "invalid"       // another bad argument (a presign expiry out of bounds)
	CodeCanceled     Code = "canceled"      // the caller's context ended
	CodeInternal     Code = "internal"      // anything else: I/O, the S3 service
)

// Error is every error a Store returns: the operation, the key and a
// stable Code, with the cause (if any) in Err.
type Error struct {
	Op   string // "put", "open", "stat", "delete", "presign"
	Key  string
	Code Code
	Err  error
}

func (e *Error) Error() string {
	s := "blob: "
	if e.Op != "" {
		s += e.Op + " "
	}
	if e.Key != "" {
		s += e.Key + ": "
	}
	s += string(e.Code)
	if e.Err != nil {
		s += ": " + e.Err.Error()
	}
	return s
}

func (e *Error) Unwrap() error { return e.Err }

// Is reports whether target is the sentinel for e's code, so that
// errors.Is(err, ErrNotFound) holds for every not-found error.
func (e *Error) Is(target error) bool {
	t, ok := target.(*Error)
	return ok && t.Op == "" && t.Key == "" && t.Err == nil && t.Code == e.Code
}

// The sentinels, one per code, to match with errors.Is.
var (
	ErrNotFound     error = &Error{Code: CodeNotFound}     // Open, Stat
	ErrTooLarge     error = &Error{Code: CodeTooLarge}     // Put
	ErrSizeMismatch error = &Error{Code: CodeSizeMismatch} // Put
	ErrBadKey       error = &Error{Code: CodeBadKey}       // every method, and ValidKey
	ErrBadRange     error = &Error{Code: CodeBadRange}     // Open, Range.Resolve
	ErrInvalid      error = &Error{Code: CodeInvalid}      // PresignGet, and disk's Put (a key that is also a folder)
)

// NewError builds the error a store returns for op on key: code, with
// cause err. An empty code takes err's own: the code of the *Error it
// wraps, CodeCanceled for an ended context, else CodeInternal.
func NewError(op, key string, code Code, err error) error {
	if code == "" {
		code = CodeOf(err)
	}
	if be, ok := err.(*Error); ok && be.Op == "" && be.Key == "" && be.Err == nil {
		err = nil // a bare sentinel adds nothing to the message
	}
	return &Error{Op: op, Key: key, Code: code, Err: err}
}

// CodeOf returns err's code: the code of the *Error it wraps,
// CodeCanceled when it wraps a context's end, "" for nil, else
// CodeInternal.
func CodeOf(err error) Code {
	var be *Error
	switch {
	case err == nil:
		return ""
	case errors.As(err, &be):
		return be.Code
	case errors.Is(err, context.Canceled), errors.Is(err, context.DeadlineExceeded):
		return CodeCanceled
	}
	return CodeInternal
}
