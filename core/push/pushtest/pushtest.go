// Package pushtest is a Web Push service for tests, on loopback: it hands
// out subscriptions (a user agent's P-256 key and auth secret), checks
// each request's VAPID JWT (RFC 8292: ES256 by the application server's
// key, the right audience, not expired, a contact) and decrypts its
// RFC 8291 aes128gcm payload with crypto/ecdh, crypto/hkdf and AES-GCM.
// It records the plaintexts, and answers statuses a test queues.
package pushtest

import (
	"bytes"
	"crypto/aes"
	"crypto/cipher"
	"crypto/ecdh"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/hkdf"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math/big"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"sync"
	"testing"
	"time"
)

// Service is the Web Push service.
type Service struct {
	t        testing.TB
	srv      *httptest.Server
	vapidPub string

	mu     sync.Mutex
	subs   map[string]*uaKeys
	got    []Push
	status map[string][]int // per subscription, statuses to answer in turn
	errs   []error
}

// Push is one push the service accepted.
type Push struct {
	Subscription string // the id given to Subscribe
	Payload      []byte // decrypted
}

// Subscription is what a browser's PushSubscription gives: the endpoint
// and its keys, base64url.
type Subscription struct {
	Endpoint, P256dh, Auth string
}

type uaKeys struct {
	priv *ecdh.PrivateKey
	auth []byte
}

// New starts a service that accepts pushes signed with the VAPID public
// key vapidPublic (base64url); it stops at the test's end.
func New(t testing.TB, vapidPublic string) *Service {
	t.Helper()
	s := &Service{t: t, vapidPub: vapidPublic, subs: map[string]*uaKeys{}, status: map[string][]int{}}
	s.srv = httptest.NewServer(http.HandlerFunc(s.serve))
	t.Cleanup(s.srv.Close)
	return s
}

// Subscribe makes a subscription named id, as a browser's PushManager
// would.
func (s *Service) Subscribe(id string) Subscription {
	priv, err := ecdh.P256().GenerateKey(rand.Reader)
	if err != nil {
		s.t.Fatal(err)
	}
	auth := make([]byte, 16)
	_, _ = rand.Read(auth)
	s.mu.Lock()
	s.subs[id] = &uaKeys{priv: priv, auth: auth}
	s.mu.Unlock()
	return Subscription{Endpoint: s.srv.URL + "/push/" + id,
		P256dh: base64.RawURLEncoding.EncodeToString(priv.PublicKey().Bytes()),
		Auth:   base64.RawURLEncoding.EncodeToString(auth)}
}

// Answer makes the service answer the next requests for a subscription
// with these statuses (then 201).
func (s *Service) Answer(id string, statuses ...int) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.status[id] = append(s.status[id], statuses...)
}

// Received are the pushes accepted so far; it fails the test if any
// request was malformed (bad VAPID, bad encryption).
func (s *Service) Received() []Push {
	s.mu.Lock()
	defer s.mu.Unlock()
	if len(s.errs) > 0 {
		s.t.Fatalf("push service: %v", errors.Join(s.errs...))
	}
	return append([]Push(nil), s.got...)
}

func (s *Service) serve(w http.ResponseWriter, r *http.Request) {
	id, ok := strings.CutPrefix(r.URL.Path, "/push/")
	s.mu.Lock()
	ua := s.subs[id]
	s.mu.Unlock()
	if !ok || ua == nil || r.Method != http.MethodPost {
		http.NotFound(w, r)
		return
	}
	plain, err := s.check(r, ua)
	s.mu.Lock()
	defer s.mu.Unlock()
	if err != nil {
		s.errs = append(s.errs, err)
		http.Error(w, err.Error(), http.StatusBadRequest)
		return
	}
	if st := s.status[id]; len(st) > 0 {
		s.status[id] = st[1:]
		if st[0] != http.StatusCreated {
			w.WriteHeader(st[0])
			return
		}
	}
	s.got = append(s.got, Push{Subscription: id, Payload: plain})
	w.WriteHeader(http.StatusCreated)
}

func (s *Service) check(r *http.Request, ua *uaKeys) ([]byte, error) {
	if err := s.checkVAPID(r); err != nil {
		return nil, fmt.Errorf("vapid: %w", err)
	}
	if ce := r.Header.Get("Content-Encoding"); ce != "aes128gcm" {
		return nil, fmt.Errorf("Content-Encoding %q", ce)
	}
	if r.Header.Get("TTL") == "" {
		return nil, errors.New("no TTL header")
	}
	body, err := io.ReadAll(r.Body)
	if err != nil {
		return nil, err
	}
	plain, err := decrypt(body, ua)
	if err != nil {
		return nil, fmt.Errorf("decrypt: %w", err)
	}
	if !json.Valid(plain) {
		return nil, errors.New("payload is not JSON")
	}
	return plain, nil
}

