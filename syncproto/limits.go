package syncproto

import "time"

// Limits shared by edges and cores.
const (
	// MaxBodySize is the largest message body, in bytes.
	MaxBodySize = 64 << 10
	// MaxAttachments is the most attachments one message may carry.
	MaxAttachments = 32
	// MaxSearchQueryLen bounds SearchRequest.query, in bytes.
	MaxSearchQueryLen = 1024
	// MaxSearchCursorLen bounds SearchRequest.cursor, in bytes.
	MaxSearchCursorLen = 1024
	// DefaultSearchLimit and MaxSearchLimit bound a page of search hits.
	DefaultSearchLimit = 20
	MaxSearchLimit     = 100
	// MaxHistoryLimit is the largest page of history.
	MaxHistoryLimit = 500
	// DefaultHistoryLimit is the page size when none is asked for.
	DefaultHistoryLimit = 50
	// MaxTitleLen bounds conversation titles, in bytes.
	MaxTitleLen = 256
	// MaxNameLen bounds usernames, workspace names and display names.
	MaxNameLen = 64
	// MaxContentTypeLen bounds the content type of a message or an
	// attachment, in bytes of printable ASCII.
	MaxContentTypeLen = 255
	// MaxAttachmentNameLen bounds an attachment's file name, in bytes.
	MaxAttachmentNameLen = 255
	// MaxAttachmentMetaSize bounds an attachment's opaque metadata, in bytes.
	MaxAttachmentMetaSize = 4 << 10
	// MaxAccessTokenLen bounds Hello.access_token, in bytes.
	MaxAccessTokenLen = 4 << 10
	// MaxClientNameLen bounds Hello.client_name, in bytes.
	MaxClientNameLen = 128
	// MaxWatermarks is the most watermarks one SyncPosition may carry.
	MaxWatermarks = 10000
	// MaxSyncTokenLen bounds the opaque sync token, in bytes.
	MaxSyncTokenLen = 4 << 10
	// DefaultSyncLimit and MaxSyncLimit bound the messages a sync returns
	// per conversation (SyncRequest.per_conversation_limit).
	DefaultSyncLimit = 50
	MaxSyncLimit     = 500
	// MaxSyncBytes bounds the messages of one SyncResponse, in encoded
	// bytes, so that it fits in a frame of DefaultMaxFrameSize.
	MaxSyncBytes = 640 << 10
	// MaxRefreshGrace bounds RotateRefreshRequest.grace_ms: how long after
	// a rotation the refresh token it replaced may still be presented.
	MaxRefreshGrace = 5 * time.Minute
)

// SyncLimit is the per-conversation message limit a sync request asks for:
// DefaultSyncLimit for 0, at most MaxSyncLimit.
func SyncLimit(asked uint32) int {
	switch {
	case asked == 0:
		return DefaultSyncLimit
	case asked > MaxSyncLimit:
		return MaxSyncLimit
	}
	return int(asked)
}
