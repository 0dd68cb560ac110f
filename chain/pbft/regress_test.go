package pbft

import "testing"

// Every bug a simulated seed found is a named regression test here: the
// seed that found it, replayed.
var regressions = []struct {
	name string
	seed uint64
	// what went wrong before the fix.
	what string
}{
	{"ForgedViewChangeWithoutBlock", 23,
		"a Byzantine validator's own view change claimed a prepared block it did not carry; as the next leader it dereferenced the missing block"},
	{"MempoolExpiryDuringCompaction", 27,
		"expiring transactions while the mempool compacted its order walked a slice being rewritten"},
	{"RequestTimerRestartsInNewView", 38,
		"old transactions made every new view time out at once (the censorship timer ran from the transaction's arrival, not from the view's start), and a restarted node's watermark stayed at 0 so it dropped every vote above it"},
	{"OwnVotesNotEvidence", 27,
		"the checker took evidence sent by a Byzantine node's honest core for an invented transaction"},
	{"RestoreSignsNothingWhileReplaying", 286,
		"a restarted leader proposed a new block while replaying its stored blocks, before reading back the vote it had signed for that slot"},
	{"NoRunawayViews", 206,
		"an honest validator whose timers ran shorter went views ahead of the others on its own, so no view gathered a quorum again"},
	{"TwinsWithSkewedClock", 157,
		"the same runaway views, with Twins and a skewed clock"},
	{"CensorshipByExpiry", 880,
		"a Twin leading with half the network's transactions left a forwarded one out until it expired, faster than the request timer: now blocks going by without it count as well"},
	{"CensorshipByExpiryCrashes", 879,
		"the same, with crashes and a skewed clock"},
	{"SimulatorPartitionAfterHeal", 279,
		"a bug in the simulator: a partition drawn just before the fault phase ended outlived the heal and blocked a lagging node's sync for good"},
	{"SimulatorPartitionAfterHealEquivocatingLeader", 351,
		"the same simulator bug, with an equivocating leader"},
}

func TestRegressions(t *testing.T) {
	for _, r := range regressions {
		t.Run(r.name, func(t *testing.T) {
			for _, report := range runSeeds(t, r.seed, 1, func(uint64, *scenario) {}) {
				t.Errorf("%s\nwas: %s", report, r.what)
			}
		})
	}
}

// Seeds the sweep over validator-set changes found (TestSimEpochSeeds,
// -epochseeds N): the seed's scenario with a validator-set change forced
// and, when honest is set, every validator honest.
var epochRegressions = []struct {
	name   string
	seed   uint64
	honest bool
	what   string
}{
	{"ViewChangeAcrossEpochBoundary", 23, true,
		"three of six validators signed their view change in epoch 0, then committed the block that ended it; the new set dropped those as stale, three view changes of epoch 1 fell short of the quorum of 4, and every node waited in the view change for ever"},
	{"ViewChangeAcrossEpochBoundaryEightValidators", 92, false,
		"the same with 7 validators and then 8: five view changes of epoch 1, quorum 6, and three validators' view changes of epoch 0 dropped"},
}

func TestEpochRegressions(t *testing.T) {
	for _, r := range epochRegressions {
		t.Run(r.name, func(t *testing.T) {
			adjust := func(seed uint64, sc *scenario) {
				epochScenario(seed, sc)
				if r.honest {
					sc.byz = map[int]byzKind{}
				}
			}
			for _, report := range runSeeds(t, r.seed, 1, adjust) {
				t.Errorf("%s\nwas: %s", report, r.what)
			}
		})
	}
}
