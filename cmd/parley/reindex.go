package main

import (
	"context"
	"fmt"
	"io"
	"time"

	"github.com/parley-chat/parley/core"
)

// runReindex rebuilds a stopped core node's search index from its stored
// messages, with the core's settings (--data, --shards, --search...; a
// serve's core data is <data>/core). Interrupted, it resumes when run
// again.
func runReindex(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	s, proc, err := loadCore(args, stderr)
	if err != nil {
		return err
	}
	if s.Logger, err = proc.logger(stderr); err != nil {
		return err
	}
	if s.NodeID == "" {
		s.NodeID = "reindex" // not a running node: the id names nothing
	}
	start := time.Now()
	err = core.Reindex(ctx, *s, time.Second, func(p core.ReindexProgress) {
		verb := "rebuilding"
		if p.Resumed {
			verb = "resuming"
		}
		fmt.Fprintf(stdout, "parley reindex: %s: %d indexed, %d left (%s)\n", verb, p.Indexed, p.Left, time.Since(start).Round(time.Second))
	})
	if err != nil {
		return err
	}
	fmt.Fprintf(stdout, "parley reindex: done in %s\n", time.Since(start).Round(time.Millisecond))
	return nil
}
