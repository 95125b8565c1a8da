package session

import (
	"context"
	"errors"
	"io"

	"github.com/parley-chat/parley/syncproto"
	"github.com/parley-chat/parley/syncproto/syncpb"
)

// RequestStreams is an optional Conn capability of transports with cheap
// streams (raw QUIC, WebTransport): a device may put a request on a
// stream of its own, so that a packet lost on one request does not hold
// up the others or the live pushes (no head-of-line blocking). Such a
// stream carries one request frame and its one response frame.
type RequestStreams interface {
	// AcceptRequest waits for the device's next request stream.
	AcceptRequest(ctx context.Context) (Conn, error)
}

// acceptRequests serves request streams until the session ends.
func (s *session) acceptRequests(ctx context.Context, rs RequestStreams) {
	defer s.wg.Done()
	for {
		c, err := rs.AcceptRequest(ctx)
		if err != nil {
			return // the connection or the session ended
		}
		select {
		case s.inflight <- struct{}{}:
		case <-s.done:
			_ = c.Close(nil)
			return
		}
		s.wg.Add(1)
		go func() {
			defer s.wg.Done()
			defer func() { <-s.inflight }()
			s.serveRequestStream(ctx, c)
		}()
	}
}

// serveRequestStream answers the one request on c and closes it. Errors
// of the request go back on c; a bad stream is closed, not the session.
func (s *session) serveRequestStream(ctx context.Context, c Conn) {
	rctx, cancel := context.WithTimeout(ctx, s.cfg.RequestStreamTimeout)
	f, err := c.ReadFrame(rctx)
	cancel()
	if err != nil {
		if errors.Is(err, context.DeadlineExceeded) {
			err = syncproto.Errorf(syncpb.Code_CODE_TIMEOUT, "no request within %v", s.cfg.RequestStreamTimeout)
		}
		if !errors.Is(err, io.EOF) {
			wctx, cancel := context.WithTimeout(ctx, s.cfg.LastFrameTimeout)
			_ = c.WriteFrame(wctx, errorFrame(0, err))
			cancel()
		}
		_ = c.Close(err)
		return
	}
	var resp *syncpb.Frame
	r, body := syncproto.Requests.FrameOf(f)
	switch {
	case !s.limiter.Allow():
		e := syncproto.Errorf(syncpb.Code_CODE_RATE_LIMITED, "too many requests")
		e.RetryAfter = s.cfg.RateLimitRetryAfter
		resp = errorFrame(f.Id, e)
	case r == nil || r.NoReply:
		resp = errorFrame(f.Id, syncproto.Errorf(syncpb.Code_CODE_MALFORMED, "a request stream carries one request"))
	default:
		resp = s.serve(ctx, f.Id, r, body)
	}
	wctx, cancel := context.WithTimeout(ctx, s.cfg.RequestStreamTimeout)
	_ = c.WriteFrame(wctx, resp)
	cancel()
	_ = c.Close(nil)
}
