// Package media learns what an attachment is from its bytes: its media
// type, sniffed with mimetype (a client's declared type is never
// trusted), whether a workspace's allow-list admits it, and for JPEG,
// PNG, GIF and WebP images their size and a small JPEG thumbnail.
package media

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"mime"
	"strings"

	"github.com/gabriel-vasile/mimetype"
)

// SniffLen is how many leading bytes Sniff looks at (mimetype's default).
const SniffLen = 4096

// Sniff returns the media type of content that starts with head, as
// mimetype detects it: "image/png", "application/pdf",
// "text/plain; charset=utf-8", or "application/octet-stream" when nothing
// matches. Only the first SniffLen bytes of head are looked at.
func Sniff(head []byte) string {
	return mimetype.Detect(head).String()
}

// SniffReader reads the first SniffLen bytes of r and sniffs them. It
// returns their type and a reader of the whole stream, those bytes first,
// so the caller can check the type before storing anything. A stream
// shorter than SniffLen is sniffed whole.
func SniffReader(r io.Reader) (string, io.Reader, error) {
	head := make([]byte, SniffLen)
	n, err := io.ReadFull(r, head)
	if err != nil && err != io.EOF && err != io.ErrUnexpectedEOF {
		return "", nil, fmt.Errorf("media: sniff: %w", err)
	}
	head = head[:n]
	return Sniff(head), io.MultiReader(bytes.NewReader(head), r), nil
}

// ErrNotAllowed is returned by AllowList.Check for a type the list does
// not admit.
var ErrNotAllowed = errors.New("media: type not allowed")

// AllowList is the media types a workspace accepts: exact types
// ("application/pdf"), a whole top-level type ("image/*"), or anything
// ("*/*"). Parameters (such as a text type's charset) are ignored on both
// sides, and case does not matter. An empty list allows every type.
type AllowList []string

// Validate reports the first entry that is not a media type or pattern.
func (a AllowList) Validate() error {
	for _, e := range a {
		t, _, err := mime.ParseMediaType(e)
		if err != nil || !strings.Contains(t, "/") {
			return fmt.Errorf("media: allow-list entry %q is not a media type", e)
		}
		if top, sub, _ := strings.Cut(t, "/"); sub == "" || (top == "*" && sub != "*") {
			return fmt.Errorf("media: allow-list entry %q is not a media type", e)
		}
	}
	return nil
}

// Allows reports whether the list admits mediaType (as Sniff returns it).
// A type matches an entry when either is an alias of the other in
// mimetype's table ("application/x-pdf" and "application/pdf" are one
// type). A subtype in mimetype's tree is not its parent: "application/zip"
// does not admit a .docx.
func (a AllowList) Allows(mediaType string) bool {
	if len(a) == 0 {
		return true
	}
	t := base(mediaType)
	top, _, _ := strings.Cut(t, "/")
	known := mimetype.Lookup(t)
	for _, e := range a {
		e = base(e)
		switch {
		case e == "*/*", e == t, e == top+"/*":
			return true
		case known != nil && known.Is(e):
			return true
		}
	}
	return false
}

// Check returns nil when the list admits mediaType, else ErrNotAllowed
// naming it.
func (a AllowList) Check(mediaType string) error {
	if a.Allows(mediaType) {
		return nil
	}
	return fmt.Errorf("%w: %s", ErrNotAllowed, base(mediaType))
}

// base is a media type without its parameters, in lower case.
func base(t string) string {
	t, _, _ = strings.Cut(t, ";")
	return strings.ToLower(strings.TrimSpace(t))
}
