package main

import (
	"flag"
	"time"
)

// presenceFlags adds the edge's presence timing flags.
func presenceFlags(fs *flag.FlagSet, interval, lease *time.Duration) {
	fs.DurationVar(interval, "presence-interval", 0, "how often the edge renews its presence lease with the cores (default 500ms)")
	fs.DurationVar(lease, "presence-lease", 0, "how long the cores keep a silent edge's users online (default 1.5s; at least twice -presence-interval)")
}
