package directory

import "time"

// The limits the state machine checks commands by, when it prepares them
// and again when it applies them. They are the directory's own, not
// syncproto's wire limits: an entry in the log applies by these whenever
// it is replayed, so changing a wire limit never changes how an old entry
// applies.
const (
	// maxNameLen bounds usernames, workspace, display and device names
	// and platforms, in bytes.
	maxNameLen = 64
	// maxRefreshGrace bounds RotateRefreshRequest.grace_ms.
	maxRefreshGrace = 5 * time.Minute
)
