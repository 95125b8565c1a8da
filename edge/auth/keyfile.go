package auth

import (
	"bufio"
	"bytes"
	"encoding/base64"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
)

// Token key files hold one key per line, "id base64url-secret"; the first
// key signs new tokens and every key verifies. Blank lines and lines
// starting with # are ignored. Every edge of a region reads the same file.

// KeyFileError is returned by ReadKeyFile for a file that does not hold
// valid keys: Line is the 1-based line at fault, 0 for the whole file.
type KeyFileError struct {
	Path string
	Line int
	Err  error
}

func (e *KeyFileError) Error() string {
	if e.Line > 0 {
		return fmt.Sprintf("%s:%d: %v", e.Path, e.Line, e.Err)
	}
	return fmt.Sprintf("%s: %v", e.Path, e.Err)
}

func (e *KeyFileError) Unwrap() error { return e.Err }

// ReadKeyFile reads the token keys in path. A missing file is an error
// that matches os.ErrNotExist; a malformed one is a *KeyFileError.
func ReadKeyFile(path string) ([]Key, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	var keys []Key
	sc := bufio.NewScanner(f)
	for line := 1; sc.Scan(); line++ {
		s := strings.TrimSpace(sc.Text())
		if s == "" || strings.HasPrefix(s, "#") {
			continue
		}
		id, secret, ok := strings.Cut(s, " ")
		if !ok {
			return nil, &KeyFileError{Path: path, Line: line, Err: errors.New(`want "id secret"`)}
		}
		b, err := base64.RawURLEncoding.DecodeString(strings.TrimSpace(secret))
		if err != nil {
			return nil, &KeyFileError{Path: path, Line: line, Err: fmt.Errorf("secret: %w", err)}
		}
		keys = append(keys, Key{ID: id, Secret: b})
	}
	if err := sc.Err(); err != nil {
		return nil, err
	}
	if len(keys) == 0 {
		return nil, &KeyFileError{Path: path, Err: errors.New("no keys")}
	}
	if err := (Config{Keys: keys}).Validate(); err != nil {
		return nil, &KeyFileError{Path: path, Err: err}
	}
	return keys, nil
}

// LoadOrCreateKeyFile reads path, or writes a new one-key file (mode
// 0600) when it does not exist.
func LoadOrCreateKeyFile(path string) ([]Key, error) {
	keys, err := ReadKeyFile(path)
	if !errors.Is(err, os.ErrNotExist) {
		return keys, err
	}
	k, err := GenerateKey("k1")
	if err != nil {
		return nil, err
	}
	if err := WriteKeyFile(path, []Key{k}); err != nil {
		return nil, err
	}
	return []Key{k}, nil
}

// WriteKeyFile replaces path (mode 0600, its directory made 0700 if
// missing) with keys, the first of which signs.
func WriteKeyFile(path string, keys []Key) error {
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
