//go:build tools

// Package tools pins the versions known to build together here (see
// README.md) for parts that later issues wire in, so `go mod tidy` keeps them.
package tools

import (
	_ "github.com/blevesearch/bleve/v2"
	_ "github.com/quic-go/quic-go"
	_ "github.com/quic-go/webtransport-go"
	_ "github.com/typesense/typesense-go/v3/typesense"
)
