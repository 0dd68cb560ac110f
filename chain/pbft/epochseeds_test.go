package pbft

import (
	"flag"
	"strings"
	"testing"
	"time"
)

var epochSeedsFlag = flag.Int("epochseeds", 0, "simulated seeds TestSimEpochSeeds runs with a validator-set change in every one (default 10, 3 under -race)")

// epochScenario is seed's scenario with a validator-set change forced:
// randomScenario draws one in a quarter of the seeds, and an epoch
// boundary is where view changes, certificates and sets of two epochs
// meet.
func epochScenario(seed uint64, sc *scenario) { sc.valChange = true }

// TestSimEpochSeeds runs the simulator over seeds (-epochseeds N, or one
// with -seed S) whose scenarios all change the validator set mid-run, and
// fails with the seed and its scenario on any violated invariant.
func TestSimEpochSeeds(t *testing.T) {
	first, count := uint64(1), uint64(*epochSeedsFlag)
	if count == 0 {
		count = 10
		if raceEnabled {
			count = 3
		}
	}
	if *seedFlag != 0 {
		first, count = *seedFlag, 1
	}
	start := time.Now()
	failures := runSeeds(t, first, count, epochScenario)
	el := time.Since(start)
	t.Logf("%d seeds in %v (%.1f seeds/s), %d failed", count, el.Round(time.Millisecond), float64(count)/el.Seconds(), len(failures))
	for i, f := range failures {
		if i == 5 {
			var seeds []string
			for _, f := range failures[5:] {
				seeds = append(seeds, strings.Fields(f)[0])
			}
			t.Fatalf("and %d more failing seeds: %s", len(failures)-5, strings.Join(seeds, " "))
		}
		t.Error(f)
	}
}
