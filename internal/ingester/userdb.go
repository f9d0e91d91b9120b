package ingester

import (
	"sync"
	"sync/atomic"
	"time"

	"github.com/prometheus/prometheus/tsdb"
)

// userDB is one workspace's TSDB with the state the write path keeps beside it.
type userDB struct {
	id string
	db *tsdb.DB
	// active counts active series and caches series refs by raw label bytes.
	active *activeSeries
	meta   metadataStore

	// opening is closed when the open in progress finishes; nil once open.
	// users counts get callers that have not released. Both are guarded by Ingester.mu.
	opening chan struct{}
	users   int
	mu      *sync.Mutex // Ingester.mu

	lastUse atomic.Int64 // unix nanoseconds of the last write or read

	oooWindow int64 // the out-of-order window (ms) the TSDB has; guarded by Ingester.replayMu
}

// acquire counts a user, so closing waits for in-flight requests. Call with Ingester.mu held.
func (u *userDB) acquire() { u.users++ }

// release ends a use started by Ingester.get.
func (u *userDB) release() {
	u.mu.Lock()
	u.users--
	u.mu.Unlock()
}

func (u *userDB) touch(now time.Time) { u.lastUse.Store(now.UnixNano()) }

func (u *userDB) lastUsed() time.Time { return time.Unix(0, u.lastUse.Load()) }
