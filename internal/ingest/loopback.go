package ingest

import (
	"context"
	"sync"

	"github.com/stratametrics/strata/internal/remotewrite"
)

// Loopback is a Pusher that takes every batch through its wire form to Next, and
// Next's answer back through its own: what a transport across a network does, without
// the network. Next sees a request decoded from bytes, never the caller's. Tests use it
// to hold the distributor to what crosses the boundary.
type Loopback struct {
	Next Pusher

	reqs sync.Pool // *remotewrite.Request
}

// Push implements Pusher.
func (l *Loopback) Push(ctx context.Context, workspace string, req *remotewrite.Request, opts Options) (Result, error) {
	batch := AppendBatch(nil, workspace, req, opts)
	far, _ := l.reqs.Get().(*remotewrite.Request)
	if far == nil {
		far = &remotewrite.Request{}
	}
	defer func() {
		far.Reset()
		l.reqs.Put(far)
	}()
	ws, o, err := ParseBatch(far, batch)
	if err != nil {
		return Result{}, err
	}
	res, err := l.Next.Push(ctx, ws, far, o)
	return ParseAnswer(AppendAnswer(nil, res, err))
}
