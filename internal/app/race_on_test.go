//go:build race

package app

// raceEnabled: under the race detector, TestQueryDifferential runs fewer queries (it is
// ten times slower); `make test` also runs it without the detector, in full.
const raceEnabled = true