// checkVAPID verifies "Authorization: vapid t=<jwt>, k=<key>" (RFC 8292).
func (s *Service) checkVAPID(r *http.Request) error {
	v, ok := strings.CutPrefix(r.Header.Get("Authorization"), "vapid ")
	if !ok {
		return errors.New("no vapid authorization")
	}
	var tok, key string
	for _, part := range strings.Split(v, ",") {
		k, val, _ := strings.Cut(strings.TrimSpace(part), "=")
		switch k {
		case "t":
			tok = val
		case "k":
			key = val
		}
	}
	if key != s.vapidPub {
		return errors.New("k is not the application server's key")
	}
	kb, err := base64.RawURLEncoding.DecodeString(key)
	if err != nil {
		return err
	}
	pub, err := ecdsa.ParseUncompressedPublicKey(elliptic.P256(), kb)
	if err != nil {
		return err
	}
	parts := strings.Split(tok, ".")
	if len(parts) != 3 {
		return errors.New("jwt has not three parts")
	}
	hb, err := base64.RawURLEncoding.DecodeString(parts[0])
	if err != nil {
		return err
	}
	var hdr struct{ Alg, Typ string }
	if err := json.Unmarshal(hb, &hdr); err != nil || hdr.Alg != "ES256" {
		return fmt.Errorf("jwt header %s", hb)
	}
	sig, err := base64.RawURLEncoding.DecodeString(parts[2])
	if err != nil || len(sig) != 64 {
		return errors.New("jwt signature is not 64 bytes")
	}
	h := sha256.Sum256([]byte(parts[0] + "." + parts[1]))
	if !ecdsa.Verify(pub, h[:], new(big.Int).SetBytes(sig[:32]), new(big.Int).SetBytes(sig[32:])) {
		return errors.New("jwt signature does not verify")
	}
	cb, err := base64.RawURLEncoding.DecodeString(parts[1])
	if err != nil {
		return err
	}
	var claims struct {
		Aud string `json:"aud"`
		Exp int64  `json:"exp"`
		Sub string `json:"sub"`
	}
	if err := json.Unmarshal(cb, &claims); err != nil {
		return err
	}
	u, _ := url.Parse(s.srv.URL)
	if claims.Aud != u.Scheme+"://"+u.Host {
		return fmt.Errorf("aud %q", claims.Aud)
	}
	if exp := time.Unix(claims.Exp, 0); time.Until(exp) <= 0 || time.Until(exp) > 24*time.Hour {
		return fmt.Errorf("exp %v", exp)
	}
	if !strings.HasPrefix(claims.Sub, "mailto:") && !strings.HasPrefix(claims.Sub, "https:") {
		return fmt.Errorf("sub %q", claims.Sub)
	}
	return nil
}

// decrypt undoes RFC 8291 over RFC 8188's aes128gcm: one record.
func decrypt(body []byte, ua *uaKeys) ([]byte, error) {
	if len(body) < 21 {
		return nil, errors.New("short header")
	}
	salt, rs, idlen := body[:16], binary.BigEndian.Uint32(body[16:20]), int(body[20])
	if len(body) < 21+idlen || idlen != 65 {
		return nil, errors.New("bad keyid")
	}
	asPub, err := ecdh.P256().NewPublicKey(body[21 : 21+idlen])
	if err != nil {
		return nil, err
	}
	ct := body[21+idlen:]
	if uint32(len(ct)) > rs {
		return nil, errors.New("more than one record")
	}
	secret, err := ua.priv.ECDH(asPub)
	if err != nil {
		return nil, err
	}
	info := append(append([]byte("WebPush: info\x00"), ua.priv.PublicKey().Bytes()...), asPub.Bytes()...)
	prkKey, err := hkdf.Extract(sha256.New, secret, ua.auth)
	if err != nil {
		return nil, err
	}
	ikm, err := hkdf.Expand(sha256.New, prkKey, string(info), 32)
	if err != nil {
		return nil, err
	}
	prk, err := hkdf.Extract(sha256.New, ikm, salt)
	if err != nil {
		return nil, err
	}
	cek, err := hkdf.Expand(sha256.New, prk, "Content-Encoding: aes128gcm\x00", 16)
	if err != nil {
		return nil, err
	}
	nonce, err := hkdf.Expand(sha256.New, prk, "Content-Encoding: nonce\x00", 12)
	if err != nil {
		return nil, err
	}
	blk, err := aes.NewCipher(cek)
	if err != nil {
		return nil, err
	}
	gcm, err := cipher.NewGCM(blk)
	if err != nil {
		return nil, err
	}
	plain, err := gcm.Open(nil, nonce, ct, nil)
	if err != nil {
		return nil, err
	}
	// The last record ends with the delimiter 2 and zero padding.
	plain = bytes.TrimRight(plain, "\x00")
	if len(plain) == 0 || plain[len(plain)-1] != 2 {
		return nil, errors.New("no last-record delimiter")
	}
	return plain[:len(plain)-1], nil
}
