// Command testnet runs the fault scenarios against real parley processes
// in network namespaces (needs root) and writes a run directory with the
// reports and every node's and device's log.
//
//	go run ./testnet/cmd/testnet -scenarios all
//	go run ./testnet/cmd/testnet -scenarios 4 -soak 10m
package main

import (
	"context"
	"flag"
	"fmt"
	"log/slog"
	"os"
	"os/signal"
	"path/filepath"
	"syscall"
	"time"

	"github.com/parley-chat/parley/testnet/scenario"
)

func main() {
	which := flag.String("scenarios", "all", "all, or a comma list of numbers (1,2,3) or names")
	soak := flag.Duration("soak", 2*time.Minute, "scenario 4's length")
	dir := flag.String("out", "", "run directory (default testnet/runs/<time>)")
	level := flag.String("log-level", "info", "the cores' and edges' log level")
	flag.Parse()
	names, err := scenario.Select(*which)
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(2)
	}
	if *dir == "" {
		*dir = filepath.Join("testnet", "runs", time.Now().UTC().Format("20060102-150405"))
	}
	abs, _ := filepath.Abs(*dir)
	// Interrupts cancel the run; the deferred cleanup removes the network.
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	log := slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelInfo}))
	err = scenario.RunSuite(ctx, scenario.SuiteConfig{Dir: abs, Scenarios: names, Options: scenario.Options{Soak: *soak}, LogLevel: *level, Logger: log,
		OnResult: func(name string, res *scenario.Result, err error) {
			if res != nil {
				fmt.Println(res.Text())
			} else {
				fmt.Printf("== %s: %v\n\n", name, err)
			}
		}})
	fmt.Println("run directory:", abs)
	if err != nil {
		fmt.Fprintln(os.Stderr, "testnet:", err)
		os.Exit(1)
	}
}
