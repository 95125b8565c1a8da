package shard

// The limits the state machine checks commands by, when it prepares them
// and again when it applies them. They are the state machine's own, not
// syncproto's wire limits: an entry in the log applies by these whenever
// it is replayed, so changing a wire limit (which edges and the node's
// dispatch check requests against, see syncproto.Requests) never changes
// how an old entry applies. Changing one of these changes the log's
// meaning, and needs new rules (see currentRules).
const (
	maxBodySize          = 64 << 10
	maxAttachments       = 32
	maxContentTypeLen    = 255
	maxAttachmentNameLen = 255
	maxAttachmentMeta    = 4 << 10
	maxTitleLen          = 256
	maxMembers           = 10000
)
