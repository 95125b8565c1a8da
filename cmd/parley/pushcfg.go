package main

import (
	"bufio"
	"bytes"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/parley-chat/parley/cmd/internal/settings"
	"github.com/parley-chat/parley/core"
	"github.com/parley-chat/parley/core/push"
)

// Push configuration (docs/push.md): the push flags of serve and core,
// and the VAPID key file `parley keygen --vapid` writes.

// pushFlags adds the push settings to fs; the first one given makes c.Push.
func pushFlags(fs *flag.FlagSet, c *core.Config, onEveryNode string) {
	pc := func() *core.PushConfig {
		if c.Push == nil {
			c.Push = &core.PushConfig{}
		}
		return c.Push
	}
	fs.Func("push-vapid", "VAPID key file for Web Push (parley keygen --vapid FILE"+onEveryNode+")", func(s string) error {
		v, err := readVAPIDFile(s)
		pc().VAPID = v
		return err
	})
	fs.Func("push-subscriber", "the VAPID contact push services may reach: mailto:... or https://...", func(s string) error {
		pc().Subscriber = s
		return nil
	})
	fs.Func("push-gateways", "the operator's push gateways (Sygnal-shaped webhooks) devices may name: name=https://host/_matrix/push/v1/notify,...", func(s string) error {
		gws := map[string]push.Gateway{}
		for _, kv := range settings.SplitList(s) {
			name, url, ok := strings.Cut(kv, "=")
			if !ok || name == "" || url == "" {
				return fmt.Errorf("%q: want name=url", kv)
			}
			gws[name] = push.Gateway{URL: url}
		}
		pc().Gateways = gws
		return nil
	})
	fs.Func("push-grace", "how long after a message an offline device waits for its push, in case it reconnects (default 2s)", func(s string) error {
		d, err := time.ParseDuration(s)
		pc().Grace = d
		return err
	})
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
