package devcert

import (
	"context"
	"crypto/sha256"
	"crypto/tls"
	"encoding/base64"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"sync/atomic"
	"time"
)

// Limits and defaults of the dev certificate; see the package doc for the
// browser rule behind them.
const (
	// MaxLifetime is the longest validity, notBefore to notAfter, that
	// browsers accept for a certificate pinned by hash.
	MaxLifetime = 14 * 24 * time.Hour
	// DefaultLifetime is the dev certificate's validity when
	// Config.Lifetime is zero, a day short of MaxLifetime.
	DefaultLifetime = 13 * 24 * time.Hour
	// Backdate is how far before its creation a dev certificate's
	// notBefore lies, for clients whose clocks are behind. It is part of
	// Lifetime.
	Backdate = time.Hour
	// DefaultCheckInterval is how often Run looks for a due rotation or
	// changed files when Config.CheckInterval is zero.
	DefaultCheckInterval = time.Minute
)

// ErrClosed is returned by Run after Close, and by a second Run.
var ErrClosed = errors.New("devcert: closed or already running")

// DefaultHosts are the dev certificate's names when Config.Hosts is empty.
func DefaultHosts() []string { return []string{"localhost", "127.0.0.1", "::1"} }

// Config configures a Manager. The zero value is dev mode with the
// defaults and nothing kept on disk.
type Config struct {
	// Dir, if set, keeps the dev certificate and key in Dir/devcert.pem
	// (mode 0600; Dir is made 0700 if missing) so that the next New
	// reuses them while they are not due for rotation.
	Dir string
	// Hosts are the dev certificate's subject alternative names: IP
	// addresses, and DNS names (a leading "*." is allowed). Default
	// DefaultHosts().
	Hosts []string
	// Lifetime is the dev certificate's whole validity including
	// Backdate: at most MaxLifetime (default DefaultLifetime).
	Lifetime time.Duration
	// RenewBefore is how long before notAfter the dev certificate is
	// replaced (default Lifetime/3). Lifetime-RenewBefore must exceed
	// Backdate, or a new certificate would be due at once.
	RenewBefore time.Duration
	// CertFile and KeyFile select operator mode: a PEM certificate chain
	// (leaf first) and its PEM private key (PKCS#8, PKCS#1 or SEC 1). Set
	// both or neither; with them, the dev fields above must be unset.
	CertFile, KeyFile string
	// CheckInterval is how often Run checks for a due rotation (dev mode)
	// or changed files (operator mode); default DefaultCheckInterval.
	CheckInterval time.Duration
	// Logger (default: discard).
	Logger *slog.Logger
	// Now is the clock for validity periods and rotation (default
	// time.Now). It must be safe for concurrent use.
	Now func() time.Time
}

// operator reports whether c selects operator mode.
func (c Config) operator() bool { return c.CertFile != "" || c.KeyFile != "" }

// Validate names the first bad field.
func (c Config) Validate() error {
	switch {
	case (c.CertFile == "") != (c.KeyFile == ""):
		return errors.New("devcert: set both CertFile and KeyFile, or neither")
	case c.operator() && (c.Dir != "" || len(c.Hosts) > 0 || c.Lifetime != 0 || c.RenewBefore != 0):
		return errors.New("devcert: Dir, Hosts, Lifetime and RenewBefore are for the dev certificate; leave them unset with CertFile and KeyFile")
	case c.CheckInterval < 0:
		return fmt.Errorf("devcert: CheckInterval %v is negative", c.CheckInterval)
	case c.Lifetime < 0 || c.Lifetime > MaxLifetime:
		return fmt.Errorf("devcert: Lifetime %v: want 0 (default %v) up to %v, the most browsers accept for a certificate pinned by hash", c.Lifetime, DefaultLifetime, MaxLifetime)
	case c.RenewBefore < 0:
		return fmt.Errorf("devcert: RenewBefore %v is negative", c.RenewBefore)
	}
	d := c.withDefaults()
	if d.Lifetime-d.RenewBefore <= Backdate {
		return fmt.Errorf("devcert: Lifetime %v minus RenewBefore %v must exceed Backdate %v, or every new certificate would be due for rotation at once", d.Lifetime, d.RenewBefore, Backdate)
	}
	for _, h := range c.Hosts {
		if err := checkHost(h); err != nil {
			return fmt.Errorf("devcert: Hosts: %w", err)
		}
	}
	return nil
}

func (c Config) withDefaults() Config {
	if c.Lifetime == 0 {
		c.Lifetime = DefaultLifetime
	}
	if c.RenewBefore == 0 {
		c.RenewBefore = c.Lifetime / 3
	}
	if len(c.Hosts) == 0 && !c.operator() {
		c.Hosts = DefaultHosts()
	}
	if c.CheckInterval == 0 {
		c.CheckInterval = DefaultCheckInterval
	}
	if c.Logger == nil {
		c.Logger = slog.New(slog.DiscardHandler)
	}
	if c.Now == nil {
		c.Now = time.Now
	}
	return c
}

