package scenario_test

import (
	"context"
	"errors"
	"log/slog"
	"os"
	"os/signal"
	"path/filepath"
	"syscall"
	"testing"
	"time"

	"github.com/parley-chat/parley/testnet/netns"
	"github.com/parley-chat/parley/testnet/scenario"
)

// TestSmoke runs scenarios 1, 2, 3 and a 2-minute soak (4) against real
// processes in network namespaces, failing on any lost, duplicated or
// reordered message. It needs root (as CI has); PARLEY_TESTNET=0 or -short
// skips it. The run directory (reports, node and device logs) is kept
// under testnet/runs/.
func TestSmoke(t *testing.T) {
	if testing.Short() || os.Getenv("PARLEY_TESTNET") == "0" {
		t.Skip("testnet smoke skipped (-short or PARLEY_TESTNET=0)")
	}
	if err := netns.Check(); err != nil {
		t.Skipf("testnet smoke needs root and iproute2: %v", err)
	}
	// An interrupt ends the run through ctx, so the cleanup still runs.
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	ctx, cancel := context.WithTimeout(ctx, 12*time.Minute)
	defer cancel()
	dir, err := filepath.Abs(filepath.Join("..", "runs", "smoke-"+time.Now().UTC().Format("20060102-150405")))
	if err != nil {
		t.Fatal(err)
	}
	log := slog.New(slog.NewTextHandler(testWriter{t}, &slog.HandlerOptions{Level: slog.LevelInfo}))
	err = scenario.RunSuite(ctx, scenario.SuiteConfig{
		Dir: dir, Scenarios: []string{"1-partition", "2-edge-loss", "3-network-change", "4-mobile-soak"},
		Options: scenario.Options{Soak: 2 * time.Minute}, Logger: log,
		OnResult: func(name string, res *scenario.Result, err error) {
			switch {
			case res != nil:
				t.Logf("\n%s", res.Text())
				if !res.Report.OK() {
					t.Errorf("%s: lost %d, duplicated %d, reordered %d, gaps %d, mismatched %d, reads converged %v, linearizable %v",
						name, res.Report.Lost, res.Report.Duplicated, res.Report.Reordered, res.Report.Gaps,
						res.Report.Mismatched, res.Report.ReadsConverged, res.Report.Linearizable)
				}
			case errors.Is(err, scenario.ErrSkip):
				t.Logf("%s: %v", name, err)
			}
		}})
	t.Logf("run directory: %s", dir)
	if err != nil {
		t.Fatal(err)
	}
}

type testWriter struct{ t *testing.T }

func (w testWriter) Write(b []byte) (int, error) {
	w.t.Log(string(b[:len(b)-1]))
	return len(b), nil
}
