package client

import (
	"context"

	"github.com/parley-chat/parley/syncproto"
	"github.com/parley-chat/parley/syncproto/syncpb"
)

// Send queues a message in the outbox and waits for its ack. The outbox
// sends messages one at a time in the order they were queued (so one
// device's messages keep their order), each with a client_msg_id (req's,
// or a new one), resending it with the same id across reconnects until
// the server answers. A message whose ctx ends before the ack stays in
// the outbox and is still sent; its ack arrives later as a delivery.
// Invalid messages and refusals fail at once and leave the outbox: not a
// member, too large, or CONFLICT, a client_msg_id this user already sent
// in the conversation with other content (a retry never changes the
// content, so resending would not help).
func (c *Client) Send(ctx context.Context, req *syncpb.SendRequest) (*syncpb.SendAck, error) {
	if req.ClientMsgId == "" {
		req.ClientMsgId = NewClientMsgID()
	}
	if err := syncproto.ValidateSend(req); err != nil {
		return nil, err
	}
	it := &outItem{req: req, done: make(chan struct{})}
	c.mu.Lock()
	if c.ctx.Err() != nil {
		err := c.endErr
		c.mu.Unlock()
		if err == nil {
			err = ErrClosed
		}
		return nil, err
	}
	if c.box != nil {
		if err := c.box.add(req); err != nil {
			c.mu.Unlock()
			return nil, err
		}
	}
	c.outbox = append(c.outbox, it)
	c.mu.Unlock()
	c.wake(c.outC)
	select {
	case <-it.done:
		return it.ack, it.err
	case <-c.ctx.Done():
		select {
		case <-it.done: // answered as the Client stopped
			return it.ack, it.err
		default:
		}
		// Stopped (revoked, say): the message stays in the outbox (and
		// its file), unsent.
		return nil, c.errOrClosed()
	case <-ctx.Done():
		c.mu.Lock()
		it.abandoned = true
		c.mu.Unlock()
		select {
		case <-it.done: // answered meanwhile
			return it.ack, it.err
		default:
		}
		return nil, ctx.Err()
	}
}

// Pending is the number of messages in the outbox not yet acknowledged.
func (c *Client) Pending() int {
	c.mu.Lock()
	defer c.mu.Unlock()
	return len(c.outbox)
}

// sender works through the outbox head first.
func (c *Client) sender() {
	defer c.wg.Done()
	for {
		c.mu.Lock()
		var it *outItem
		if len(c.outbox) > 0 {
			it = c.outbox[0]
		}
		c.mu.Unlock()
		if it == nil {
			select {
			case <-c.outC:
				continue
			case <-c.ctx.Done():
				return
			}
		}
		r, err := c.request(c.ctx, &syncpb.Frame{Body: &syncpb.Frame_Send{Send: it.req}})
		if err != nil && c.ctx.Err() != nil {
			return // Close fails what is left
		}
		if err != nil && syncproto.AsError(err).Retryable() {
			// The server is busy or unsure; the same id makes the retry safe.
			c.retryWait(err, 1)
			continue
		}
		if err == nil {
			it.ack = r.GetSendAck()
		}
		it.err = err
		c.mu.Lock()
		c.outbox = c.outbox[1:]
		if c.box != nil {
			pending := make([]*syncpb.SendRequest, len(c.outbox))
			for i, o := range c.outbox {
				pending[i] = o.req
			}
			if berr := c.box.done(it.req.ClientMsgId, pending); berr != nil {
				c.log.Warn("outbox file", "err", berr)
			}
		}
		close(it.done)
		tell := it.abandoned && c.cfg.OnAck != nil
		c.mu.Unlock()
		if tell {
			c.cfg.OnAck(it.req, it.ack, it.err)
		}
	}
}

// NewClientMsgID returns a random client message id.
func NewClientMsgID() string { return syncproto.NewClientMsgID() }
