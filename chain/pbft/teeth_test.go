package pbft

import (
	"sort"
	"strings"
	"testing"

	"auditnet/chain"
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

// commitToOne is the scenario a new view's check exists for: the leader
// of view 1 is Byzantine and ignores prepared blocks; in view 0 every
// validator prepares the block at height 1, but COMMIT votes reach only
// one honest validator, which commits it. The others change view with
// the block prepared. It returns the scenario and the leader of view 0.
func commitToOne(t *testing.T, skip bool) scenario {
	w := newWorld(t, 4, 2, simParams())
	order := make([]int, 4)
	for i := range order {
		order[i] = i
	}
	sort.Slice(order, func(i, j int) bool { return string(w.nodeIDs[order[i]]) < string(w.nodeIDs[order[j]]) })
	leader0, byz := order[0], order[1] // leaders of views 0 and 1
	sc := quietScenario(1, 4)
	sc.byz[byz] = byzForgeNV
	sc.skipNewViewCheck = skip
	sc.filter = func(s *sim, from, to int, m *Message) bool {
		if from == leader0 {
			// Until the network heals, the others hear only its proposal
			// and PREPARE for height 1: no commit, heartbeat or sync.
			return m == nil || !(m.Proposal != nil || m.Vote != nil && m.Vote.Vote.Phase == chain.PhasePrepare && m.Vote.Vote.Seq == 1)
		}
		return m != nil && m.Vote != nil && m.Vote.Vote.Phase == chain.PhaseCommit && m.Vote.Vote.View == 0 && to != leader0
	}
	return sc
}

// TestCheckerCatchesSkippedNewViewCheck runs the commit-to-one scenario
// with honest validators that accept a new view without re-deriving its
// proposal (a test-only switch): the Byzantine leader's fresh block
// commits at a height where another block committed, and the checker must
// report the fork.
func TestCheckerCatchesSkippedNewViewCheck(t *testing.T) {
	sc := commitToOne(t, true)
	s := newSim(t, sc, newWorld(t, 4, 2, simParams()))
	v := s.run()
	caught := false
	for _, x := range v {
		caught = caught || strings.Contains(x, "agreement")
	}
	if !caught {
		t.Fatalf("a skipped new-view check went unnoticed: %v", v)
	}
	t.Logf("caught: %s", v[0])
}

// TestNewViewCheckHoldsCommitToOne runs the same scenario with the check
// in place: the new view that ignores the prepared block is refused, a
// later view re-proposes it, and every invariant holds.
func TestNewViewCheckHoldsCommitToOne(t *testing.T) {
	sc := commitToOne(t, false)
	s := newSim(t, sc, newWorld(t, 4, 2, simParams()))
	if v := s.run(); len(v) > 0 {
		t.Fatal(v)
	}
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
