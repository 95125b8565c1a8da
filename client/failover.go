package client

import (
	"context"
	"errors"
	"sync"
)

// Failover dials edges in turn: it keeps using the edge that worked last,
// and when a dial fails it tries the next, so that a device whose edge
// died or is draining lands on another one. The Client's backoff still
// applies between rounds.
func Failover(dialers ...Dialer) Dialer {
	var mu sync.Mutex
	cur := 0
	return func(ctx context.Context) (Transport, error) {
		if len(dialers) == 0 {
			return nil, errors.New("client: Failover has no dialers")
		}
		mu.Lock()
		start := cur
		mu.Unlock()
		var errs []error
		for i := range dialers {
			k := (start + i) % len(dialers)
			t, err := dialers[k](ctx)
			if err == nil {
				mu.Lock()
				cur = k
				mu.Unlock()
				return &failoverTransport{Transport: t, moved: func() {
					mu.Lock()
					if cur == k {
						cur = (k + 1) % len(dialers)
					}
					mu.Unlock()
				}}, nil
			}
			errs = append(errs, err)
			if ctx.Err() != nil {
				break
			}
		}
		mu.Lock()
		cur = (start + 1) % len(dialers) // next round starts elsewhere
		mu.Unlock()
		return nil, errors.Join(errs...)
	}
}

// failoverTransport moves the next dial to another edge when the
// connection ends with an error (the edge died, refused the hello, or
// sent GoAway). The client finds what else the connection can do (request
// streams, datagrams, Migrate, LocalAddr) on the transport it wraps
// (unwrap).
type failoverTransport struct {
	Transport
	moved func()
}

var (
	_ unwrapper = (*failoverTransport)(nil)
	_ aborter   = (*failoverTransport)(nil)
)

func (f *failoverTransport) Close(err error) error {
	if err != nil {
		f.moved()
	}
	return f.Transport.Close(err)
}

// abort is Close without the wrapped transport's goodbye, if it has one.
func (f *failoverTransport) abort(err error) error {
	if err != nil {
		f.moved()
	}
	if a, ok := f.Transport.(aborter); ok {
		return a.abort(err)
	}
	return f.Transport.Close(err)
}

func (f *failoverTransport) unwrap() Transport { return f.Transport }
