package blob

import "fmt"

// MaxKeyLen is the longest key ValidKey accepts, in bytes (well under S3's
// 1,024 and a file system's path limits).
const MaxKeyLen = 512

// maxSegmentLen bounds one '/'-separated segment (a file name on disk).
const maxSegmentLen = 128

// ValidKey reports whether key may name a blob, as ErrBadKey with the
// reason. A key is 1 to MaxKeyLen bytes of '/'-separated segments; each
// segment is 1 to 128 of [A-Za-z0-9._-] and does not start with '.'. So a
// key is a relative path with no "." or ".." element, no empty element,
// no leading or trailing '/', no '\\' and nothing outside ASCII, and it
// names the same file on every file system and the same object in every
// S3 API. The names stores keep for themselves start with '.'.
func ValidKey(key string) error {
	if len(key) == 0 || len(key) > MaxKeyLen {
		return badKey(key, fmt.Sprintf("length %d not in 1..%d", len(key), MaxKeyLen))
	}
	seg := 0 // length of the current segment
	for i := 0; i < len(key); i++ {
		c := key[i]
		switch {
		case c == '/':
			if seg == 0 {
				return badKey(key, "empty segment")
			}
			seg = 0
			continue
		case c == '.':
			if seg == 0 {
				return badKey(key, "segment starts with '.'")
			}
		case 'a' <= c && c <= 'z', 'A' <= c && c <= 'Z', '0' <= c && c <= '9', c == '-', c == '_':
		default:
			return badKey(key, fmt.Sprintf("byte %#x at %d", c, i))
		}
		seg++
		if seg > maxSegmentLen {
			return badKey(key, fmt.Sprintf("segment longer than %d", maxSegmentLen))
		}
	}
	if seg == 0 {
		return badKey(key, "ends with '/'")
	}
	return nil
}

func badKey(key, why string) error {
	if len(key) > 64 {
		key = key[:64] + "…"
	}
	return &Error{Op: "key", Key: fmt.Sprintf("%q", key), Code: CodeBadKey, Err: fmt.Errorf("%s", why)}
}
