package pbft

import (
	"container/heap"
	"fmt"
	"strings"
	"testing"
	"time"
)

// runUntil plays a simulation's events up to the simulated time until,
// and fails the test on any violated invariant.
func (s *sim) runUntil(until time.Duration) {
	s.tb.Helper()
	for s.q.Len() > 0 && s.q[0].at <= until {
		e := heap.Pop(&s.q).(*event)
		s.now = e.at
		s.handle(e)
		s.steps++
		if len(s.check.violations) > 0 {
			s.tb.Fatalf("%s: %v", s.sc, s.check.violations)
		}
	}
	s.now = until
}

// await plays a simulation until cond holds, for at most within of
// simulated time, and returns the simulated time it took; cond's note
// says what it saw, in the failure.
func (s *sim) await(within time.Duration, what string, cond func() (bool, string)) time.Duration {
	s.tb.Helper()
	start := s.now
	for {
		ok, note := cond()
		if ok {
			return s.now - start
		}
		if s.now-start >= within {
			s.tb.Fatalf("%s: not within %v of simulated time: %s: %s", s.sc, within, what, note)
		}
		s.runUntil(s.now + simTick)
	}
}

// views describes the view, view change and height of nodes, for
// failures.
func views(nodes ...*simNode) string {
	var out []string
	for _, n := range nodes {
		if n.core == nil {
			out = append(out, fmt.Sprintf("node %d down", n.idx))
			continue
		}
		out = append(out, fmt.Sprintf("node %d view %d changing %v height %d", n.idx, n.core.view, n.core.changing, n.core.height))
	}
	return strings.Join(out, "; ")
}

func without(nodes []*simNode, skip ...*simNode) []*simNode {
	var out []*simNode
	for _, n := range nodes {
		drop := false
		for _, x := range skip {
			drop = drop || n == x
		}
		if !drop {
			out = append(out, n)
		}
	}
	return out
}

// leaderNode returns the validator that leads view v.
func leaderNode(t *testing.T, vals []*simNode, ref *Replica, v uint64) *simNode {
	t.Helper()
	id := ref.leaderOf(v)
	for _, n := range vals {
		if string(n.id) == string(id) {
			return n
		}
	}
	t.Fatalf("no node leads view %d", v)
	return nil
}

// leaderKilledScenario runs four validators without network faults until
// the chain grows, kills the leader of view 0, and waits until the three
// others changed view and committed a block in the new view. It returns
// the simulation, the validators, the killed leader and the others' view.
// The test schedules every fault itself: the simulator's heal and probe
// never come.
func leaderKilledScenario(t *testing.T, seed uint64) (s *sim, vals []*simNode, old *simNode, w uint64) {
	t.Helper()
	sc := quietScenario(seed, 4)
	sc.faultPhase, sc.healPhase = time.Hour, time.Hour
	s = newSim(t, sc, newWorld(t, sc.n, 2, simParams()))
	vals = s.nodes[:sc.n]
	s.runUntil(time.Second)
	old = leaderNode(t, vals, vals[0].core, 0)
	if old.core.view != 0 || old.core.height == 0 {
		t.Fatalf("before the crash: %s", views(vals...))
	}
	s.handle(&event{kind: evCrash, to: old.idx})
	others := without(vals, old)
	h0 := others[0].core.height
	s.await(10*time.Second, "the others to change view and commit in it", func() (bool, string) {
		c := others[0].core
		for _, n := range others {
			k := n.core
			if k.view == 0 || k.changing || k.view != c.view || k.height <= h0+1 || k.lastCert.View != k.view {
				return false, views(others...)
			}
		}
		return true, ""
	})
	return s, vals, old, others[0].core.view
}

// votedIn reports whether a node signed a vote in view w for a height of
// at least from (its log holds every vote it signed since its last stable
// checkpoint).
func votedIn(n *simNode, w, from uint64) bool {
	for _, r := range n.wal {
		if r.Vote != nil && r.Vote.Vote.View == w && r.Vote.Vote.Seq >= from {
			return true
		}
	}
	return false
}

// inView fails unless every node is in view w, not changing.
func inView(t *testing.T, w uint64, nodes ...*simNode) {
	t.Helper()
	for _, n := range nodes {
		if n.core.view != w || n.core.changing {
			t.Fatalf("the others changed view: %s", views(nodes...))
		}
	}
}

// TestRestartedLeaderRejoinsView kills the leader of view 0 of four
// validators; the three others change view and commit. The old leader
// restarts from its disk, in view 0, and never saw the NEW-VIEW: a
// validator of the new view must send it, and the old leader start that
// view and vote in it, within a bounded time and without the others
// changing view again. Then another validator is killed, so that nothing
// commits without the old leader's vote, and blocks still commit in the
// same view. Before the fix, the old leader asked alone for view 1 (its
// proposal timed out) and waited in that view change, not voting, until
// the others changed view again.
//
// Two variants follow. In one, the NEW-VIEW reaches the old leader only
// once it fetched the blocks the others committed: it starts the view
// past the view's first block. In the other, the old leader asks at once
// for the others' view and its view changes are lost: only its heartbeats,
// which say it is changing to that view, call for the NEW-VIEW.
func TestRestartedLeaderRejoinsView(t *testing.T) {
	for _, seed := range rejoinSeeds() {
		t.Run(fmt.Sprint("seed ", seed), func(t *testing.T) { restartedLeaderRejoinsView(t, seed, rejoinPlain) })
	}
	for _, seed := range rejoinSeeds()[:3] {
		t.Run(fmt.Sprint("seed ", seed, ", NEW-VIEW after sync"), func(t *testing.T) { restartedLeaderRejoinsView(t, seed, rejoinAfterSync) })
		t.Run(fmt.Sprint("seed ", seed, ", view changes lost"), func(t *testing.T) { restartedLeaderRejoinsView(t, seed, rejoinChanging) })
	}
}

