package main

import (
	"bytes"
	"encoding/json"
	"fmt"
	"strings"

	"github.com/parley-chat/parley/cmd/internal/settings"
	"github.com/parley-chat/parley/core"
)

// peersValue is --peers: "n1=10.0.0.1:7000,n2=10.0.0.2:7000" on the
// command line and in the environment, and in a config file that or a
// list of {"id": ..., "raft_addr": ...}.
type peersValue struct{ p *[]core.Peer }

func (v peersValue) String() string {
	if v.p == nil {
		return ""
	}
	parts := make([]string, len(*v.p))
	for i, p := range *v.p {
		parts[i] = p.ID + "=" + p.RaftAddr
	}
	return strings.Join(parts, ",")
}

func (v peersValue) Set(s string) error {
	var out []core.Peer
	for _, part := range settings.SplitList(s) {
		id, addr, ok := strings.Cut(part, "=")
		if !ok {
			return fmt.Errorf("peer %q: want id=host:port", part)
		}
		out = append(out, core.Peer{ID: id, RaftAddr: addr})
	}
	*v.p = out
	return nil
}

func (v peersValue) UnmarshalJSON(b []byte) error {
	var s string
	if json.Unmarshal(b, &s) == nil {
		return v.Set(s)
	}
	var list []struct {
		ID       string `json:"id"`
		RaftAddr string `json:"raft_addr"`
	}
	dec := json.NewDecoder(bytes.NewReader(b))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&list); err != nil {
		return fmt.Errorf(`want "id=host:port,..." or [{"id": ..., "raft_addr": ...}]: %w`, err)
	}
	out := make([]core.Peer, len(list))
	for i, p := range list {
		out[i] = core.Peer{ID: p.ID, RaftAddr: p.RaftAddr}
	}
	*v.p = out
	return nil
}
