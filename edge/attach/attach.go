// Package attach is the edge's attachment path: resumable uploads over the
// tus protocol (tusd as a library), checked and moved into a blob.Store
// when they finish; the claim that ties a finished upload to the one
// message that attaches it; and signed, expiring download URLs.
//
// Partial uploads live in tusd's filestore under Config.Dir, on the edge
// that received them. When the last byte arrives (tusd's pre-finish
// hook) the file is sniffed (the client's type is never trusted), checked
// against the workspace's allow-list and the Scanner, thumbnailed if it
// is an image, and streamed into the store at "uploads/<id>" with its
// SHA-256; its record goes to "uploadmeta/<id>" and its thumbnail to
// "thumbs/<id>". So any edge sharing the store can resolve it.
//
// An upload is attached by writing its claim, "attachmeta/<id>" (owner,
// conversation, client_msg_id), before the send goes to the core: a retry
// of the same send finds its own claim and passes, any other send is
// refused. Claims are serialised per upload within one edge; across edges
// sharing a store two different sends racing on one upload id within a
// Put's time could both pass (blob.Store has no conditional put yet).
package attach

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"time"

	"github.com/parley-chat/parley/blob"
	"github.com/parley-chat/parley/blob/media"
)

// Defaults for Config's zero values.
const (
	DefaultMaxSize    = 100 << 20
	DefaultTTL        = 24 * time.Hour
	DefaultURLTTL     = 5 * time.Minute
	DefaultSweepEvery = time.Minute
)

// Limits are what one workspace accepts.
type Limits struct {
	// MaxSize is the largest upload in bytes (Config.MaxSize when 0).
	MaxSize int64
	// Allow restricts the sniffed types (Config.Allow when empty).
	Allow media.AllowList
}

// Upload is what a Scanner is told of an upload it checks.
type Upload struct {
	ID, Owner, Workspace, Name string
	Type                       string // sniffed
	Size                       int64
}

// Scanner decides, before an upload is accepted, whether to keep it (a
// virus scan, a content policy). Scan reads the upload's bytes from r; a
// non-nil error refuses the upload, whose bytes are then deleted, and its
// text is shown to the client. Scan is called concurrently.
type Scanner interface {
	Scan(ctx context.Context, u Upload, r io.Reader) error
}

// Config configures a Service.
type Config struct {
	// Store keeps the finished uploads, records and thumbnails (required).
	Store blob.Store
	// Dir holds partial uploads (required; created).
	Dir string
	// SignKey signs download URLs served by the edge (required, at least
	// 16 bytes; edges sharing a store share it).
	SignKey []byte
	// MaxSize bounds an upload (DefaultMaxSize); Allow restricts the
	// sniffed types (empty: every type). Workspaces overrides both per
	// workspace id.
	MaxSize    int64
	Allow      media.AllowList
	Workspaces map[string]Limits
	// TTL is how long an upload waits to be attached before the sweeper
	// deletes it (DefaultTTL); URLTTL how long a download URL works
	// (DefaultURLTTL); SweepEvery how often the sweeper runs.
	TTL, URLTTL, SweepEvery time.Duration
	// Scanner checks each finished upload (nil: accept all).
	Scanner Scanner
	// Thumb bounds thumbnailing.
	Thumb media.ThumbConfig
	// Logger (default discard) and Now (default time.Now).
	Logger *slog.Logger
	Now    func() time.Time
}

// Validate names the first bad field.
func (c Config) Validate() error {
	switch {
	case c.Store == nil:
		return errors.New("attach: Config.Store is required")
	case c.Dir == "":
		return errors.New("attach: Config.Dir is required")
	case len(c.SignKey) < 16:
		return errors.New("attach: Config.SignKey must be at least 16 bytes")
	case c.MaxSize < 0:
		return fmt.Errorf("attach: Config.MaxSize %d is negative", c.MaxSize)
	case c.TTL < 0 || c.URLTTL < 0 || c.SweepEvery < 0:
		return errors.New("attach: Config.TTL, URLTTL and SweepEvery must not be negative")
	}
	if err := c.Allow.Validate(); err != nil {
		return fmt.Errorf("attach: Config.Allow: %w", err)
	}
	for ws, l := range c.Workspaces {
		if l.MaxSize < 0 {
			return fmt.Errorf("attach: Config.Workspaces[%q].MaxSize is negative", ws)
		}
		if err := l.Allow.Validate(); err != nil {
			return fmt.Errorf("attach: Config.Workspaces[%q].Allow: %w", ws, err)
		}
	}
	return nil
}