// served is the certificate being served and what is published about it.
// It is never modified once stored.
type served struct {
	cert     *tls.Certificate // Leaf set
	hash     [32]byte
	hashable bool      // meets the browsers' rule for hash pinning
	renewAt  time.Time // dev mode: when to replace it; zero in operator mode
	prev     *retired  // dev mode: the certificate it replaced, if any
}

// retired is a replaced certificate, published while it is valid.
type retired struct {
	hash                [32]byte
	notBefore, notAfter time.Time
}

func retire(s *served, now time.Time) *retired {
	leaf := s.cert.Leaf
	if now.Before(leaf.NotBefore) || !now.Before(leaf.NotAfter) {
		return nil
	}
	return &retired{hash: s.hash, notBefore: leaf.NotBefore, notAfter: leaf.NotAfter}
}

func newServed(cert *tls.Certificate) *served {
	return &served{cert: cert, hash: sha256.Sum256(cert.Certificate[0]), hashable: checkHashable(cert.Leaf) == nil}
}

// Manager provides the edge's TLS certificate. Its methods are safe for
// concurrent use.
type Manager struct {
	cfg Config
	log *slog.Logger
	cur atomic.Pointer[served]
	// kick asks Run to check now (a handshake saw a due certificate).
	kick chan struct{}

	// mu serializes rotations and loads, and guards stamp.
	mu    sync.Mutex
	stamp fileStamp // operator mode: the files last loaded or tried

	runMu   sync.Mutex
	started bool
	closing chan struct{}
	runDone chan struct{}
	once    sync.Once
}

// New validates cfg and gets the first certificate: in dev mode the one
// kept in Dir if it is still good, else a new one (saved to Dir, an error
// if that fails); in operator mode the files, an error if they do not
// load. Nothing runs in the background until Run.
func New(cfg Config) (*Manager, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	cfg = cfg.withDefaults()
	m := &Manager{
		cfg:     cfg,
		log:     cfg.Logger,
		kick:    make(chan struct{}, 1),
		closing: make(chan struct{}),
		runDone: make(chan struct{}),
	}
	if cfg.operator() {
		if err := m.load(); err != nil {
			return nil, err
		}
		return m, nil
	}
	if err := m.start(); err != nil {
		return nil, err
	}
	return m, nil
}

// start installs the first dev certificate.
func (m *Manager) start() error {
	now := m.cfg.Now()
	var prev *retired
	if m.cfg.Dir != "" {
		cert, err := loadKept(m.cfg.Dir)
		switch {
		case errors.Is(err, errNotKept):
		case err != nil:
			m.log.Warn("ignoring the kept dev certificate", "dir", m.cfg.Dir, "err", err)
		default:
			s := m.devServed(cert)
			why := m.reuseProblem(cert, now, s.renewAt)
			if why == "" {
				m.cur.Store(s)
				m.log.Info("reusing dev certificate", "dir", m.cfg.Dir, "hash", b64(s.hash), "not_after", cert.Leaf.NotAfter)
				return nil
			}
			m.log.Info("replacing the kept dev certificate", "dir", m.cfg.Dir, "reason", why)
			prev = retire(s, now)
		}
	}
	s, err := m.newDev(now, prev)
	if err != nil {
		return err
	}
	if m.cfg.Dir != "" {
		if err := keep(m.cfg.Dir, s.cert); err != nil {
			return err
		}
	}
	m.cur.Store(s)
	m.log.Info("new dev certificate", "hash", b64(s.hash), "not_after", s.cert.Leaf.NotAfter, "renew_at", s.renewAt)
	return nil
}

// reuseProblem says why a kept certificate cannot be served now, or "".
func (m *Manager) reuseProblem(cert *tls.Certificate, now, renewAt time.Time) string {
	leaf := cert.Leaf
	switch {
	case checkHashable(leaf) != nil:
		return checkHashable(leaf).Error()
	case !isP256(leaf):
		return "not ECDSA P-256"
	case leaf.NotAfter.Sub(leaf.NotBefore) > m.cfg.Lifetime:
		return "longer than Lifetime"
	case !sameHosts(leaf, m.cfg.Hosts):
		return "Hosts changed"
	case now.Before(leaf.NotBefore):
		return "not valid yet"
	case !now.Before(renewAt):
		return "due for rotation"
	}
	return ""
}

func (m *Manager) devServed(cert *tls.Certificate) *served {
	s := newServed(cert)
	s.renewAt = cert.Leaf.NotAfter.Add(-m.cfg.RenewBefore)
	return s
}

func (m *Manager) newDev(now time.Time, prev *retired) (*served, error) {
	cert, err := generate(now, m.cfg.Lifetime, m.cfg.Hosts)
	if err != nil {
		return nil, err
	}
	s := m.devServed(cert)
	s.prev = prev
	return s, nil
}

