package main

import (
	"flag"

	"github.com/parley-chat/parley/edge/auth"
	"github.com/parley-chat/parley/edge/httpapi"
)

// accessFlags adds the edge's flags for log-in throttling and CORS.
func accessFlags(fs *flag.FlagSet, login *auth.ThrottleConfig, cors *httpapi.CORSConfig) {
	fs.IntVar(&login.FreeFailures, "login-free-failures", 0, "failed log-ins in a row an account may have, from any IP, before its next attempt waits (default 3)")
	fs.DurationVar(&login.BaseDelay, "login-delay", 0, "an account's wait after its first failed log-in beyond the free ones, doubling with each further one (default 1s)")
	fs.DurationVar(&login.MaxDelay, "login-delay-max", 0, "the longest wait before an account's next log-in (default 1m; negative: no per-account throttle)")
	fs.Func("cors-origins", "origins whose pages may call /v1 from a browser: https://app.example.com,... or * for any (default none: same-origin only)", func(s string) error {
		cors.AllowedOrigins = splitList(s)
		return cors.Validate()
	})
}
