// Package bleve is the embedded search engine: a Bleve (scorch) index in
// a directory, implementing search.Engine.
//
// Membership at scale. The allowed conversations are a clause of the
// query, never a filter over a finished page. Up to 256 of them become
// one union of their posting lists: the clause runs with Score "none", so
// scorch's "unadorned disjunction" optimization ORs the posting bitmaps
// instead of running a heap over the term iterators, and the clause takes
// part in the conjunction (it can drive the iteration when it is the
// rarest part). Each conversation costs a dictionary lookup per segment,
// so a larger set (a user in 10,000 conversations) is checked per
// candidate instead, against the candidate's conversation doc value, in
// a filtering searcher below the collector: the cost follows what the
// rest of the query matches, not the size of the set. Both paths count
// and page only allowed hits. Every filter (workspace, sender, time,
// attachment, horizon) is unscored, so only the text terms decide
// relevance.
//
// Newest first. A page needs only the newest limit+1 matches, so the
// search looks at a recent window of ts first (Config.WindowDocs) and
// widens it 4 to 64 times until the page is full: a common word is sorted
// over one window's matches, not over all of them. In a window,
// membership is always checked per candidate: the window's few matches
// cost less to check than a union of the set's posting lists. The cursor is a keyset
// on (ts, conversation, seq) through Bleve's search_after.
//
// Analysis. One analyzer indexes the text (custom CJK grams, Unicode
// words, lower case, English possessives, Porter stems beside the words
// as written, for typos); queries use its query twin. Every text query
// names its analyzer or is analyzed here (bleve#1475: a query on a path
// that several field mappings share falls back to the standard
// analyzer), and the index maps one document type only.
package bleve

import (
	"context"
	"encoding/base64"
	"encoding/binary"
	"errors"
	"fmt"
	"hash/fnv"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	bv "github.com/blevesearch/bleve/v2"
	"github.com/blevesearch/bleve/v2/mapping"

	"github.com/parley-chat/parley/core/search"
	"github.com/parley-chat/parley/core/search/internal/gate"
)

// Config configures an Engine.
type Config struct {
	// Dir holds the index; it is created when missing.
	Dir string
	// Clock gives the time horizons are taken from; nil means time.Now.
	Clock search.Clock
	// WindowDocs is about how many messages the first ts window of a
	// newest-first search spans (see Engine.Search); 0 means 20,000,
	// negative means no windows.
	WindowDocs int
}

// Validate reports a bad Config.
func (c *Config) Validate() error {
	if c.Dir == "" {
		return errors.New("search/bleve: Config.Dir is empty")
	}
	return nil
}

// Engine is a Bleve index of messages.
type Engine struct {
	idx        bv.Index
	clock      search.Clock
	windowDocs int64

	// wmu serializes writes, so index positions (ix) become visible in
	// order and a horizon never hides a write that commits later.
	wmu       sync.Mutex
	lastIx    int64        // guarded by wmu
	committed atomic.Int64 // the highest ix visible to Search
	// tsMin and tsMax bound the ts of what was ever indexed (-1: nothing),
	// for the windows newest-first searches start with.
	tsMin, tsMax atomic.Int64

	gate gate.Gate
}

var _ search.Engine = (*Engine)(nil)

// Field names of an indexed message.
const (
	fWorkspace = "ws"
	fConv      = "conv"
	fSender    = "sender"
	fTS        = "ts"
	fAttach    = "att"
	fSortKey   = "sk" // ts, conv, seq: the newest-first order and its keyset
	fIx        = "ix" // index position, for relevance horizons
	fText      = "text"
	fMsg       = "msg"
)

// Internal keys, written with each batch.
var (
	ixKey = []byte("parley.ix")
	tsKey = []byte("parley.ts") // tsMin, tsMax
)

