// Package typesense is the search engine at scale: a Typesense cluster,
// through typesense-go v3, implementing search.Engine.
//
// Membership at scale: the allowed conversations go into filter_by as
// conv:=[...] lists of at most Config.ConvChunk ids each (a filter of
// thousands of values is slow to parse and evaluate, typesense#1441, and
// long query strings hit limits, typesense#558). Each chunk is one search
// of a multi_search request, sent as a POST body, at most
// maxSearchesPerRequest searches a request (the server's
// limit_multi_searches defaults to 50); the chunks' hits are merged here
// in the same order the server sorted each chunk by. A user in 10,000
// conversations costs 20 searches in one request. (A per-user ACL field
// on every message would make each query one clause, but membership
// changes would rewrite every message of the conversation; chunking keeps
// membership where it lives, in the core.)
//
// CJK text is indexed as grams (internal/cjk) in the searched field, so
// one or two characters find a run, as with Bleve; a CJK query word
// becomes its grams, all of which must match (not as a phrase). Typos
// follow Typesense's rules, set to one typo for words of 5 letters or
// more. Two things the query language has that Typesense cannot say are
// a *search.QueryError here: more than one prefix term (Typesense
// treats only the last word as a prefix) and exclusions without a word
// to search for.
package typesense

import (
	"context"
	"errors"
	"fmt"
	"hash/fnv"
	"net/http"
	"strconv"
	"strings"
	"sync"
	"time"

	ts "github.com/typesense/typesense-go/v3/typesense"
	"github.com/typesense/typesense-go/v3/typesense/api"
	"github.com/typesense/typesense-go/v3/typesense/api/pointer"

	"github.com/parley-chat/parley/core/search"
	"github.com/parley-chat/parley/core/search/internal/cjk"
	"github.com/parley-chat/parley/core/search/internal/gate"
)

// Config configures an Engine.
type Config struct {
	URL    string // e.g. http://127.0.0.1:8108
	APIKey string
	// Collection is the collection messages are kept in; it is created
	// when missing. Default "parley_messages".
	Collection string
	// ConvChunk is the most conversation ids in one search's filter.
	// Default 500.
	ConvChunk int
	// Timeout bounds each request to the server. Default 10s.
	Timeout time.Duration
	// Clock gives the index positions horizons compare; nil: time.Now.
	Clock search.Clock
}

// Validate reports a bad Config.
func (c *Config) Validate() error {
	switch {
	case c.URL == "":
		return errors.New("search/typesense: Config.URL is empty")
	case c.APIKey == "":
		return errors.New("search/typesense: Config.APIKey is empty")
	case c.ConvChunk < 0 || c.ConvChunk > 5000:
		return errors.New("search/typesense: Config.ConvChunk must be 0 to 5000")
	case c.Timeout < 0:
		return errors.New("search/typesense: Config.Timeout is negative")
	}
	return nil
}

const (
	defaultCollection     = "parley_messages"
	defaultConvChunk      = 500
	maxSearchesPerRequest = 50
	maxPerPage            = 250 // Typesense's per_page ceiling
)

// Engine is a Typesense collection of messages.
type Engine struct {
	c     *ts.Client
	coll  string
	chunk int
	clock search.Clock

	wmu    sync.Mutex // orders index positions
	lastIx int64

	gate gate.Gate
}

var _ search.Engine = (*Engine)(nil)

// Open connects and makes sure the collection exists.
func Open(ctx context.Context, cfg Config) (*Engine, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	e := &Engine{coll: cfg.Collection, chunk: cfg.ConvChunk, clock: cfg.Clock}
	if e.coll == "" {
		e.coll = defaultCollection
	}
	if e.chunk == 0 {
		e.chunk = defaultConvChunk
	}
	if e.clock == nil {
		e.clock = time.Now
	}
	timeout := cfg.Timeout
	if timeout == 0 {
		timeout = 10 * time.Second
	}
	e.c = ts.NewClient(ts.WithServer(cfg.URL), ts.WithAPIKey(cfg.APIKey), ts.WithConnectionTimeout(timeout))
	if _, err := e.c.Collection(e.coll).Retrieve(ctx); err != nil {
		var he *ts.HTTPError
		if !errors.As(err, &he) || he.Status != http.StatusNotFound {
			return nil, fmt.Errorf("search/typesense: collection %s: %w", e.coll, err)
		}
		if _, err := e.c.Collections().Create(ctx, schema(e.coll)); err != nil {
			return nil, fmt.Errorf("search/typesense: create collection %s: %w", e.coll, err)
		}
	}
	return e, nil
}

// Field names of a message document.
const (
	fWorkspace = "ws"
	fConv      = "conv"
	fConvHash  = "convh" // orders conversations within one ts, for the keyset
	fSeq       = "seq"
	fSender    = "sender"
	fTS        = "ts"
	fAttach    = "att"
	fIx        = "ix"
	fBody      = "body" // the searched text: the message with CJK runs as grams
	fText      = "text" // the message as written, for snippets
	fMsg       = "msg"
)

