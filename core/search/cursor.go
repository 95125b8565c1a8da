package search

import (
	"encoding/base64"
	"encoding/binary"
	"errors"
	"fmt"
)

// Cursor is the position a page ends at. Engines encode it into
// Result.Next and decode Request.Cursor; clients see only the string.
type Cursor struct {
	Sort Sort
	// Newest: the last hit returned.
	TS   int64
	Conv string
	Seq  uint64
	// Relevance: the engine's index position when the first page was
	// made, and how many hits were returned so far.
	Horizon int64
	Offset  int
}

const cursorVersion = 1

// Encode returns c as an opaque string.
func (c Cursor) Encode() string {
	b := []byte{cursorVersion, byte(c.Sort)}
	if c.Sort == Relevance {
		b = binary.AppendVarint(b, c.Horizon)
		b = binary.AppendUvarint(b, uint64(c.Offset))
	} else {
		b = binary.AppendVarint(b, c.TS)
		b = binary.AppendUvarint(b, c.Seq)
		b = append(b, c.Conv...)
	}
	return base64.RawURLEncoding.EncodeToString(b)
}

var errCursor = errors.New("bad cursor")

// DecodeCursor reads a cursor that Encode made for sort; anything else is
// a *QueryError.
func DecodeCursor(s string, sort Sort) (Cursor, error) {
	c, err := decodeCursor(s)
	if err == nil && c.Sort != sort {
		err = fmt.Errorf("cursor is for sort=%s", c.Sort)
	}
	if err != nil {
		return Cursor{}, &QueryError{Reason: "bad cursor", Pos: -1}
	}
	return c, nil
}

func decodeCursor(s string) (Cursor, error) {
	var c Cursor
	b, err := base64.RawURLEncoding.DecodeString(s)
	if err != nil || len(b) < 2 || b[0] != cursorVersion || b[1] > byte(Relevance) {
		return c, errCursor
	}
	c.Sort, b = Sort(b[1]), b[2:]
	v, n := binary.Varint(b)
	if n <= 0 {
		return c, errCursor
	}
	b = b[n:]
	u, n := binary.Uvarint(b)
	if n <= 0 {
		return c, errCursor
	}
	b = b[n:]
	if c.Sort == Relevance {
		if len(b) != 0 || u > MaxRelevanceDepth || v < 0 {
			return c, errCursor
		}
		c.Horizon, c.Offset = v, int(u)
		return c, nil
	}
	c.TS, c.Seq, c.Conv = v, u, string(b)
	if !ValidID(c.Conv) || c.Seq == 0 {
		return c, errCursor
	}
	return c, nil
}
