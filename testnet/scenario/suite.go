package scenario

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"time"
)

// SuiteConfig configures RunSuite.
type SuiteConfig struct {
	Dir       string // run directory (created)
	Repo      string // module root ("" finds it with go env GOMOD)
	Scenarios []string
	Options   Options
	LogLevel  string // the cores' and edges' (default info)
	Logger    *slog.Logger
	// OnResult gets each scenario's result as it finishes (nil result:
	// skipped or failed to run, with err).
	OnResult func(name string, res *Result, err error)
}

// RunSuite prepares the machine, starts one cluster, runs the scenarios
// on it in turn and removes everything at the end. It writes summary.txt
// in Dir.
func RunSuite(ctx context.Context, cfg SuiteConfig) error {
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.DiscardHandler)
	}
	if cfg.Repo == "" {
		out, err := exec.CommandContext(ctx, "go", "env", "GOMOD").Output()
		if err != nil || strings.TrimSpace(string(out)) == "" {
			return fmt.Errorf("scenario: find the module root: %v", err)
		}
		cfg.Repo = filepath.Dir(strings.TrimSpace(string(out)))
	}
	if err := Prepare(ctx, cfg.Logger); err != nil {
		return err
	}
	if err := os.MkdirAll(cfg.Dir, 0o755); err != nil {
		return err
	}
	c, err := Start(ctx, Config{Dir: cfg.Dir, Repo: cfg.Repo, ClientHosts: 5, RelayHosts: []string{"c5"}, LogLevel: cfg.LogLevel, Logger: cfg.Logger})
	if err != nil {
		return err
	}
	defer c.Close()
	plans := Plans(cfg.Options)
	var summary strings.Builder
	fmt.Fprintf(&summary, "testnet run %s (netem: %v)\n\n", time.Now().UTC().Format(time.RFC3339), c.netem)
	var errs []error
	for _, name := range cfg.Scenarios {
		res, err := c.Execute(ctx, plans[name])
		if cfg.OnResult != nil {
			cfg.OnResult(name, res, err)
		}
		switch {
		case res != nil:
			summary.WriteString(res.Text() + "\n")
			if !res.Report.OK() {
				errs = append(errs, fmt.Errorf("%s: checks failed", name))
			}
		case errors.Is(err, ErrSkip):
			fmt.Fprintf(&summary, "== %s: %v\n\n", name, err)
			err = nil
		default:
			fmt.Fprintf(&summary, "== %s: did not run: %v\n\n", name, err)
		}
		if err != nil {
			errs = append(errs, fmt.Errorf("%s: %w", name, err))
		}
		if ctx.Err() != nil {
			break
		}
	}
	if werr := os.WriteFile(filepath.Join(cfg.Dir, "summary.txt"), []byte(summary.String()), 0o644); werr != nil {
		errs = append(errs, werr)
	}
	return errors.Join(errs...)
}