func schema(name string) *api.CollectionSchema {
	f := func(name, typ string) api.Field { return api.Field{Name: name, Type: typ} }
	body := f(fBody, "string")
	body.Stem = pointer.True()
	text, msg := f(fText, "string"), f(fMsg, "string")
	text.Index, msg.Index = pointer.False(), pointer.False()
	text.Optional, msg.Optional = pointer.True(), pointer.True()
	return &api.CollectionSchema{
		Name: name,
		Fields: []api.Field{
			f(fWorkspace, "string"), f(fConv, "string"), f(fConvHash, "int64"), f(fSeq, "int64"),
			f(fSender, "string"), f(fTS, "int64"), f(fAttach, "bool"), f(fIx, "int64"),
			body, text, msg,
		},
		DefaultSortingField: pointer.String(fTS),
		// Words split at these too, as Bleve's Unicode word boundaries
		// split "e-mail" and "a/b".
		TokenSeparators: &[]string{"-", "/", "."},
	}
}

func docID(conv string, seq uint64) string { return conv + "." + strconv.FormatUint(seq, 10) }

// convHash orders conversations that share a ts; 53 bits, so it survives
// a JSON float.
func convHash(conv string) int64 {
	h := fnv.New64a()
	h.Write([]byte(conv))
	return int64(h.Sum64() & (1<<53 - 1))
}

// body is text as the searched field holds it: every CJK run followed by
// its grams, as separate words, in the order unigram, bigram, unigram...
func body(text string) string {
	b := []byte(text)
	var out strings.Builder
	for _, seg := range cjk.Split(b) {
		run := b[seg.Start:seg.End]
		if !seg.CJK {
			out.Write(run)
			continue
		}
		out.WriteByte(' ')
		for _, g := range cjk.Grams(run, false) {
			out.Write(run[g.Start:g.End])
			out.WriteByte(' ')
		}
	}
	return out.String()
}

// Index implements search.Engine.
func (e *Engine) Index(ctx context.Context, docs []search.Doc) error {
	if err := search.ValidateDocs(docs); err != nil {
		return err
	}
	if len(docs) == 0 {
		return nil
	}
	if err := e.gate.Enter(); err != nil {
		return err
	}
	defer e.gate.Leave()
	e.wmu.Lock()
	defer e.wmu.Unlock()
	ix := max(e.lastIx+1, e.clock().UnixMicro())
	batch := make([]any, len(docs))
	for i, d := range docs {
		text := search.TrimText(d.Text)
		batch[i] = map[string]any{
			"id": docID(d.ConvID, d.Seq), fWorkspace: d.Workspace, fConv: d.ConvID, fConvHash: convHash(d.ConvID),
			fSeq: int64(d.Seq), fSender: d.Sender, fTS: d.TS, fAttach: d.HasAttachment, fIx: ix,
			fBody: body(text), fText: text, fMsg: d.MsgID,
		}
	}
	res, err := e.c.Collection(e.coll).Documents().Import(ctx, batch, &api.ImportDocumentsParams{Action: pointer.Any(api.Upsert)})
	if err != nil {
		return fmt.Errorf("search/typesense: import: %w", err)
	}
	for i, r := range res {
		if r == nil || !r.Success {
			msg := "no result"
			if r != nil {
				msg = r.Error
			}
			return fmt.Errorf("search/typesense: import %s/%d: %s", docs[min(i, len(docs)-1)].ConvID, docs[min(i, len(docs)-1)].Seq, msg)
		}
	}
	e.lastIx = ix
	return nil
}

// Delete implements search.Engine.
func (e *Engine) Delete(ctx context.Context, conv string, seqs ...uint64) error {
	if err := e.gate.Enter(); err != nil {
		return err
	}
	defer e.gate.Leave()
	for len(seqs) > 0 {
		n := min(len(seqs), 1000)
		vals := make([]string, n)
		for i, s := range seqs[:n] {
			vals[i] = strconv.FormatUint(s, 10)
		}
		seqs = seqs[n:]
		if err := e.deleteWhere(ctx, fmt.Sprintf("%s:=%s && %s:=[%s]", fConv, quote(conv), fSeq, strings.Join(vals, ","))); err != nil {
			return fmt.Errorf("search/typesense: delete from %s: %w", conv, err)
		}
	}
	return nil
}

// DeleteConversation implements search.Engine.
func (e *Engine) DeleteConversation(ctx context.Context, conv string) error {
	if err := e.gate.Enter(); err != nil {
		return err
	}
	defer e.gate.Leave()
	if err := e.deleteWhere(ctx, fConv+":="+quote(conv)); err != nil {
		return fmt.Errorf("search/typesense: delete conversation %s: %w", conv, err)
	}
	return nil
}

func (e *Engine) deleteWhere(ctx context.Context, filter string) error {
	_, err := e.c.Collection(e.coll).Documents().Delete(ctx, &api.DeleteDocumentsParams{FilterBy: &filter})
	return err
}

// Close implements search.Engine. The server keeps the collection.
func (e *Engine) Close() error {
	e.gate.Close()
	return nil
}

// quote puts a filter value in backticks (ids never hold one).
func quote(v string) string { return "`" + v + "`" }
