// Package periodic is the loop of the components' Run methods: call a function at a
// fixed interval until the context ends.
package periodic

import (
	"context"
	"time"
)

// Every calls fn every interval until ctx is done; the first call is one interval after
// the start. With an interval of zero or less it only waits for ctx.
func Every(ctx context.Context, interval time.Duration, fn func(context.Context)) {
	if interval <= 0 {
		<-ctx.Done()
		return
	}
	t := time.NewTicker(interval)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
			if ctx.Err() != nil { // both ready: select picks either
				return
			}
			fn(ctx)
		}
	}
}
