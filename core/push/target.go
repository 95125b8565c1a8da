package push

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"net/url"
	"strings"
	"syscall"
	"time"
)

// Kind is the kind of a device's push target.
type Kind uint8

const (
	// KindWebPush is a Web Push subscription (RFC 8030, 8291, 8292).
	KindWebPush Kind = iota + 1
	// KindGateway is an operator-configured webhook in the shape of
	// Matrix's Sygnal, carrying the device's opaque push key.
	KindGateway
)

func (k Kind) String() string {
	switch k {
	case KindWebPush:
		return "webpush"
	case KindGateway:
		return "gateway"
	}
	return fmt.Sprintf("kind(%d)", uint8(k))
}

// Target is where a device's pushes go. A device has at most one.
type Target struct {
	Kind Kind `json:"kind"`
	// Web Push: the subscription's endpoint and its keys (base64url, as
	// PushSubscription.getKey gives them).
	Endpoint string `json:"endpoint,omitempty"`
	P256dh   string `json:"p256dh,omitempty"`
	Auth     string `json:"auth,omitempty"`
	// Gateway: the name of a gateway the operator configured
	// (Config.Gateways) and the device's opaque push key for it.
	Gateway string `json:"gateway,omitempty"`
	PushKey string `json:"pushkey,omitempty"`
	// AppID is passed to the gateway as Sygnal's app_id.
	AppID string `json:"app_id,omitempty"`
}

// Limits on what a client may register.
const (
	MaxEndpointLen = 2048
	MaxKeyLen      = 512
)

// ErrBadTarget is returned (wrapped) by CheckTarget for a target a client
// may not register.
var ErrBadTarget = errors.New("push: bad push target")

// Guard is the SSRF guard on the Web Push endpoints clients give. The zero
// value is production mode: https only, and no loopback, private,
// link-local, multicast or unspecified address, whether literal or
// resolved at dial time.
type Guard struct {
	// AllowLoopback admits http and loopback addresses (tests only).
	AllowLoopback bool
}

// CheckTarget validates a target a client asks to register: a Web Push
// endpoint must be an https URL whose host is not a private address, a
// gateway must be one of gateways (the operator's, by name).
func (g Guard) CheckTarget(t Target, gateways map[string]Gateway) error {
	switch t.Kind {
	case KindWebPush:
		if len(t.P256dh) == 0 || len(t.P256dh) > MaxKeyLen || len(t.Auth) == 0 || len(t.Auth) > MaxKeyLen {
			return fmt.Errorf("%w: p256dh and auth keys are required", ErrBadTarget)
		}
		return g.CheckEndpoint(t.Endpoint)
	case KindGateway:
		if _, ok := gateways[t.Gateway]; !ok {
			return fmt.Errorf("%w: no gateway %q", ErrBadTarget, t.Gateway)
		}
		if t.PushKey == "" || len(t.PushKey) > MaxKeyLen || len(t.AppID) > MaxKeyLen {
			return fmt.Errorf("%w: a push key is required", ErrBadTarget)
		}
		return nil
	}
	return fmt.Errorf("%w: unknown kind", ErrBadTarget)
}

// CheckEndpoint checks a Web Push endpoint URL.
func (g Guard) CheckEndpoint(endpoint string) error {
	if endpoint == "" || len(endpoint) > MaxEndpointLen {
		return fmt.Errorf("%w: endpoint missing or too long", ErrBadTarget)
	}
	u, err := url.Parse(endpoint)
	if err != nil {
		return fmt.Errorf("%w: endpoint is not a URL", ErrBadTarget)
	}
	if u.Scheme != "https" && !(g.AllowLoopback && u.Scheme == "http") {
		return fmt.Errorf("%w: endpoint must be https", ErrBadTarget)
	}
	if u.User != nil || u.Host == "" {
		return fmt.Errorf("%w: endpoint needs a host and no user info", ErrBadTarget)
	}
	host := u.Hostname()
	if ip, err := netip.ParseAddr(host); err == nil {
		if !g.allowed(ip) {
			return fmt.Errorf("%w: endpoint address %s is not public", ErrBadTarget, ip)
		}
	} else if h := strings.ToLower(host); !g.AllowLoopback && (h == "localhost" || strings.HasSuffix(h, ".localhost")) {
		return fmt.Errorf("%w: endpoint host %s is not public", ErrBadTarget, host)
	}
	return nil
}

func (g Guard) allowed(ip netip.Addr) bool {
	ip = ip.Unmap()
	if g.AllowLoopback && ip.IsLoopback() {
		return true
	}
	return ip.IsGlobalUnicast() && !ip.IsPrivate() && !ip.IsLoopback() && !ip.IsLinkLocalUnicast() &&
		!isShared(ip)
}

// isShared is 100.64.0.0/10 (carrier-grade NAT) and the other ranges
// IsPrivate leaves out that are never a push service.
func isShared(ip netip.Addr) bool {
	for _, p := range nonPublic {
		if p.Contains(ip) {
			return true
		}
	}
	return false
}

var nonPublic = []netip.Prefix{
	netip.MustParsePrefix("100.64.0.0/10"),
	netip.MustParsePrefix("192.0.0.0/24"),
	netip.MustParsePrefix("198.18.0.0/15"),
	netip.MustParsePrefix("64:ff9b::/96"), // NAT64 can reach private IPv4
}

// DialContext dials like net.Dialer but refuses, after DNS resolution, an
// address the guard does not allow (so a public name that resolves to a
// private address is refused too).
func (g Guard) DialContext(ctx context.Context, network, addr string) (net.Conn, error) {
	d := net.Dialer{Timeout: 10 * time.Second, Control: func(_, address string, _ syscall.RawConn) error {
		ap, err := netip.ParseAddrPort(address)
		if err != nil {
			return fmt.Errorf("push: dial %s: %w", address, err)
		}
		if !g.allowed(ap.Addr()) {
			return fmt.Errorf("push: dial %s: %w: address is not public", address, ErrBadTarget)
		}
		return nil
	}}
	return d.DialContext(ctx, network, addr)
}
