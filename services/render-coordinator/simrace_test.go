//go:build race

package coordinator

// Under the race detector a seed costs about ten times as much: the -race
// run of `make test` checks the handlers for data races on fewer seeds (300
// in memory, 10 on SQLite, 10 compared), and `make sim` (scripts/test-all.sh
// runs it) checks the thousands without it.
func init() { defaultSimSeeds, defaultSQLiteSeeds, defaultAgreeSeeds = 300, 10, 10 }
