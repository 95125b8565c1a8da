package syncproto

// requestRows is the table of requests: one row per CoreRequest op and per
// client Frame request body. Adding a request type is a row here and its
// handler where its Route leads (the core's directory or shard group, or
// the core node for RouteNone; the edge session for a Frame without an
// Op). TestRequestTable checks that every op and every client request
// frame has a row.
var requestRows = []Request{
	// The region, answered by any core node.
	{Op: "region_info", Route: RouteNone, Read: true, Result: "region_info"},
	{Op: "list_conversations", Route: RouteNone, Read: true, Result: "conversations"},
	{Op: "sync", Route: RouteNone, Read: true, Result: "sync", validate: check(ValidateSync),
		Frame: "sync_request", FrameReply: "sync_response"},
	{Op: "get_presence", Route: RouteNone, Read: true, Result: "presence"},
	{Op: "search", Route: RouteNone, Read: true, Result: "search", validate: check(ValidateSearch),
		Frame: "search_request", FrameReply: "search_response"},

	// The directory group.
	{Op: "register_user", Route: RouteDirectory, Result: "user"},
	{Op: "get_credentials", Route: RouteDirectory, Read: true, Result: "credentials"},
	{Op: "lookup_users", Route: RouteDirectory, Read: true, Result: "users"},
	{Op: "register_device", Route: RouteDirectory, NotIdempotent: true, Result: "device"},
	{Op: "list_devices", Route: RouteDirectory, Read: true, Result: "devices"},
	{Op: "get_device", Route: RouteDirectory, Read: true, Result: "device"},
	{Op: "revoke_device", Route: RouteDirectory},
	{Op: "get_workspace", Route: RouteDirectory, Read: true, Result: "workspace"},
	{Op: "update_workspace", Route: RouteDirectory, Result: "workspace"},
	{Op: "start_token_family", Route: RouteDirectory, Result: "device"},
	{Op: "rotate_refresh", Route: RouteDirectory, Result: "refresh_rotation"},
	{Op: "change_password", Route: RouteDirectory},
	{Op: "list_revocations", Route: RouteDirectory, Read: true, Result: "revocations"},
	{Op: "remove_user", Route: RouteDirectory, Result: "user"},
	{Op: "set_push_target", Route: RouteDirectory, validate: check(ValidateSetPushTarget)},

	// The shard group of the request's conversation.
	{Op: "create_conversation", Route: RouteConversation, Result: "conversation"},
	{Op: "get_conversation", Route: RouteConversation, Read: true, Result: "conversation"},
	{Op: "change_members", Route: RouteConversation, Result: "conversation"},
	{Op: "send", Route: RouteConversation, Result: "send_ack", validate: check(ValidateSend),
		Frame: "send", FrameReply: "send_ack"},
	{Op: "history", Route: RouteConversation, Read: true, Result: "history", validate: check(ValidateHistory),
		Frame: "history_request", FrameReply: "history_response"},
	{Op: "receipt", Route: RouteConversation, Result: "receipt_ack", validate: check(ValidateReceipt),
		Frame: "receipt", FrameReply: "receipt_ack"},
	{Op: "get_receipts", Route: RouteConversation, Read: true, Result: "receipts"},
	{Op: "typing", Route: RouteConversation, NoReply: true, validate: check(ValidateTyping), Frame: "typing"},
	{Op: "set_notify_level", Route: RouteConversation, validate: check(ValidateSetNotifyLevel)},

	// Frames the edge answers itself.
	{Frame: "ping", FrameReply: "pong", IDOptional: true},
	{Frame: "reauth", FrameReply: "reauth_ack", validate: check(ValidateReauth)},
	{Frame: "presence_subscribe", FrameReply: "sync_response", validate: check(ValidatePresenceSubscribe)},
}
