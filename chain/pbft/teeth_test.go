package pbft

import (
	"strings"
	"testing"
)

// teethSeeds is how many of the CI sweep's seeds the checker's teeth are
// shown on.
const teethSeeds = 120

// TestCheckerCatchesBrokenQuorum runs honest nodes whose quorum is q − 1
// (a test-only switch) and requires the simulator to report a violated
// invariant within the CI seeds: the checker has teeth.
func TestCheckerCatchesBrokenQuorum(t *testing.T) {
	if testing.Short() || raceEnabled {
		t.Skip("runs many seeds; CI runs it in the simulator step, without -race")
	}
	reports := runSeeds(t, 1, teethSeeds, func(_ uint64, sc *scenario) { sc.brokenQuorum = true })
	wantCaught(t, "a quorum of q − 1", reports)
}

// TestCheckerCatchesSkippedNewViewCheck runs honest nodes that accept a
// new view without re-deriving its proposal from its view changes, with a
// Byzantine leader that ignores the prepared block, and requires the
// simulator to report a violated invariant within the CI seeds.
func TestCheckerCatchesSkippedNewViewCheck(t *testing.T) {
	if testing.Short() || raceEnabled {
		t.Skip("runs many seeds; CI runs it in the simulator step, without -race")
	}
	reports := runSeeds(t, 1, teethSeeds, func(seed uint64, sc *scenario) {
		sc.skipNewViewCheck = true
		if len(sc.byz) == 0 {
			sc.byz[int(seed)%sc.n] = byzForgeNV
		}
		for i := range sc.byz {
			sc.byz[i] = byzForgeNV
		}
	})
	wantCaught(t, "a skipped new-view check", reports)
}

func wantCaught(t *testing.T, what string, reports []string) {
	t.Helper()
	if len(reports) == 0 {
		t.Fatalf("the simulator did not catch %s in %d seeds", what, teethSeeds)
	}
	kinds := map[string]int{}
	for _, r := range reports {
		for _, inv := range []string{"agreement", "certificate", "validity", "exactly once", "state root", "liveness", "bounded logs", "honest equivocation"} {
			if strings.Contains(r, inv) {
				kinds[inv]++
			}
		}
	}
	t.Logf("%s caught by %d of %d seeds; invariants violated: %v; first:\n%s", what, len(reports), teethSeeds, kinds, reports[0])
}