// Service serves uploads and downloads. It is safe for concurrent use;
// Close stops its sweeper.
type Service struct {
	cfg  Config
	tus  *tusServer
	log  *slog.Logger
	now  func() time.Time
	lock keyedMutex

	stop chan struct{}
	done chan struct{}
	once sync.Once
}

// New starts a Service and its sweeper.
func New(cfg Config) (*Service, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	if cfg.MaxSize == 0 {
		cfg.MaxSize = DefaultMaxSize
	}
	if cfg.TTL == 0 {
		cfg.TTL = DefaultTTL
	}
	if cfg.URLTTL == 0 {
		cfg.URLTTL = DefaultURLTTL
	}
	if cfg.SweepEvery == 0 {
		cfg.SweepEvery = DefaultSweepEvery
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.DiscardHandler)
	}
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	if err := os.MkdirAll(cfg.Dir, 0o755); err != nil {
		return nil, fmt.Errorf("attach: %w", err)
	}
	s := &Service{cfg: cfg, log: cfg.Logger, now: cfg.Now, stop: make(chan struct{}), done: make(chan struct{})}
	var err error
	if s.tus, err = newTusServer(s); err != nil {
		return nil, err
	}
	go s.sweepLoop()
	return s, nil
}

// Close stops the sweeper and waits for it. It is idempotent.
func (s *Service) Close() error {
	s.once.Do(func() { close(s.stop) })
	<-s.done
	return nil
}

func (s *Service) limits(workspace string) Limits {
	l := s.cfg.Workspaces[workspace]
	if l.MaxSize == 0 {
		l.MaxSize = s.cfg.MaxSize
	}
	if len(l.Allow) == 0 {
		l.Allow = s.cfg.Allow
	}
	return l
}

// URLTTL is how long a download URL works.
func (s *Service) URLTTL() time.Duration { return s.cfg.URLTTL }

func (s *Service) sweepLoop() {
	defer close(s.done)
	t := time.NewTicker(s.cfg.SweepEvery)
	defer t.Stop()
	for {
		select {
		case <-s.stop:
			return
		case <-t.C:
			ctx, cancel := context.WithTimeout(context.Background(), s.cfg.SweepEvery)
			if err := s.Sweep(ctx); err != nil {
				s.log.Warn("attach: sweep", "err", err)
			}
			cancel()
		}
	}
}

// Sweep removes what this edge holds of uploads that are attached (their
// partial files) or expired unattached (everything). It is what the
// sweeper runs every SweepEvery; tests call it directly.
func (s *Service) Sweep(ctx context.Context) error {
	infos, err := filepath.Glob(filepath.Join(s.cfg.Dir, "*.info"))
	if err != nil {
		return err
	}
	var errs []error
	for _, p := range infos {
		id := strings.TrimSuffix(filepath.Base(p), ".info")
		meta, err := s.tus.meta(ctx, id)
		if err != nil {
			continue // being created, or gone
		}
		if _, err := s.claim(ctx, id); err == nil {
			errs = append(errs, s.tus.remove(ctx, id))
			continue
		}
		if s.now().Before(meta.created().Add(s.cfg.TTL)) {
			continue
		}
		errs = append(errs, s.deleteUpload(ctx, id), s.tus.remove(ctx, id))
	}
	return errors.Join(errs...)
}

// deleteUpload removes an upload's bytes, thumbnail and record.
func (s *Service) deleteUpload(ctx context.Context, id string) error {
	return errors.Join(
		s.cfg.Store.Delete(ctx, blobKey(id)),
		s.cfg.Store.Delete(ctx, thumbKey(id)),
		s.cfg.Store.Delete(ctx, recordKey(id)))
}

// keyedMutex serialises work per key.
type keyedMutex struct {
	mu sync.Mutex
	m  map[string]*keyedEntry
}

type keyedEntry struct {
	mu sync.Mutex
	n  int
}

func (k *keyedMutex) lock(key string) func() {
	k.mu.Lock()
	if k.m == nil {
		k.m = map[string]*keyedEntry{}
	}
	e := k.m[key]
	if e == nil {
		e = &keyedEntry{}
		k.m[key] = e
	}
	e.n++
	k.mu.Unlock()
	e.mu.Lock()
	return func() {
		e.mu.Unlock()
		k.mu.Lock()
		if e.n--; e.n == 0 {
			delete(k.m, key)
		}
		k.mu.Unlock()
	}
}
