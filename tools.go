//go:build tools

// Package parley pins the versions known to build together here, so `go mod
// tidy` keeps them.
package parley

import (
	_ "github.com/blevesearch/bleve/v2"
	_ "github.com/dgraph-io/badger/v4"
	_ "github.com/hashicorp/raft"
	_ "github.com/nats-io/nats-server/v2/server"
	_ "github.com/nats-io/nats.go"
	_ "github.com/quic-go/quic-go"
	_ "github.com/quic-go/webtransport-go"
	_ "github.com/typesense/typesense-go/v3/typesense"
	_ "golang.org/x/crypto/argon2"
	_ "golang.org/x/time/rate"
)
