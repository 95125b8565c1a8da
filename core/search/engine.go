package search

import (
	"context"
	"errors"
	"fmt"
	"time"
)

// Engine is a message search index. Every method is safe for concurrent
// use. Index and the deletes return only once their change is durable and
// visible to Search. After Close every method returns [ErrClosed].
type Engine interface {
	// Index adds docs, replacing any with the same (ConvID, Seq). A doc
	// that fails [Doc.Validate] fails the whole call before anything is
	// written.
	Index(ctx context.Context, docs []Doc) error
	// Delete removes the messages seqs of conv; missing ones are ignored.
	Delete(ctx context.Context, conv string, seqs ...uint64) error
	// DeleteConversation removes every message of conv.
	DeleteConversation(ctx context.Context, conv string) error
	// Search runs req. An invalid request or cursor is a *QueryError.
	Search(ctx context.Context, req Request) (Result, error)
	// Close flushes and releases the index; it is idempotent.
	Close() error
}

// ErrClosed is returned by every Engine method after Close.
var ErrClosed = errors.New("search: engine closed")

// Doc is one message as the index keeps it.
type Doc struct {
	Workspace     string
	ConvID        string
	Seq           uint64
	MsgID         string
	Sender        string // user id
	TS            int64  // Unix milliseconds, as the shard assigned it
	Text          string
	HasAttachment bool
}

// MaxTextLen is the most text of a message that is indexed, in bytes;
// the rest is cut (at a character boundary).
const MaxTextLen = 64 << 10

// Validate reports a doc an engine cannot index.
func (d *Doc) Validate() error {
	switch {
	case !ValidID(d.ConvID):
		return fmt.Errorf("search: doc: bad conv id %q", d.ConvID)
	case !ValidID(d.Workspace):
		return fmt.Errorf("search: doc %s/%d: bad workspace %q", d.ConvID, d.Seq, d.Workspace)
	case d.Sender != "" && !ValidID(d.Sender):
		return fmt.Errorf("search: doc %s/%d: bad sender %q", d.ConvID, d.Seq, d.Sender)
	case d.Seq == 0:
		return fmt.Errorf("search: doc %s: seq 0", d.ConvID)
	case d.TS < 0 || d.TS > maxTime.UnixMilli():
		return fmt.Errorf("search: doc %s/%d: ts %d out of range", d.ConvID, d.Seq, d.TS)
	}
	return nil
}

// ValidateDocs is Validate for each of docs.
func ValidateDocs(docs []Doc) error {
	for i := range docs {
		if err := docs[i].Validate(); err != nil {
			return err
		}
	}
	return nil
}

// validID says whether id is made of the characters parley ids use
// (syncproto.NewID) and a few more; engines rely on it for keys and
// filters ('/' and quotes never occur).
func validID(id string) bool {
	if len(id) > 64 {
		return false
	}
	for i := 0; i < len(id); i++ {
		c := id[i]
		if !(c >= 'a' && c <= 'z' || c >= '0' && c <= '9' || c == '_' || c >= 'A' && c <= 'Z' || c == '-') {
			return false
		}
	}
	return true
}

// ValidID says whether id can name a conversation, user or workspace in a
// Doc or Request: 1 to 64 ASCII letters, digits, '_' or '-'.
func ValidID(id string) bool { return id != "" && validID(id) }

// Sort is the order of results.
type Sort uint8

const (
	// Newest orders by ts, newest first; messages of one ts in an order
	// each engine fixes (by conversation and seq).
	Newest Sort = iota
	// Relevance orders by the engine's score, best first (ties as Newest).
	Relevance
)

func (s Sort) String() string {
	if s == Relevance {
		return "relevance"
	}
	return "newest"
}

// ParseSort reads the API's sort= value: "" or "newest", or "relevance".
func ParseSort(s string) (Sort, error) {
	switch s {
	case "", "newest":
		return Newest, nil
	case "relevance":
		return Relevance, nil
	}
	return 0, &QueryError{Reason: "sort must be newest or relevance"}
}

// Limits of a Request.
const (
	DefaultLimit = 20
	MaxLimit     = 100
	// MaxRelevanceDepth is how deep relevance pages go: past this many
	// hits there is no next cursor (newest-first pages go on to the end).
	MaxRelevanceDepth = 1000
)

// Request is one search.
type Request struct {
	Workspace string
	// Convs are the conversations the caller may read. Only their messages
	// are found; none means no result.
	Convs  []string
	Query  Query
	Sort   Sort
	Limit  int    // 0: DefaultLimit; at most MaxLimit
	Cursor string // from a previous Result.Next; "" for the first page
	// Count asks for Result.Total on the first page. It can cost a pass
	// over every match, which a newest-first page alone does not.
	Count bool
}

// Check validates r and fills in defaults. Engines call it first.
func (r *Request) Check() error {
	if !ValidID(r.Workspace) {
		return &QueryError{Reason: "bad workspace"}
	}
	for _, c := range r.Convs {
		if !ValidID(c) {
			return &QueryError{Reason: "bad conversation id"}
		}
	}
	if r.Sort > Relevance {
		return &QueryError{Reason: "bad sort"}
	}
	switch {
	case r.Limit == 0:
		r.Limit = DefaultLimit
	case r.Limit < 0 || r.Limit > MaxLimit:
		return &QueryError{Reason: fmt.Sprintf("limit must be 1 to %d", MaxLimit)}
	}
	return nil
}

// Result is one page of hits.
type Result struct {
	Hits []Hit
	// Total is how many messages match in the allowed conversations, on
	// the first page (no cursor) of a Request with Count; otherwise 0.
	Total int
	// Next is the cursor of the next page; "" when this is the last.
	Next string
}

// Hit is one matching message.
type Hit struct {
	ConvID  string
	Seq     uint64
	MsgID   string
	Sender  string
	TS      int64
	Score   float64 // engine-specific; only its order means anything
	Snippet Snippet
}

// Clock is what engines read the time from (time.Now by default).
type Clock func() time.Time

// TrimText cuts text to MaxTextLen bytes at a character boundary.
func TrimText(text string) string {
	if len(text) <= MaxTextLen {
		return text
	}
	return text[:runeStart(text, MaxTextLen)]
}