// due reports whether a dev certificate must be replaced at now.
func due(s *served, now time.Time) bool {
	return !s.renewAt.IsZero() && (!now.Before(s.renewAt) || now.Before(s.cert.Leaf.NotBefore))
}

// rotate replaces the dev certificate if it is due. m.mu must be held.
func (m *Manager) rotate() error {
	now := m.cfg.Now()
	old := m.cur.Load()
	if !due(old, now) {
		return nil
	}
	s, err := m.newDev(now, retire(old, now))
	if err != nil {
		m.log.Error("dev certificate rotation failed; still serving the old one", "err", err, "not_after", old.cert.Leaf.NotAfter)
		return err
	}
	m.cur.Store(s)
	m.log.Info("rotated dev certificate", "hash", b64(s.hash), "not_after", s.cert.Leaf.NotAfter, "renew_at", s.renewAt, "previous", b64(old.hash))
	if m.cfg.Dir != "" {
		if err := keep(m.cfg.Dir, s.cert); err != nil {
			// The new certificate is served anyway; a restart makes another.
			m.log.Warn("could not keep the dev certificate", "err", err)
		}
	}
	return nil
}

// Run checks every CheckInterval, and when a handshake finds the
// certificate due, for a rotation (dev mode) or changed files (operator
// mode), until ctx ends or Close is called; then it returns nil. It
// returns ErrClosed after Close or if already running. Failures are logged
// and the previous certificate kept.
func (m *Manager) Run(ctx context.Context) error {
	m.runMu.Lock()
	if m.started {
		m.runMu.Unlock()
		return ErrClosed
	}
	m.started = true
	m.runMu.Unlock()
	defer close(m.runDone)

	t := time.NewTimer(0)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return nil
		case <-m.closing:
			return nil
		case <-m.kick:
		case <-t.C:
		}
		m.check()
		t.Reset(m.nextCheck())
	}
}

func (m *Manager) check() {
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.cfg.operator() {
		m.reloadIfChanged()
		return
	}
	_ = m.rotate() // logged
}

// nextCheck is how long Run waits: CheckInterval, or less if a rotation
// falls due sooner (a timer that sleeps through a suspend fires late;
// CheckInterval bounds that, and a handshake's kick ends it at once).
func (m *Manager) nextCheck() time.Duration {
	wait := m.cfg.CheckInterval
	s := m.cur.Load()
	if s.renewAt.IsZero() {
		return wait
	}
	if d := s.renewAt.Sub(m.cfg.Now()); d > 0 && d < wait {
		wait = d
	}
	return wait
}

// Reload loads CertFile and KeyFile now, changed or not, as on SIGHUP
// (operator mode); a failure is logged and returned, and the previous
// certificate stays in use. In dev mode it rotates the certificate if it
// is due.
func (m *Manager) Reload() error {
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.cfg.operator() {
		return m.load()
	}
	return m.rotate()
}

// Close stops a running Run and waits for it to return. The certificate
// stays usable. It is idempotent.
func (m *Manager) Close() error {
	m.once.Do(func() {
		close(m.closing)
		m.runMu.Lock()
		started := m.started
		m.started = true
		m.runMu.Unlock()
		if started {
			<-m.runDone
		}
	})
	return nil
}

// GetCertificate returns the current certificate whatever the client
// asks for; it is the tls.Config.GetCertificate hook. It never fails.
func (m *Manager) GetCertificate(*tls.ClientHelloInfo) (*tls.Certificate, error) {
	s := m.cur.Load()
	if due(s, m.cfg.Now()) {
		select {
		case m.kick <- struct{}{}:
		default:
		}
	}
	return s.cert, nil
}

// TLSConfig returns a new server config with TLS 1.3 at least (as QUIC
// requires), the Manager's GetCertificate, and nextProtos for ALPN.
func (m *Manager) TLSConfig(nextProtos ...string) *tls.Config {
	return &tls.Config{
		MinVersion:     tls.VersionTLS13,
		GetCertificate: m.GetCertificate,
		NextProtos:     append([]string(nil), nextProtos...),
	}
}

// Hashes returns the SHA-256 hashes of the DER certificates that browsers
// may pin: the served one first, then, after a rotation, the previous one
// until it expires. A certificate that browsers would not accept by hash
// (an operator's WebPKI certificate) is left out.
func (m *Manager) Hashes() [][32]byte {
	hashes, _ := m.published()
	return hashes
}

// published returns Hashes and the served certificate's notAfter, from
// one snapshot.
func (m *Manager) published() ([][32]byte, time.Time) {
	s := m.cur.Load()
	var out [][32]byte
	if s.hashable {
		out = append(out, s.hash)
	}
	if p := s.prev; p != nil {
		if now := m.cfg.Now(); !now.Before(p.notBefore) && now.Before(p.notAfter) {
			out = append(out, p.hash)
		}
	}
	return out, s.cert.Leaf.NotAfter
}

func b64(h [32]byte) string { return base64.StdEncoding.EncodeToString(h[:]) }
