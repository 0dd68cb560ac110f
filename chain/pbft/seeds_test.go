package pbft

import (
	"flag"
	"fmt"
	"runtime"
	"runtime/debug"
	"sort"
	"strings"
	"sync"
	"testing"
	"time"
)

var (
	seedsFlag = flag.Int("seeds", 0, "simulated seeds TestSimSeeds runs (default 40, 6 under -race)")
	seedFlag  = flag.Uint64("seed", 0, "run only this seed (TestSimSeeds)")
)

// TestSimSeeds runs the simulator over many seeds (-seeds N, or one with
// -seed S) and fails with the seed and its scenario on any violated
// invariant; the same seed replays the same run.
func TestSimSeeds(t *testing.T) {
	first, count := uint64(1), uint64(*seedsFlag)
	if count == 0 {
		count = 40
		if raceEnabled {
			count = 6
		}
	}
	if *seedFlag != 0 {
		first, count = *seedFlag, 1
	}
	start := time.Now()
	failures := runSeeds(t, first, count, func(uint64, *scenario) {})
	for i, f := range failures {
		if i == 5 {
			t.Fatalf("and %d more failing seeds", len(failures)-5)
		}
		t.Error(f)
	}
	el := time.Since(start)
	t.Logf("%d seeds in %v (%.1f seeds/s)", count, el.Round(time.Millisecond), float64(count)/el.Seconds())
}

// runSeeds runs seeds first..first+count−1 on every CPU, each with the
// scenario randomScenario draws for it (changed by adjust), and returns a
// report for each failing seed, in seed order.
func runSeeds(tb testing.TB, first, count uint64, adjust func(uint64, *scenario)) []string {
	worlds := map[int]*world{}
	for _, n := range []int{4, 5, 7, 10} {
		worlds[n] = newWorld(tb, n, 2, simParams())
	}
	seeds := make(chan uint64)
	type result struct {
		seed   uint64
		report string
	}
	results := make(chan result)
	var wg sync.WaitGroup
	for range runtime.GOMAXPROCS(0) {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for seed := range seeds {
				sc := randomScenario(seed)
				adjust(seed, &sc)
				v, s := runOne(tb, sc, worlds[sc.n])
				r := result{seed: seed}
				if len(v) > 0 {
					r.report = fmt.Sprintf("%s\n  %s\n  replay: go test ./chain/pbft -run %s -seed %d -v", sc, strings.Join(v, "\n  "), tb.Name(), seed)
				} else if testing.Verbose() && count == 1 {
					tb.Logf("%s: height %d, %d messages, %d events, max log %d", sc, s.maxHeight(), s.msgs, s.steps, s.check.maxLog)
				}
				results <- r
			}
		}()
	}
	go func() {
		for seed := first; seed < first+count; seed++ {
			seeds <- seed
		}
		close(seeds)
		wg.Wait()
		close(results)
	}()
	var failed []result
	for r := range results {
		if r.report != "" {
			failed = append(failed, r)
		}
	}
	sort.Slice(failed, func(i, j int) bool { return failed[i].seed < failed[j].seed })
	out := make([]string, len(failed))
	for i, r := range failed {
		out[i] = r.report
	}
	return out
}

// runOne runs one scenario; a panic is reported as a violation, with
// its stack, so that the seed that caused it is printed.
func runOne(tb testing.TB, sc scenario, w *world) (v []string, s *sim) {
	defer func() {
		if p := recover(); p != nil {
			v = []string{fmt.Sprintf("panic: %v\n%s", p, debug.Stack())}
		}
	}()
	s = newSim(tb, sc, w)
	return s.run(), s
}

func (s *sim) maxHeight() uint64 {
	h := uint64(0)
	for _, n := range s.nodes {
		if n.core != nil {
			h = max(h, n.core.Height())
		}
	}
	return h
}

// TestSeedsCoverTheFaultMix checks that the CI sweep's seeds draw every
// validator count, every Byzantine behaviour and every network fault, and
// logs how often (the mix docs/benchmarks.md reports).
func TestSeedsCoverTheFaultMix(t *testing.T) {
	const seeds = 1000
	ns, kinds := map[int]int{}, map[byzKind]int{}
	var byzSeeds, drops, dups, replays, partitions, crashes, skews, valChanges int
	for seed := uint64(1); seed <= seeds; seed++ {
		sc := randomScenario(seed)
		ns[sc.n]++
		if len(sc.byz) > 0 {
			byzSeeds++
		}
		for _, k := range sc.byz {
			kinds[k]++
		}
		count := func(b bool, n *int) {
			if b {
				*n++
			}
		}
		count(sc.dropP > 0, &drops)
		count(sc.dupP > 0, &dups)
		count(sc.replayP > 0, &replays)
		count(sc.partitions, &partitions)
		count(sc.crashes, &crashes)
		count(len(sc.skew) > 0, &skews)
		count(sc.valChange, &valChanges)
	}
	for _, n := range []int{4, 5, 7, 10} {
		if ns[n] == 0 {
			t.Errorf("no seed runs n = %d", n)
		}
	}
	for k := byzTwins; k < numByzKinds; k++ {
		if kinds[k] == 0 {
			t.Errorf("no seed runs a %s validator", k)
		}
	}
	t.Logf("of %d seeds: n=4/5/7/10: %d/%d/%d/%d; with Byzantine validators: %d (%v); drops %d, duplicates %d, replays %d, partitions %d, crashes %d, clock skew %d, validator-set change %d",
		seeds, ns[4], ns[5], ns[7], ns[10], byzSeeds, kinds, drops, dups, replays, partitions, crashes, skews, valChanges)
}
