package httpapi

import (
	"context"
	_ "embed"
	"net/http"
	"strconv"
	"strings"

	"github.com/parley-chat/parley/syncproto"
	"github.com/parley-chat/parley/syncproto/syncpb"
)

//go:embed openapi.json
var openapiDoc []byte

// OpenAPI returns the OpenAPI 3.1 document of the API.
func OpenAPI() []byte { return append([]byte(nil), openapiDoc...) }

type statusResponse struct {
	Status     string `json:"status"`
	Region     string `json:"region,omitempty"`
	ShardCount uint32 `json:"shard_count,omitempty"`
}

// healthz: GET /healthz, and livez: GET /livez. The process is up (a
// liveness probe: it asks nothing of the core).
func (a *API) healthz(c *call) error {
	writeJSON(c.w, http.StatusOK, statusResponse{Status: "ok"})
	return nil
}

// readyz: GET /readyz. Within ReadyTTL, the core answered region_info
// naming a leader for the directory and for every shard, so every request
// can be served; concurrent probes share one check.
func (a *API) readyz(c *call) error {
	a.readyMu.Lock()
	defer a.readyMu.Unlock()
	if a.readyInfo == nil || a.now().Sub(a.readyAt) >= a.readyTTL {
		ctx, cancel := context.WithTimeout(c.ctx, a.readyTO)
		defer cancel()
		info, err := a.core.RegionInfo(ctx)
		if err != nil {
			a.readyInfo = nil
			a.log.Debug("not ready: core unreachable", "err", err)
			return syncproto.Errorf(syncpb.Code_CODE_UNAVAILABLE, "the core is not reachable")
		}
		if missing := leaderless(info); missing != "" {
			a.readyInfo = nil
			a.log.Debug("not ready: groups without a leader", "groups", missing)
			return syncproto.Errorf(syncpb.Code_CODE_UNAVAILABLE, "no leader yet for %s", missing)
		}
		a.readyInfo, a.readyAt = info, a.now()
	}
	writeJSON(c.w, http.StatusOK, statusResponse{Status: "ready", Region: a.readyInfo.Region, ShardCount: a.readyInfo.ShardCount})
	return nil
}

// leaderless names the groups info gives no leader ("" when all have
// one): "directory", "shard 3", ... A core that names no shard leaders at
// all counts as none.
func leaderless(info *syncpb.RegionInfo) string {
	var out []string
	if info.GetDirectoryLeader() == "" {
		out = append(out, "directory")
	}
	for i := range info.GetShardCount() {
		if int(i) >= len(info.ShardLeaders) || info.ShardLeaders[i] == "" {
			out = append(out, "shard "+strconv.Itoa(int(i)))
		}
	}
	return strings.Join(out, ", ")
}

// openapi: GET /v1/openapi.json.
func (a *API) openapi(c *call) error {
	h := c.w.Header()
	h.Set("Content-Type", "application/json; charset=utf-8")
	h.Set("Cache-Control", "public, max-age=300")
	c.w.WriteHeader(http.StatusOK)
	_, _ = c.w.Write(openapiDoc)
	return nil
}