// How the old leader of TestRestartedLeaderRejoinsView comes back.
const (
	rejoinPlain     = iota
	rejoinAfterSync // NEW-VIEWs reach it only once it fetched the others' blocks
	rejoinChanging  // it asks for the others' view; its view changes are lost
)

// rejoinSeeds are the seeds the rejoin tests run: 1 to 30, or under -race
// a few, among them those where a view change timer that ran from a lone
// node's own view change, not from the quorum's, sent that node on alone
// to the next view (TestViewChangeAloneIsKept).
func rejoinSeeds() []uint64 {
	if raceEnabled {
		return []uint64{3, 8, 14}
	}
	var seeds []uint64
	for seed := uint64(1); seed <= 30; seed++ {
		seeds = append(seeds, seed)
	}
	return seeds
}

func restartedLeaderRejoinsView(t *testing.T, seed uint64, how int) {
	s, vals, old, w := leaderKilledScenario(t, seed)
	others := without(vals, old)
	switch how {
	case rejoinAfterSync:
		synced := others[0].core.height
		s.sc.filter = func(s *sim, from, to int, m *Message) bool {
			c := s.nodes[to].core
			return to == old.idx && m != nil && m.NewView != nil && c != nil && c.height < synced
		}
	case rejoinChanging:
		s.sc.filter = func(s *sim, from, to int, m *Message) bool {
			return from == old.idx && m != nil && m.ViewChange != nil
		}
	}
	s.handle(&event{kind: evRestart, to: old.idx})
	if old.core.view >= w {
		t.Fatalf("restored in view %d, the others are in %d", old.core.view, w)
	}
	if how == rejoinChanging {
		old.core.startViewChange(w, "the test asks for the others' view")
		s.drain(old)
	}
	took := s.await(4*time.Duration(s.config(old).ViewChangeTimeoutMs)*time.Millisecond, "the restarted leader to join the others' view", func() (bool, string) {
		inView(t, w, others...)
		c := old.core
		return c.view == w && !c.changing, views(vals...)
	})
	// It may have joined while a proposal it missed was in flight; it votes
	// on the next one.
	next := others[0].core.height + 2
	voted := s.await(2*time.Second, "the restarted leader to vote in the others' view", func() (bool, string) {
		inView(t, w, others...)
		return votedIn(old, w, next), views(vals...)
	})
	t.Logf("the restarted leader joined view %d %v after its restart, and voted in it %v later", w, took, voted)

	lead := leaderNode(t, vals, old.core, w)
	victim := without(others, lead)[0]
	s.handle(&event{kind: evCrash, to: victim.idx})
	live := without(vals, victim)
	h := lead.core.height
	s.await(3*time.Second, "a block committed with the restarted leader's vote", func() (bool, string) {
		inView(t, w, live...)
		for _, cb := range lead.blocks {
			if cb.Block.Header.Height <= h+1 {
				continue
			}
			for _, v := range cb.Cert.Votes {
				if string(v.Signer) == string(old.id) && cb.Cert.View == w {
					return true, ""
				}
			}
		}
		return false, views(live...)
	})
	s.handle(&event{kind: evRestart, to: victim.idx})
	s.runUntil(s.now + 2*time.Second)
	inView(t, w, vals...)
}

// TestViewChangeAloneIsKept is the other side of the rejoin: a restarted
// validator that asked for a view above the others' before it heard from
// them (its timer fired with a stale quorum of view changes) has promised
// not to vote in any lower view, so it must not start theirs from the
// NEW-VIEW they send. It waits, signing nothing in their view, until the
// others come to its view (here: their leader dies), and its view change
// counts there. Its timer, running since it asked alone, must not send it
// on to the next view the moment the others' view changes arrive (seeds
// 8, 14 and 27 did before the timer restarted at the quorum).
func TestViewChangeAloneIsKept(t *testing.T) {
	for _, seed := range rejoinSeeds() {
		t.Run(fmt.Sprint("seed ", seed), func(t *testing.T) { viewChangeAloneIsKept(t, seed) })
	}
}

func viewChangeAloneIsKept(t *testing.T, seed uint64) {
	s, vals, old, w := leaderKilledScenario(t, seed)
	others := without(vals, old)
	s.handle(&event{kind: evRestart, to: old.idx})
	old.core.startViewChange(w+1, "the test asks alone")
	s.drain(old)
	s.runUntil(s.now + 2*time.Second)
	inView(t, w, others...)
	if c := old.core; c.view != w+1 || !c.changing {
		t.Fatalf("the validator that asked for view %d alone: %s", w+1, views(old))
	}
	for v := uint64(1); v <= w; v++ {
		if votedIn(old, v, 0) {
			t.Fatalf("it signed a vote in view %d after asking for view %d", v, w+1)
		}
	}

	// The others' leader dies: the two left and the one waiting make view
	// w+1's quorum.
	lead := leaderNode(t, vals, old.core, w)
	s.handle(&event{kind: evCrash, to: lead.idx})
	live := without(vals, lead)
	s.await(10*time.Second, "the others to join the waiting validator's view", func() (bool, string) {
		for _, n := range live {
			if n.core.view != w+1 || n.core.changing {
				return false, views(live...)
			}
		}
		return true, ""
	})
	h := live[0].core.height
	s.await(3*time.Second, "a block committed in the waiting validator's view", func() (bool, string) {
		return old.core.height > h && old.core.lastCert.View == w+1, views(live...)
	})
}
