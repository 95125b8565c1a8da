// Package web is parley's web app: plain ES modules and a vendored Preact,
// with no build step. index.html is the page, parley.js the protocol
// client (WebTransport or WebSocket sessions, resume, gap filling), rest.js
// the /v1 calls and the session tokens, and app/ the UI. The edge serves
// App at / (edge/webapp); cmd/parley hands it over.
package web

import (
	"embed"
	"io/fs"
)

//go:embed index.html parley.js rest.js sw.js app
var files embed.FS

// App is the app's static files, index.html at the root.
func App() fs.FS { return files }
