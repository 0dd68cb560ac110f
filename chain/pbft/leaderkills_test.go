package pbft

import (
	"fmt"
	"testing"
	"time"
)

// TestRepeatedLeaderKills is the view-change benchmark's sequence in the
// simulator: the leader of the view is killed, the three others change
// view and commit, the old leader restarts from its disk, and the next
// leader is killed, twelve times. Each view change must be done within
// the time one failed leader costs (the timeout that suspects it and one
// view-change timeout, with slack for a proposal in flight), with no
// doubled timeout carried over from an earlier round. In one variant the
// old leader rejoins the view before the next kill; in the other it was
// down for three seconds and the next leader is killed the moment it
// restarts, so the view change needs its vote before it caught up.
func TestRepeatedLeaderKills(t *testing.T) {
	for _, seed := range rejoinSeeds() {
		t.Run(fmt.Sprint("seed ", seed, ", rejoined"), func(t *testing.T) { repeatedLeaderKills(t, seed, 0, true) })
		t.Run(fmt.Sprint("seed ", seed, ", killed at the restart"), func(t *testing.T) { repeatedLeaderKills(t, seed, 3*time.Second, false) })
	}
}

func repeatedLeaderKills(t *testing.T, seed uint64, down time.Duration, rejoin bool) {
	sc := quietScenario(seed, 4)
	sc.faultPhase, sc.healPhase = time.Hour, time.Hour
	s := newSim(t, sc, newWorld(t, sc.n, 2, simParams()))
	vals := s.nodes[:sc.n]
	s.runUntil(time.Second)
	cfg := s.config(vals[0])
	bound := time.Duration(3*cfg.ViewChangeTimeoutMs) * time.Millisecond
	var worst time.Duration
	ref := vals[0] // a validator that stayed up in the last round
	for k := 1; k <= 12; k++ {
		v := ref.core.view
		if ref.core.changing {
			t.Fatalf("kill %d: before it, %s", k, views(vals...))
		}
		lead := leaderNode(t, vals, ref.core, v)
		s.handle(&event{kind: evCrash, to: lead.idx})
		others := without(vals, lead)
		h0 := others[0].core.height
		took := s.await(30*time.Second, "the others to change view and commit in it", func() (bool, string) {
			c := others[0].core
			for _, n := range others {
				k := n.core
				if k.view <= v || k.changing || k.view != c.view || k.height <= h0+1 || k.lastCert.View != k.view {
					return false, views(others...)
				}
			}
			return true, ""
		})
		worst, ref = max(worst, took), others[0]
		if took > bound {
			t.Errorf("kill %d: the view change from view %d took %v, over %v", k, v, took, bound)
		}
		s.runUntil(s.now + down)
		s.handle(&event{kind: evRestart, to: lead.idx})
		if rejoin {
			s.await(10*time.Second, "the restarted leader to rejoin", func() (bool, string) {
				c, ref := lead.core, others[0].core
				return c.view == ref.view && !c.changing && c.height >= ref.height, views(vals...)
			})
		}
	}
	t.Logf("worst view change %v (bound %v)", worst, bound)
}

// TestMissedNewViewIsWaitedFor: the old leader restarts in an earlier
// view and first reads the others' old view changes for their view (a
// backlog a peer's queue kept while it was down), so it joins that view
// change, with a quorum of view changes for it in hand; the NEW-VIEW that
// would put it in their view is lost for longer than its view-change
// timeout, doubled. The others' heartbeats say they started that view:
// its leader did not fail, so the node must not move on alone to the next
// view, where it would vote in no lower one and stay out of theirs. Once
// a NEW-VIEW gets through, it is in their view.
func TestMissedNewViewIsWaitedFor(t *testing.T) {
	for _, seed := range rejoinSeeds() {
		t.Run(fmt.Sprint("seed ", seed), func(t *testing.T) { missedNewViewIsWaitedFor(t, seed) })
	}
}

func missedNewViewIsWaitedFor(t *testing.T, seed uint64) {
	s, vals, old, w := leaderKilledScenario(t, seed)
	others := without(vals, old)
	lost := true
	s.sc.filter = func(s *sim, from, to int, m *Message) bool {
		return lost && to == old.idx && m != nil && m.NewView != nil
	}
	s.handle(&event{kind: evRestart, to: old.idx})
	for _, n := range others {
		if vc := n.core.myVC; vc != nil && vc.ViewChange.View == w {
			old.core.Step(n.id, &Message{ViewChange: vc})
		}
	}
	s.drain(old)
	if c := old.core; c.view != w || !c.changing || c.askedAtLeast(w) < c.quorum() {
		t.Fatalf("the old view changes did not start view %d's change, with a quorum, on the restarted node: %s", w, views(old))
	}
	timeout := time.Duration(s.config(old).ViewChangeTimeoutMs) * time.Millisecond
	s.runUntil(s.now + 3*timeout)
	inView(t, w, others...)
	if c := old.core; c.view != w {
		t.Fatalf("it moved on alone: %s", views(vals...))
	}
	lost = false
	s.await(2*time.Second, "the restarted node to start the others' view", func() (bool, string) {
		inView(t, w, others...)
		c := old.core
		return c.view == w && !c.changing, views(vals...)
	})
}
