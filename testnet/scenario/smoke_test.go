package scenario_test

import (
	"context"
	"errors"
	"fmt"
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

// TestSmoke runs scenarios 1, 2, 3, a 2-minute soak (4) and a shorter
// presence run (5: one round of connects and disconnects, one cut of an
// edge) against real processes in network namespaces, failing on any
// lost, duplicated or reordered message and on any watcher that does not
// converge on a presence change or ends showing a wrong state. It needs root (as CI has); PARLEY_TESTNET=0 or -short
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
	ctx, cancel := context.WithTimeout(ctx, 15*time.Minute)
	defer cancel()
	dir, err := filepath.Abs(filepath.Join("..", "runs", "smoke-"+time.Now().UTC().Format("20060102-150405")))
	if err != nil {
		t.Fatal(err)
	}
	log := slog.New(slog.NewTextHandler(testWriter{t}, &slog.HandlerOptions{Level: slog.LevelInfo}))
	err = scenario.RunSuite(ctx, scenario.SuiteConfig{
		Dir: dir, Scenarios: []string{"1-partition", "2-edge-loss", "3-network-change", "4-mobile-soak", "5-presence"},
		Options: scenario.Options{Soak: 2 * time.Minute, PresenceRounds: 1, PresenceCuts: 1}, Logger: log,
		OnResult: func(name string, res *scenario.Result, err error) {
			switch {
			case res != nil:
				t.Logf("\n%s", res.Text())
				if !res.Report.OK() {
					presence := "not checked"
					if p := res.Report.Presence; p != nil {
						presence = fmt.Sprintf("unconverged %v, wrong at the end %v", p.Unconverged, p.WrongFinal)
					}
					t.Errorf("%s: lost %d, duplicated %d, reordered %d, gaps %d, mismatched %d, reads converged %v, linearizable %v, presence: %s",
						name, res.Report.Lost, res.Report.Duplicated, res.Report.Reordered, res.Report.Gaps,
						res.Report.Mismatched, res.Report.ReadsConverged, res.Report.Linearizable, presence)
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
