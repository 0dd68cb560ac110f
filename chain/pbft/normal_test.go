package pbft

import (
	"errors"
	"testing"
)

// fourCores starts the cores of a 4-validator world at now and returns
// them with the index of view 0's leader.
func fourCores(t *testing.T, now int64) ([]*Replica, int) {
	t.Helper()
	w := newWorld(t, 4, 0, simParams())
	var cores []*Replica
	leader := -1
	for i := range 4 {
		c, err := New(Config{Genesis: w.genesis, Signer: w.nodeKeys[i], ViewChangeTimeoutMs: 500}, now)
		if err != nil {
			t.Fatal(err)
		}
		cores = append(cores, c)
		if string(c.id) == string(c.Leader()) {
			leader = i
		}
	}
	return cores, leader
}

// proposeAt has view 0's leader, its clock at now, propose a block whose
// time is stamp(max(prev + 1, now)), and returns the proposal.
func proposeAt(t *testing.T, leader *Replica, stamp func(t, last int64) int64) *Proposal {
	t.Helper()
	leader.hooks.stamp = stamp
	b, err := leader.build(leader.view)
	if err != nil {
		t.Fatal(err)
	}
	leader.propose(b)
	for _, out := range leader.Ready().Messages {
		if out.Msg.Proposal != nil {
			return out.Msg.Proposal
		}
	}
	t.Fatal("the leader sent no proposal")
	return nil
}

// TestFreshProposalTimeRule checks the time rule on a fresh proposal: a
// backup prepares a block whose time is within Δ of its clock, either way,
// and refuses one more than Δ ahead or behind; a block that is not fresh
// (re-proposed by a new view, or synced) keeps its old time and passes.
func TestFreshProposalTimeRule(t *testing.T) {
	const now = simGenesisTime + 600_000
	delta := simParams().MaxClockSkewMs
	for _, tc := range []struct {
		name   string
		offset int64 // block time − the backup's clock
		ok     bool
	}{
		{"honest leader, same clock", 0, true},
		{"Δ behind", -delta, true},
		{"more than Δ behind", -delta - 1, false},
		{"minutes behind", -5 * 60_000, false},
		{"Δ ahead", delta, true},
		{"more than Δ ahead", delta + 1, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			cores, l := fourCores(t, now)
			var stamp func(t, last int64) int64
			if tc.offset != 0 {
				stamp = func(int64, int64) int64 { return now + tc.offset }
			}
			p := proposeAt(t, cores[l], stamp)
			backup := cores[(l+1)%4]
			err := backup.Step(cores[l].id, &Message{Proposal: p})
			switch {
			case tc.ok && err != nil:
				t.Fatalf("refused: %v", err)
			case tc.ok && backup.slot == nil:
				t.Fatal("accepted but not prepared")
			case !tc.ok && !errors.Is(err, ErrInvalidBlock):
				t.Fatalf("want ErrInvalidBlock, got %v", err)
			case !tc.ok && backup.slot != nil:
				t.Fatal("refused block in the slot")
			}
			if tc.ok {
				return
			}
			// The same block, not fresh (re-proposed in a new view byte for
			// byte, or synced with its certificate), keeps its time.
			bcid, err := blockCID(&p.Block)
			if err != nil {
				t.Fatal(err)
			}
			if _, err := backup.validate(&p.Block, bcid, false); err != nil {
				t.Fatalf("not fresh, still refused: %v", err)
			}
		})
	}
}

// TestOwnProposalSatisfiesTimeRule has a leader build blocks after
// previous blocks stamped long ago, just now, and by a clock ahead of its
// own (within Δ): its block time, max(prev + 1, now), passes its own rule
// every time.
func TestOwnProposalSatisfiesTimeRule(t *testing.T) {
	const now = simGenesisTime + 600_000
	delta := simParams().MaxClockSkewMs
	cores, l := fourCores(t, now)
	leader := cores[l]
	for _, prev := range []int64{simGenesisTime, now - delta - 1, now - 1, now, now + delta - 1} {
		leader.lastTime = prev
		b, err := leader.build(leader.view)
		if err != nil {
			t.Fatal(err)
		}
		if want := max(prev+1, now); b.Header.Time != want {
			t.Fatalf("after %d: block time %d, want %d", prev, b.Header.Time, want)
		}
		if err := leader.checkFreshTime(b.Header.Time); err != nil {
			t.Fatalf("after %d: the leader's own block fails its rule: %v", prev, err)
		}
	}
}

// TestTickAfterPauseKeepsLeader ticks a backup after a pause (SIGSTOP, a
// starved process) longer than the view-change timeout, and after one
// shorter than it but long enough that the leader, last heard before the
// pause, went unheard for longer than the timeout: the backup does not
// suspect the leader it could not hear meanwhile. (After the second, it
// used to ask alone for a view change, which the others, hearing the
// leader, did not join.) If the leader stays silent after the pause, it is
// suspected one timeout later.
func TestTickAfterPauseKeepsLeader(t *testing.T) {
	const now = simGenesisTime + 60_000
	for _, pause := range []struct {
		name string
		ms   func(timeout int64) int64
	}{
		{"twenty timeouts", func(timeout int64) int64 { return 20 * timeout }},
		{"four fifths of a timeout", func(timeout int64) int64 { return timeout * 4 / 5 }},
	} {
		t.Run(pause.name, func(t *testing.T) {
			cores, l := fourCores(t, now)
			backup := cores[(l+1)%4]
			timeout := backup.cfg.ViewChangeTimeoutMs
			heard := backup.leaderSeen
			backup.Tick(now + timeout/2)
			resume := now + timeout/2 + pause.ms(timeout)
			if resume-heard <= timeout {
				t.Fatalf("the leader was heard %d ms before the resume, within the timeout %d", resume-heard, timeout)
			}
			backup.Tick(resume)
			if v, changing := backup.View(); changing || v != 0 {
				t.Fatalf("after the pause: view %d, changing %v; want view 0, not changing", v, changing)
			}
			for at := resume + 50; at <= resume+timeout; at += 50 {
				backup.Tick(at)
				if _, changing := backup.View(); changing {
					t.Fatalf("view change %d ms after resuming, before the timeout %d", at-resume, timeout)
				}
			}
			backup.Tick(resume + timeout + 50)
			if v, changing := backup.View(); !changing || v != 1 {
				t.Fatalf("silent leader one timeout after resuming: view %d, changing %v; want a change to view 1", v, changing)
			}
		})
	}
}