// Open opens the index in cfg.Dir, creating it when missing.
func Open(cfg Config) (*Engine, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	e := &Engine{clock: cfg.Clock, windowDocs: int64(cfg.WindowDocs)}
	if e.clock == nil {
		e.clock = time.Now
	}
	if e.windowDocs == 0 {
		e.windowDocs = defaultWindowDocs
	}
	var err error
	if _, serr := os.Stat(filepath.Join(cfg.Dir, "index_meta.json")); serr == nil {
		e.idx, err = bv.Open(cfg.Dir)
	} else {
		if err := os.MkdirAll(filepath.Dir(cfg.Dir), 0o755); err != nil {
			return nil, fmt.Errorf("search/bleve: %w", err)
		}
		_ = os.Remove(cfg.Dir) // an empty directory (bleve.New wants none); never a full one
		e.idx, err = bv.New(cfg.Dir, newMapping())
	}
	if err != nil {
		return nil, fmt.Errorf("search/bleve: open %s: %w", cfg.Dir, err)
	}
	v, err := e.idx.GetInternal(ixKey)
	if err != nil {
		_ = e.idx.Close()
		return nil, fmt.Errorf("search/bleve: read index position: %w", err)
	}
	if len(v) == 8 {
		e.lastIx = int64(binary.BigEndian.Uint64(v))
	}
	e.committed.Store(e.lastIx)
	e.tsMin.Store(-1)
	e.tsMax.Store(-1)
	if v, err = e.idx.GetInternal(tsKey); err == nil && len(v) == 16 {
		e.tsMin.Store(int64(binary.BigEndian.Uint64(v)))
		e.tsMax.Store(int64(binary.BigEndian.Uint64(v[8:])))
	}
	return e, nil
}

func newMapping() *mapping.IndexMappingImpl {
	keywordField := func(store bool) *mapping.FieldMapping {
		f := mapping.NewKeywordFieldMapping()
		f.Store, f.IncludeInAll, f.IncludeTermVectors, f.DocValues = store, false, false, false
		return f
	}
	numberField := func(store bool) *mapping.FieldMapping {
		f := mapping.NewNumericFieldMapping()
		f.Store, f.IncludeInAll, f.DocValues = store, false, false
		return f
	}
	doc := mapping.NewDocumentStaticMapping()
	doc.AddFieldMappingsAt(fWorkspace, keywordField(false))
	conv := keywordField(false)
	conv.DocValues = true // memberQuery reads it
	doc.AddFieldMappingsAt(fConv, conv)
	doc.AddFieldMappingsAt(fSender, keywordField(true))
	doc.AddFieldMappingsAt(fTS, numberField(true))
	doc.AddFieldMappingsAt(fIx, numberField(false))
	sk := keywordField(false)
	sk.DocValues = true
	doc.AddFieldMappingsAt(fSortKey, sk)
	att := mapping.NewBooleanFieldMapping()
	att.Store, att.IncludeInAll, att.DocValues = false, false, false
	doc.AddFieldMappingsAt(fAttach, att)
	msg := keywordField(true)
	msg.Index = false
	doc.AddFieldMappingsAt(fMsg, msg)
	text := mapping.NewTextFieldMapping()
	text.Analyzer = indexAnalyzer
	text.Store, text.IncludeTermVectors, text.IncludeInAll, text.DocValues = true, true, false, false
	doc.AddFieldMappingsAt(fText, text)

	m := mapping.NewIndexMapping()
	m.DefaultMapping = doc
	m.DefaultAnalyzer = indexAnalyzer
	m.IndexDynamic, m.StoreDynamic, m.DocValuesDynamic = false, false, false
	return m
}

func docID(conv string, seq uint64) string { return conv + "/" + strconv.FormatUint(seq, 10) }

func parseDocID(id string) (string, uint64, bool) {
	conv, s, ok := strings.Cut(id, "/")
	seq, err := strconv.ParseUint(s, 10, 64)
	return conv, seq, ok && err == nil
}

// sortKey orders messages for both sorts: 6 bytes of ts, big-endian,
// then 6 bytes of a hash of (conv, seq), which orders messages of one
// millisecond (two of them tie only if 48 bits of their hashes do), in
// 16 characters of an order-keeping base64 (zap's doc values split terms
// at 0xff, so no raw bytes). It is short because sorting reads it as a
// doc value for every match.
func sortKey(ts int64, conv string, seq uint64) string {
	h := fnv.New64a()
	h.Write([]byte(conv))
	h.Write(binary.BigEndian.AppendUint64(nil, seq))
	var k [14]byte
	binary.BigEndian.PutUint64(k[:8], uint64(ts)<<16) // ts < 2^48 (Doc.Validate): its 6 bytes
	binary.BigEndian.PutUint64(k[6:], h.Sum64())      // then the hash's first 6
	return sortEncoding.EncodeToString(k[:12])
}

