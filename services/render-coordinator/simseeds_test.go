package coordinator

import "testing"

// defectSeeds are simulation seeds that broke an invariant on the code before
// the fixes of issue 8 (commit 0dec0ad, or where noted, `-sim.keep-going
// -sim.check=<kind>` over seeds 1-1000; docs/reliability.md has the counts). Each is a replayable
// interleaving that once lost money, leaked a video or stranded a run, so
// each is run again here, with every invariant checked.
var defectSeeds = []struct {
	defect string
	kind   string
	seeds  []int64
}{
	{"1: a stale run's effects overwrite the runs KV", "kv-stale", []int64{39, 45, 61, 81, 88, 103, 127, 134}},
	{"2: a refund for a video the user already has (public before ready)", "edge-unpaid", []int64{1, 2, 3, 4, 5, 6, 8, 9}},
	{"3: cancel applies to whatever run is current", "cancel-wrong-run", []int64{1, 3, 4, 5, 6, 7, 8, 12}},
	{"4: two videos share an object", "shared-object", []int64{1, 13, 14, 20, 25, 26, 27, 32}},
	{"5: an infrastructure outage becomes a refund", "infra-refund", []int64{2, 11, 35, 53, 64, 83, 138, 146}},
	{"6: stalls measured from the wrong clock", "stall-early", []int64{5, 16, 25, 27, 31, 33, 36, 42}},
	{"6: stages without a deadline (found at 20cd223)", "liveness", []int64{145, 464, 512, 535, 642, 666, 678, 971}},
}

// TestSeedsThatFoundTheDefects replays the seeds that found defects 1-6.
func TestSeedsThatFoundTheDefects(t *testing.T) {
	sl := newSimSlot(t)
	for _, d := range defectSeeds {
		t.Run(d.kind, func(t *testing.T) {
			for _, seed := range d.seeds {
				if w := runSim(t, sl, seed, false); len(w.violations) > 0 {
					t.Errorf("defect %s: seed %d (found it as %s) breaks an invariant again; replay with -run TestSimulation -sim.seed=%d -sim.trace\n%s",
						d.defect, seed, d.kind, seed, w.report())
				}
			}
		})
	}
}
