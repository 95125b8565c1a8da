package systest

import (
	"testing"

	"github.com/nats-io/nats.go"

	"github.com/parley-chat/parley/core/coretest"
	"github.com/parley-chat/parley/edge/auth"
)

// RegionOptions configure a Region.
type RegionOptions struct {
	// Core configures the core nodes (coretest.Options).
	Core coretest.Options
}

// Region is a region of in-process core nodes (coretest.Region: its
// Stop, Kill, Restart, Partition and Heal are the cores' faults) with
// edges a test starts on it, which share one token key.
type Region struct {
	*coretest.Region
	keys []auth.Key
}

// StartRegion starts n core nodes and waits until they serve; see
// coretest.New.
func StartRegion(t testing.TB, n int, opts RegionOptions) *Region {
	t.Helper()
	k, err := auth.GenerateKey("test")
	if err != nil {
		t.Fatal(err)
	}
	return &Region{Region: coretest.New(t, n, opts.Core), keys: []auth.Key{k}}
}

// Keys are the token keys every edge of the region shares.
func (r *Region) Keys() []auth.Key { return r.keys }

// StartEdge starts an edge on node i's NATS server; the harness holds its
// connection (reconnecting for ever), so Edge.Kill can cut it. With
// opts.NATSURL set the edge dials that instead and i is ignored.
func (r *Region) StartEdge(t testing.TB, i int, opts EdgeOptions) *Edge {
	t.Helper()
	url := r.NATSURLs()[i]
	return startEdge(t, r.keys, opts, func() (natsConn, error) { return nats.Connect(url, nats.MaxReconnects(-1)) })
}