// sortEncoding is base64 with its alphabet in byte order, so encoded
// strings sort as the bytes do.
var sortEncoding = base64.NewEncoding("-0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZ_abcdefghijklmnopqrstuvwxyz").WithPadding(base64.NoPadding)

// write runs f as the only writer, while the engine is open.
func (e *Engine) write(ctx context.Context, f func() error) error {
	if err := e.gate.Enter(); err != nil {
		return err
	}
	defer e.gate.Leave()
	if err := ctx.Err(); err != nil {
		return err
	}
	e.wmu.Lock()
	defer e.wmu.Unlock()
	return f()
}

// Index implements search.Engine.
func (e *Engine) Index(ctx context.Context, docs []search.Doc) error {
	if err := search.ValidateDocs(docs); err != nil || len(docs) == 0 {
		return err
	}
	return e.write(ctx, func() error {
		b := e.idx.NewBatch()
		ix := max(e.lastIx+1, e.clock().UnixMicro())
		tsMin, tsMax := e.tsMin.Load(), e.tsMax.Load()
		for i := range docs {
			d := &docs[i]
			if tsMin < 0 || d.TS < tsMin {
				tsMin = d.TS
			}
			tsMax = max(tsMax, d.TS)
			err := b.Index(docID(d.ConvID, d.Seq), map[string]any{
				fWorkspace: d.Workspace,
				fConv:      d.ConvID,
				fSender:    d.Sender,
				fTS:        float64(d.TS),
				fIx:        float64(ix),
				fSortKey:   sortKey(d.TS, d.ConvID, d.Seq),
				fAttach:    d.HasAttachment,
				fMsg:       d.MsgID,
				fText:      search.TrimText(d.Text),
			})
			if err != nil {
				return fmt.Errorf("search/bleve: index %s/%d: %w", d.ConvID, d.Seq, err)
			}
		}
		b.SetInternal(ixKey, binary.BigEndian.AppendUint64(nil, uint64(ix)))
		b.SetInternal(tsKey, binary.BigEndian.AppendUint64(binary.BigEndian.AppendUint64(nil, uint64(tsMin)), uint64(tsMax)))
		if err := e.idx.Batch(b); err != nil {
			return fmt.Errorf("search/bleve: index batch: %w", err)
		}
		e.lastIx = ix
		e.committed.Store(ix)
		e.tsMin.Store(tsMin)
		e.tsMax.Store(tsMax)
		return nil
	})
}

// Delete implements search.Engine.
func (e *Engine) Delete(ctx context.Context, conv string, seqs ...uint64) error {
	return e.write(ctx, func() error {
		b := e.idx.NewBatch()
		for _, s := range seqs {
			b.Delete(docID(conv, s))
		}
		if err := e.idx.Batch(b); err != nil {
			return fmt.Errorf("search/bleve: delete from %s: %w", conv, err)
		}
		return nil
	})
}

// DeleteConversation implements search.Engine.
func (e *Engine) DeleteConversation(ctx context.Context, conv string) error {
	return e.write(ctx, func() error {
		for {
			if err := ctx.Err(); err != nil {
				return err
			}
			req := bv.NewSearchRequestOptions(termQuery(fConv, conv), 10000, 0, false)
			req.Score = "none"
			res, err := e.idx.SearchInContext(ctx, req)
			if err != nil {
				return fmt.Errorf("search/bleve: delete conversation %s: %w", conv, err)
			}
			if len(res.Hits) == 0 {
				return nil
			}
			b := e.idx.NewBatch()
			for _, h := range res.Hits {
				b.Delete(h.ID)
			}
			if err := e.idx.Batch(b); err != nil {
				return fmt.Errorf("search/bleve: delete conversation %s: %w", conv, err)
			}
		}
	})
}

// Close implements search.Engine.
func (e *Engine) Close() error {
	if !e.gate.Close() {
		return nil
	}
	if err := e.idx.Close(); err != nil {
		return fmt.Errorf("search/bleve: close: %w", err)
	}
	return nil
}
