// Package e2e holds parley's end-to-end tests: the whole system in this
// process (systest: one node, or a region of cores with edges), driven
// over real HTTP, WebSocket, QUIC and WebTransport with the Go SDK, raw
// requests and, in browser_test.go, the web app in a headless Chromium.
//
// Tests that test cmd/parley's own code (flags, config files, the banner,
// `parley bench`, the README walkthrough) stay in cmd/parley.
//
// The tests are in package e2e_test; this file only documents them.
// Nothing imports e2e (deps_test.go checks it).
package e2e
