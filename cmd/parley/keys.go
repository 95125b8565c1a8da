package main

import (
	"bufio"
	"bytes"
	"encoding/base64"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"

	"github.com/parley-chat/parley/edge/auth"
)

// Token key files hold one key per line, "id base64url-secret"; the first
// key signs new tokens and every key verifies. Blank lines and lines
// starting with # are ignored. Every edge of a region reads the same file.

func readKeyFile(path string) ([]auth.Key, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	var keys []auth.Key
	sc := bufio.NewScanner(f)
	for line := 1; sc.Scan(); line++ {
		s := strings.TrimSpace(sc.Text())
		if s == "" || strings.HasPrefix(s, "#") {
			continue
		}
		id, secret, ok := strings.Cut(s, " ")
		if !ok {
			return nil, fmt.Errorf("%s:%d: want \"id secret\"", path, line)
		}
		b, err := base64.RawURLEncoding.DecodeString(strings.TrimSpace(secret))
		if err != nil {
			return nil, fmt.Errorf("%s:%d: secret: %w", path, line, err)
		}
		keys = append(keys, auth.Key{ID: id, Secret: b})
	}
	if err := sc.Err(); err != nil {
		return nil, err
	}
	if len(keys) == 0 {
		return nil, fmt.Errorf("%s: no keys", path)
	}
	if err := (auth.Config{Keys: keys}).Validate(); err != nil {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	return keys, nil
}

// loadOrCreateKeyFile reads path, or writes a new one-key file (mode 0600)
// when it does not exist.
func loadOrCreateKeyFile(path string) ([]auth.Key, error) {
	keys, err := readKeyFile(path)
	if !errors.Is(err, os.ErrNotExist) {
		return keys, err
	}
	k, err := auth.GenerateKey("k1")
	if err != nil {
		return nil, err
	}
	if err := writeKeyFile(path, []auth.Key{k}); err != nil {
		return nil, err
	}
	return []auth.Key{k}, nil
}

func writeKeyFile(path string, keys []auth.Key) error {
	var b bytes.Buffer
	b.WriteString("# parley token keys: \"id secret\"; the first signs. Keep secret.\n")
	for _, k := range keys {
		fmt.Fprintf(&b, "%s %s\n", k.ID, base64.RawURLEncoding.EncodeToString(k.Secret))
	}
	if err := os.MkdirAll(filepath.Dir(path), 0o700); err != nil {
		return err
	}
	tmp := path + ".tmp"
	if err := os.WriteFile(tmp, b.Bytes(), 0o600); err != nil {
		return err
	}
	return os.Rename(tmp, path)
}
