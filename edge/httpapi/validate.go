package httpapi

import (
	"strings"
	"unicode"
	"unicode/utf8"

	"github.com/parley-chat/parley/syncproto"
	"github.com/parley-chat/parley/syncproto/syncpb"
)

// Bounds the edge checks before asking the core.
const (
	minPassword   = 8
	maxPassword   = 256
	maxListLimit  = 1000
	maxNameInList = 1000 // usernames resolved in one request
)

func invalid(format string, args ...any) error {
	return syncproto.Errorf(syncpb.Code_CODE_INVALID_ARGUMENT, format, args...)
}

// checkText checks a free-text field: valid UTF-8, no control characters,
// no surrounding space, at most maxLen bytes, and non-empty if required.
func checkText(field, s string, maxLen int, required bool) error {
	switch {
	case s == "" && required:
		return invalid("%s is required", field)
	case len(s) > maxLen:
		return invalid("%s is longer than %d bytes", field, maxLen)
	case !utf8.ValidString(s):
		return invalid("%s is not valid UTF-8", field)
	case strings.TrimSpace(s) != s:
		return invalid("%s has leading or trailing space", field)
	case strings.IndexFunc(s, unicode.IsControl) >= 0:
		return invalid("%s contains control characters", field)
	}
	return nil
}

// checkUsername is checkText without any white space.
func checkUsername(field, s string) error {
	if err := checkText(field, s, syncproto.MaxNameLen, true); err != nil {
		return err
	}
	if strings.IndexFunc(s, unicode.IsSpace) >= 0 {
		return invalid("%s contains white space", field)
	}
	return nil
}

func checkID(field, s string) error {
	if !syncproto.ValidID(s) {
		return invalid("%s is not a valid id", field)
	}
	return nil
}

// checkASCII checks a short printable-ASCII token such as a content type.
func checkASCII(field, s string, maxLen int) error {
	if len(s) > maxLen {
		return invalid("%s is longer than %d bytes", field, maxLen)
	}
	for i := 0; i < len(s); i++ {
		if s[i] < 0x20 || s[i] > 0x7e {
			return invalid("%s must be printable ASCII", field)
		}
	}
	return nil
}
