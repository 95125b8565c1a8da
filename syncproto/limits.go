package syncproto

// Limits shared by edges and cores.
const (
	// MaxBodySize is the largest message body, in bytes.
	MaxBodySize = 64 << 10
	// MaxAttachments is the most attachments one message may carry.
	MaxAttachments = 32
	// MaxHistoryLimit is the largest page of history.
	MaxHistoryLimit = 500
	// DefaultHistoryLimit is the page size when none is asked for.
	DefaultHistoryLimit = 50
	// MaxTitleLen bounds conversation titles, in bytes.
	MaxTitleLen = 256
	// MaxNameLen bounds usernames, workspace names and display names.
	MaxNameLen = 64
)
