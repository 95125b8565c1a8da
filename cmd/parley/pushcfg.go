package main

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/parley-chat/parley/core"
	"github.com/parley-chat/parley/core/push"
)

// Push configuration (docs/push.md): the "push" object of a core's
// config file, and the VAPID key file `parley keygen --vapid` writes.

// pushFile is the "push" object of a core's config file.
type pushFile struct {
	// VAPIDFile is the key file of `parley keygen --vapid FILE`.
	VAPIDFile string `json:"vapid_file"`
	// Subscriber is the VAPID contact (mailto: or an https URL).
	Subscriber string `json:"subscriber"`
	// Gateways are the operator's Sygnal-shaped push gateways, by name.
	Gateways map[string]struct {
		URL   string  `json:"url"`
		Rate  float64 `json:"rate"`
		Burst int     `json:"burst"`
	} `json:"gateways"`
	GraceMs    int `json:"grace_ms"`
	MaxPending int `json:"max_pending"`
}

// config is the core's PushConfig; nil when the file has no push object.
func (f *pushFile) config() (*core.PushConfig, error) {
	if f == nil {
		return nil, nil
	}
	pc := &core.PushConfig{Subscriber: f.Subscriber, Grace: time.Duration(f.GraceMs) * time.Millisecond, MaxPending: f.MaxPending}
	if f.VAPIDFile != "" {
		var err error
		if pc.VAPID, err = readVAPIDFile(f.VAPIDFile); err != nil {
			return nil, err
		}
	}
	if len(f.Gateways) > 0 {
		pc.Gateways = map[string]push.Gateway{}
		for name, g := range f.Gateways {
			pc.Gateways[name] = push.Gateway{URL: g.URL, Rate: g.Rate, Burst: g.Burst}
		}
	}
	if err := pc.Validate(); err != nil {
		return nil, err
	}
	return pc, nil
}

// A VAPID key file holds "public KEY" and "private KEY" lines (base64url,
// as browsers take applicationServerKey); blank lines and # comments are
// ignored. Every core of a region reads the same file.

func readVAPIDFile(path string) (push.VAPID, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return push.VAPID{}, err
	}
	var v push.VAPID
	sc := bufio.NewScanner(bytes.NewReader(b))
	for line := 1; sc.Scan(); line++ {
		s := strings.TrimSpace(sc.Text())
		if s == "" || strings.HasPrefix(s, "#") {
			continue
		}
		k, val, _ := strings.Cut(s, " ")
		switch k {
		case "public":
			v.Public = strings.TrimSpace(val)
		case "private":
			v.Private = strings.TrimSpace(val)
		default:
			return push.VAPID{}, fmt.Errorf("%s:%d: want \"public KEY\" or \"private KEY\"", path, line)
		}
	}
	if v.Public == "" || v.Private == "" {
		return push.VAPID{}, fmt.Errorf("%s: needs a public and a private key", path)
	}
	return v, nil
}

// runKeygenVAPID writes a new VAPID key pair to path (mode 0600) and
// prints the public key.
func runKeygenVAPID(path string, stdout io.Writer) error {
	if _, err := os.Stat(path); err == nil {
		return fmt.Errorf("%s exists", path)
	} else if !errors.Is(err, os.ErrNotExist) {
		return err
	}
	v, err := push.GenerateVAPID()
	if err != nil {
		return err
	}
	if err := os.MkdirAll(filepath.Dir(path), 0o700); err != nil {
		return err
	}
	body := fmt.Sprintf("# parley VAPID keys (Web Push): the same file on every core. Keep secret.\npublic %s\nprivate %s\n", v.Public, v.Private)
	if err := os.WriteFile(path, []byte(body), 0o600); err != nil {
		return err
	}
	fmt.Fprintf(stdout, "wrote %s: VAPID public key %s\n", path, v.Public)
	return nil
}
