package search

import (
	"errors"
	"fmt"
	"slices"
	"strconv"
	"strings"
	"time"
	"unicode"
	"unicode/utf8"

	"github.com/parley-chat/parley/core/search/internal/cjk"
	"github.com/parley-chat/parley/syncproto"
)

// TermKind is what a Term matches.
type TermKind uint8

const (
	Word   TermKind = iota // one word (it may analyze to several tokens, as CJK text or "e-mail" does: they must be adjacent)
	Phrase                 // words next to each other, in order
	Prefix                 // words starting with Text
)

// Term is one positive or excluded piece of a query.
type Term struct {
	Kind TermKind
	Text string // as the user wrote it, without quotes, '*' or '-'
	// Fuzzy says one typo is tolerated: a Word of FuzzyMinLetters letters
	// or more that is not CJK. Parse sets it; engines obey it.
	Fuzzy bool
}

// FuzzyMinLetters is the length from which a word tolerates a typo.
const FuzzyMinLetters = 5

// Query is a parsed search query. The zero Query matches nothing; Parse
// never returns one.
type Query struct {
	Terms   []Term   // all must match
	Exclude []Term   // none may match
	From    []string // sender user ids; any of them
	// After is the earliest ts matched (inclusive), Before the first ts
	// no longer matched; zero means unbounded.
	After, Before time.Time
	HasAttachment bool
}

// Limits of a query.
const (
	MaxQueryLen   = 1024 // bytes
	MaxQueryTerms = 32   // terms, exclusions and filters together
	MinPrefixLen  = 2    // characters before '*'
)

// QueryError is a bad query, cursor or request. It crosses the wire as
// invalid_argument (errors.Is(err, syncproto.ErrInvalidArgument)); Reason
// is safe to show to the user.
type QueryError struct {
	Reason string
	Pos    int // byte offset in the query, -1 when not about a place in it
}

// Code is the stable code of every QueryError.
const Code = "invalid_argument"

func (e *QueryError) Error() string { return "search: " + e.Reason }

// Code returns "invalid_argument".
func (e *QueryError) Code() string { return Code }

// Unwrap makes errors.Is(err, syncproto.ErrInvalidArgument) true.
func (e *QueryError) Unwrap() error { return syncproto.ErrInvalidArgument }

// Wire is the error as the request path returns it to a client.
func (e *QueryError) Wire() *syncproto.Error {
	return &syncproto.Error{Code: syncproto.ErrInvalidArgument.Code, Message: e.Reason}
}

// IsQueryError says whether err is (or wraps) a *QueryError.
func IsQueryError(err error) bool {
	var qe *QueryError
	return errors.As(err, &qe)
}

func qerr(pos int, format string, args ...any) *QueryError {
	return &QueryError{Reason: fmt.Sprintf(format, args...), Pos: pos}
}

// Parse reads a query in the language described in the package doc.
func Parse(s string) (Query, error) {
	var q Query
	if len(s) > MaxQueryLen {
		return q, qerr(-1, "query longer than %d bytes", MaxQueryLen)
	}
	if !utf8.ValidString(s) {
		return q, qerr(-1, "query is not UTF-8")
	}
	n := 0
	for i := 0; i < len(s); {
		r, size := utf8.DecodeRuneInString(s[i:])
		if unicode.IsSpace(r) {
			i += size
			continue
		}
		start := i
		neg := false
		if s[i] == '-' {
			neg = true
			i++
			if i == len(s) || isSpaceAt(s, i) {
				return Query{}, qerr(start, "nothing after '-'")
			}
		}
		var t Term
		if s[i] == '"' {
			end := strings.IndexByte(s[i+1:], '"')
			if end < 0 {
				return Query{}, qerr(i, "unterminated quote")
			}
			t = Term{Kind: Phrase, Text: strings.Join(strings.Fields(s[i+1:i+1+end]), " ")}
			i += end + 2
			if i < len(s) && !isSpaceAt(s, i) {
				return Query{}, qerr(i, "a space must follow a closing quote")
			}
			if !hasWordChar(t.Text) {
				continue // "" or "!!": nothing to search for
			}
		} else {
			j := i
			for j < len(s) {
				r, size := utf8.DecodeRuneInString(s[j:])
				if unicode.IsSpace(r) {
					break
				}
				if r == '"' {
					return Query{}, qerr(j, "a quote must start a word")
				}
				j += size
			}
			word := s[i:j]
			i = j
			if key, val, ok := strings.Cut(word, ":"); ok && isFilter(key) {
				if neg {
					return Query{}, qerr(start, "a filter cannot be excluded")
				}
				if err := q.addFilter(strings.ToLower(key), val, start); err != nil {
					return Query{}, err
				}
				if n++; n > MaxQueryTerms {
					return Query{}, qerr(start, "more than %d terms", MaxQueryTerms)
				}
				continue
			}
			var err error
			if t, err = parseWord(word, start); err != nil {
				return Query{}, err
			}
			if !hasWordChar(t.Text) {
				continue // punctuation alone matches nothing; skip it
			}
		}
		if n++; n > MaxQueryTerms {
			return Query{}, qerr(start, "more than %d terms", MaxQueryTerms)
		}
		if neg {
			t.Fuzzy = false
			q.Exclude = append(q.Exclude, t)
		} else {
			q.Terms = append(q.Terms, t)
		}
	}
	if len(q.Terms) == 0 && len(q.From) == 0 && q.After.IsZero() && q.Before.IsZero() && !q.HasAttachment {
		return Query{}, qerr(-1, "nothing to search for")
	}
	if !q.After.IsZero() && !q.Before.IsZero() && !q.After.Before(q.Before) {
		return Query{}, qerr(-1, "after: must be earlier than before:")
	}
	return q, nil
}

