// Package search is the engine layer of message search: the [Engine]
// interface that the indexer writes to and the request path reads from,
// the query language and its parser ([Parse]), and what every engine
// shares (cursors, snippets).
//
// Two engines implement it: core/search/bleve, embedded, an index in a
// directory (the default), and core/search/typesense, a Typesense
// cluster (at scale). core/search/searchtest is the one conformance
// suite both run.
//
// # Privacy
//
// A [Request] names the conversations its caller may read, taken from
// the core's membership at query time. An engine applies that set inside
// the query, so a hit outside it is never scored, counted or paged over:
// a conversation not in the set and a conversation that does not exist
// give the same empty answer. The set may be large (a user in 10,000
// conversations); each engine says how it keeps such a query cheap.
//
// # Query language
//
//	word            every word must match (English stemming: "runs" finds "running")
//	"exact phrase"  the words next to each other, in order
//	-word -"a b"    excluded; -hel* too
//	hel*            words starting with "hel" (at least 2 characters before the *)
//	from:<user>     sent by that user id (several: any of them)
//	after:<t>       sent at or after t; before:<t> sent before t; t is
//	                2006-01-02 (UTC midnight), RFC 3339, or Unix milliseconds
//	has:attachment  carries an attachment
//
// Words of 5 letters or more tolerate one typo ("mesage" finds
// "message"). Chinese, Japanese and Korean text is found by any one- or
// two-character piece of it (海 and 上海 in 我家在上海东边). A bad query is
// a [*QueryError] whose code is invalid_argument; Parse never panics.
//
// # Cursors
//
// Newest-first pages are a keyset on (ts, conversation, seq): the cursor
// names the last hit, and the next page holds what sorts strictly after
// it. Messages that arrive meanwhile are newer, so they never shift a
// page; one indexed late with an older ts shows up on a later page and
// duplicates nothing. Relevance pages carry a horizon, the engine's index
// position when the first page was made, and an offset: later pages see
// only what was indexed by then, so arrivals do not shift them either (a
// message deleted between pages shifts the pages after it by one). A
// cursor is opaque to clients: base64url, versioned.
package search
