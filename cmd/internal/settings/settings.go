// Package settings is how parley's commands read their settings: flags,
// then PARLEY_* environment variables, then a JSON config file, each
// setting declared once as a flag.
package settings

import (
	"bytes"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"sort"
	"strconv"
	"strings"
)

// ErrUsage and ErrHelp end a command whose flags did not parse (exit 2)
// or that was asked for its usage (exit 0); the usage has been printed
// either way.
var (
	ErrUsage = errors.New("usage")
	ErrHelp  = errors.New("help")
)

// envPrefix starts the environment variable of every setting: --log-level
// is PARLEY_LOG_LEVEL.
const envPrefix = "PARLEY_"

// precedence is what every command's usage says of where its settings
// come from.
const precedence = `Settings come from, highest first: the flags below; the environment, as
PARLEY_ and the flag's name in capitals with _ for - (PARLEY_LOG_LEVEL);
and the JSON file named by --config (or PARLEY_CONFIG), whose keys are the
flags' names with _ for - unless README's Configuration says otherwise.
`

// NewFlagSet is a command's flag set: its usage, printed to w for -h and
// for a flag that does not parse, is the synopsis, where settings come
// from (withPrecedence, for the commands that Load) and the flags.
func NewFlagSet(name, synopsis string, w io.Writer, withPrecedence bool) *flag.FlagSet {
	fs := flag.NewFlagSet(name, flag.ContinueOnError)
	fs.SetOutput(w)
	fs.Usage = func() {
		fmt.Fprintf(w, "Usage: %s %s\n\n", name, synopsis)
		if withPrecedence {
			fmt.Fprintf(w, "%s\n", precedence)
		}
		fs.PrintDefaults()
	}
	return fs
}

// Parse parses args into fs: ErrHelp for -h or --help, ErrUsage for
// anything else that does not parse.
func Parse(fs *flag.FlagSet, args []string) error {
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return ErrHelp
		}
		return ErrUsage
	}
	return nil
}

// Error is returned by Load for a value from the environment or a config file that its
// setting does not take.
type Error struct {
	Source string // "environment" or the config file's path
	Key    string // the variable or the file key
	Err    error
}

func (e *Error) Error() string {
	return fmt.Sprintf("%s: %s: %v", e.Source, e.Key, e.Err)
}

func (e *Error) Unwrap() error { return e.Err }

// Load registers --config on fs and parses args into it; then every flag
// not on the command line takes its value from the environment if set
// there, else from the config file if set there. fileKeys names the file
// keys that are not the flag's name with _ for - ("nats.routes": nested
// objects join their keys with dots). A file key that names no flag is an
// error.
func Load(fs *flag.FlagSet, args []string, fileKeys map[string]string) error {
	path := fs.String("config", "", "JSON file of settings (see above); flags and PARLEY_* override it")
	if err := Parse(fs, args); err != nil {
		return err
	}
	given := map[string]bool{}
	fs.Visit(func(f *flag.Flag) { given[f.Name] = true })
	if !given["config"] {
		if v, ok := os.LookupEnv(EnvName("config")); ok {
			*path = v
		}
	}
	if *path != "" {
		if err := loadFile(fs, *path, fileKeys, given); err != nil {
			return err
		}
	}
	var err error
	fs.VisitAll(func(f *flag.Flag) {
		v, ok := os.LookupEnv(EnvName(f.Name))
		if err != nil || given[f.Name] || f.Name == "config" || !ok {
			return
		}
		if serr := f.Value.Set(v); serr != nil {
			err = &Error{Source: "environment", Key: EnvName(f.Name), Err: serr}
		}
	})
	return err
}

// EnvName is the environment variable of a flag.
func EnvName(flagName string) string {
	return envPrefix + strings.ToUpper(strings.ReplaceAll(flagName, "-", "_"))
}

// loadFile sets the flags not given on the command line from the JSON
// object in path.
func loadFile(fs *flag.FlagSet, path string, fileKeys map[string]string, given map[string]bool) error {
	b, err := os.ReadFile(path)
	if err != nil {
		return fmt.Errorf("config: %w", err)
	}
	byKey := map[string]*flag.Flag{}
	fs.VisitAll(func(f *flag.Flag) {
		if f.Name == "config" {
			return
		}
		key := strings.ReplaceAll(f.Name, "-", "_")
		if k, ok := fileKeys[f.Name]; ok {
			key = k
		}
		byKey[key] = f
	})
	values := map[string]json.RawMessage{}
	if err := flatten("", b, byKey, values); err != nil {
		return &Error{Source: path, Key: "(file)", Err: err}
	}
	keys := make([]string, 0, len(values))
	for k := range values {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	for _, k := range keys {
		f := byKey[k]
		if f == nil {
			return &Error{Source: path, Key: k, Err: errors.New("no such setting")}
		}
		if given[f.Name] {
			continue
		}
		if err := setJSON(f.Value, values[k]); err != nil {
			return &Error{Source: path, Key: k, Err: err}
		}
	}
	return nil
}

// flatten puts the values of the JSON object b into out by key, prefixed
// with prefix; an object under a key that names no setting is descended
// into, its keys joined with a dot.
func flatten(prefix string, b []byte, settings map[string]*flag.Flag, out map[string]json.RawMessage) error {
	var obj map[string]json.RawMessage
	if err := json.Unmarshal(b, &obj); err != nil {
		return fmt.Errorf("want a JSON object: %w", err)
	}
	for k, v := range obj {
		key := prefix + k
		if _, ok := settings[key]; !ok && bytes.HasPrefix(bytes.TrimSpace(v), []byte("{")) {
			if err := flatten(key+".", v, settings, out); err != nil {
				return err
			}
			continue
		}
		out[key] = v
	}
	return nil
}

// setJSON sets v from a JSON value: a value that decodes JSON itself
// takes it whole; strings, numbers and booleans are set as their text,
// and a list of them as the text joined with commas.
func setJSON(v flag.Value, raw json.RawMessage) error {
	if u, ok := v.(json.Unmarshaler); ok {
		return u.UnmarshalJSON(raw)
	}
	dec := json.NewDecoder(bytes.NewReader(raw))
	dec.UseNumber()
	var x any
	if err := dec.Decode(&x); err != nil {
		return err
	}
	if list, ok := x.([]any); ok {
		parts := make([]string, len(list))
		for i, e := range list {
			s, err := scalarText(e)
			if err != nil {
				return err
			}
			parts[i] = s
		}
		return v.Set(strings.Join(parts, ","))
	}
	s, err := scalarText(x)
	if err != nil {
		return err
	}
	return v.Set(s)
}

func scalarText(x any) (string, error) {
	switch x := x.(type) {
	case string:
		return x, nil
	case json.Number:
		return x.String(), nil
	case bool:
		return strconv.FormatBool(x), nil
	}
	return "", fmt.Errorf("want a string, number, boolean or list of them, not %T", x)
}

// List is a comma-separated list flag that sets *p.
type List struct{ P *[]string }

func (l List) String() string {
	if l.P == nil {
		return ""
	}
	return strings.Join(*l.P, ",")
}

// Set replaces the list with the comma-separated items of s.
func (l List) Set(s string) error { *l.P = SplitList(s); return nil }

// SplitList is the items of a comma-separated list, trimmed, empty ones dropped.
func SplitList(s string) []string {
	var out []string
	for _, p := range strings.Split(s, ",") {
		if p = strings.TrimSpace(p); p != "" {
			out = append(out, p)
		}
	}
	return out
}
