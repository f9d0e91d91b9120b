//go:build race

package remotewrite

// raceEnabled: the race detector makes sync.Pool drop items at random, so
// allocation counts through a pool are meaningless under it.
const raceEnabled = true