func isSpaceAt(s string, i int) bool {
	r, _ := utf8.DecodeRuneInString(s[i:])
	return unicode.IsSpace(r)
}

func parseWord(w string, pos int) (Term, error) {
	if body, ok := strings.CutSuffix(w, "*"); ok {
		if strings.ContainsRune(body, '*') {
			return Term{}, qerr(pos, "only one '*', at the end of a word")
		}
		if utf8.RuneCountInString(body) < MinPrefixLen || !hasWordChar(body) {
			return Term{}, qerr(pos, "a prefix needs %d characters before '*'", MinPrefixLen)
		}
		return Term{Kind: Prefix, Text: body}, nil
	}
	if strings.ContainsRune(w, '*') {
		return Term{}, qerr(pos, "'*' only at the end of a word")
	}
	return Term{Kind: Word, Text: w, Fuzzy: fuzzy(w)}, nil
}

// fuzzy is the typo rule: FuzzyMinLetters letters or more, none CJK.
func fuzzy(w string) bool {
	letters := 0
	for _, r := range w {
		if cjk.Is(r) {
			return false
		}
		if unicode.IsLetter(r) {
			letters++
		}
	}
	return letters >= FuzzyMinLetters
}

func hasWordChar(s string) bool {
	for _, r := range s {
		if unicode.IsLetter(r) || unicode.IsNumber(r) {
			return true
		}
	}
	return false
}

func isFilter(key string) bool {
	switch strings.ToLower(key) {
	case "from", "before", "after", "has":
		return true
	}
	return false
}

func (q *Query) addFilter(key, val string, pos int) error {
	if val == "" {
		return qerr(pos, "%s: needs a value", key)
	}
	switch key {
	case "from":
		if !ValidID(val) {
			return qerr(pos, "from: needs a user id")
		}
		if !slices.Contains(q.From, val) {
			q.From = append(q.From, val)
		}
	case "has":
		if !strings.EqualFold(val, "attachment") {
			return qerr(pos, "has: only takes attachment")
		}
		q.HasAttachment = true
	case "before", "after":
		t, err := parseTime(val)
		if err != nil {
			return qerr(pos, "%s: needs 2006-01-02, an RFC 3339 time or Unix milliseconds", key)
		}
		if key == "before" {
			if !q.Before.IsZero() {
				return qerr(pos, "before: given twice")
			}
			q.Before = t
		} else {
			if !q.After.IsZero() {
				return qerr(pos, "after: given twice")
			}
			q.After = t
		}
	}
	return nil
}

// minTime and maxTime bound the times a query may name, so every engine
// can hold them as Unix milliseconds.
var (
	minTime = time.UnixMilli(1)
	maxTime = time.Date(9999, 12, 31, 0, 0, 0, 0, time.UTC)
)

func parseTime(s string) (time.Time, error) {
	var t time.Time
	var err error
	switch {
	case len(s) == len("2006-01-02") && strings.Count(s, "-") == 2:
		t, err = time.Parse(time.DateOnly, s)
	case strings.ContainsAny(s, "T:"):
		t, err = time.Parse(time.RFC3339Nano, s)
	default:
		var ms int64
		if ms, err = strconv.ParseInt(s, 10, 64); err == nil {
			if ms < 1 || ms > maxTime.UnixMilli() {
				return t, errors.New("out of range")
			}
			t = time.UnixMilli(ms)
		}
	}
	if err != nil {
		return t, err
	}
	if t.Before(minTime) || t.After(maxTime) {
		return time.Time{}, errors.New("out of range")
	}
	return t.UTC().Truncate(time.Millisecond), nil
}

// String is q in the query language, in a canonical form: Parse(q.String())
// gives q back.
func (q Query) String() string {
	var b strings.Builder
	sep := func() {
		if b.Len() > 0 {
			b.WriteByte(' ')
		}
	}
	term := func(t Term) {
		switch t.Kind {
		case Phrase:
			b.WriteString(`"` + t.Text + `"`)
		case Prefix:
			b.WriteString(t.Text + "*")
		default:
			b.WriteString(t.Text)
		}
	}
	for _, t := range q.Terms {
		sep()
		term(t)
	}
	for _, t := range q.Exclude {
		sep()
		b.WriteByte('-')
		term(t)
	}
	for _, f := range q.From {
		sep()
		b.WriteString("from:" + f)
	}
	if !q.After.IsZero() {
		sep()
		b.WriteString("after:" + strconv.FormatInt(q.After.UnixMilli(), 10))
	}
	if !q.Before.IsZero() {
		sep()
		b.WriteString("before:" + strconv.FormatInt(q.Before.UnixMilli(), 10))
	}
	if q.HasAttachment {
		sep()
		b.WriteString("has:attachment")
	}
	return b.String()
}
