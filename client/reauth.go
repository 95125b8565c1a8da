package client

import (
	"context"
	"time"

	"github.com/parley-chat/parley/syncproto/syncpb"
)

// reauth keeps the session's access token fresh: some time before it
// expires (a quarter of what is left, at least half of it up to 5 s) it
// gets a new token (Config.Refresh, else Config.Token) and hands it to
// the edge in a Reauth. It stops when the link ends, when the edge does
// not say when the token expires (an older edge never cuts sessions for
// expiry), or when no fresher token is to be had (the session then ends
// at expiry, and the next connection starts with a fresh token).
func (c *Client) reauth(l *link) {
	defer c.wg.Done()
	exp, now := l.welcome.GetTokenExpiresUnixMs(), l.welcome.GetServerTimeUnixMs()
	if exp == 0 || now == 0 {
		return
	}
	token := l.token
	for attempt := 0; ; {
		at := time.Now()
		left := time.Duration(exp-now) * time.Millisecond // on the edge's clock, at `at`
		wait := left - max(left/4, min(left/2, 5*time.Second))
		if attempt > 0 {
			wait = min(reauthRetry, left/4)
		}
		if !c.pause(l, wait) {
			return
		}
		ctx, cancel := context.WithTimeout(c.ctx, max(left-time.Since(at), reauthRetry))
		tok, err := c.freshToken(ctx)
		var ack *syncpb.ReauthAck
		if err == nil && tok == token {
			cancel()
			c.log.Debug("no fresher access token to give the edge; the session ends when it expires")
			return
		}
		if err == nil {
			var r *syncpb.Frame
			r, err = l.request(ctx, &syncpb.Frame{Body: &syncpb.Frame_Reauth{Reauth: &syncpb.Reauth{AccessToken: tok}}})
			ack = r.GetReauthAck()
		}
		cancel()
		if err != nil || ack == nil {
			select {
			case <-l.done:
				return
			default:
			}
			if revoked(err) {
				c.log.Info("access revoked", "err", err)
				l.fail(err)
				return
			}
			c.log.Debug("reauth failed; retrying", "err", err)
			if time.Since(at) >= left {
				return // expired meanwhile: the edge ends the session
			}
			now += time.Since(at).Milliseconds()
			attempt++
			continue
		}
		token, attempt = tok, 0
		exp, now = ack.GetTokenExpiresUnixMs(), ack.GetServerTimeUnixMs()
	}
}

// freshToken is a new access token: Config.Refresh's, else Config.Token's.
func (c *Client) freshToken(ctx context.Context) (string, error) {
	if c.cfg.Refresh != nil {
		return c.cfg.Refresh(ctx)
	}
	return c.cfg.Token(ctx)
}

// pause waits d; false when the link or the Client ended first.
func (c *Client) pause(l *link, d time.Duration) bool {
	t := time.NewTimer(max(d, 0))
	defer t.Stop()
	select {
	case <-t.C:
		return true
	case <-l.done:
		return false
	case <-c.ctx.Done():
		return false
	}
}
