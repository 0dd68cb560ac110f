package pbft

import (
	"container/heap"
	"reflect"
	"testing"
	"time"

	"auditnet/chain"
)

// snapshotOf is the snapshot a store gives of the blocks a node stored:
// the last one's header, certificate and state, and the validator set of
// the epoch before the one in force, found by reading the set in every
// block's state.
func snapshotOf(tb testing.TB, g *chain.Genesis, blocks []Committed) Snapshot {
	tb.Helper()
	if len(blocks) == 0 {
		return Snapshot{}
	}
	validators := func(st chain.State) chain.ValidatorSet {
		m, err := chain.NewMachine(g, st)
		if err != nil {
			tb.Fatal(err)
		}
		vals, err := m.Validators()
		if err != nil {
			tb.Fatal(err)
		}
		return vals
	}
	var prev chain.ValidatorSet
	cur := validators(chain.NewMemState())
	for _, cb := range blocks {
		if vals := validators(cb.State); vals.Epoch != cur.Epoch {
			prev, cur = cur, vals
		}
	}
	last := blocks[len(blocks)-1]
	return Snapshot{Header: last.Block.Header, Cert: last.Cert, State: last.State, PrevValidators: prev}
}

// sameCore fails unless a core restored from a snapshot resumes as the
// one restored by re-executing every block: the committed chain, the
// epoch, the view and what the node had signed.
func sameCore(tb testing.TB, want, got *Replica) {
	tb.Helper()
	fields := []struct {
		name      string
		want, got any
	}{
		{"height", want.height, got.height},
		{"last block", want.last, got.last},
		{"last time", want.lastTime, got.lastTime},
		{"last certificate", want.lastCert, got.lastCert},
		{"state root", want.StateRoot(), got.StateRoot()},
		{"params", want.params, got.params},
		{"validators", want.vals, got.vals},
		{"validator order", want.valIDs, got.valIDs},
		{"previous validators", want.prevVals, got.prevVals},
		{"stable checkpoint", want.stable, got.stable},
		{"view", want.view, got.view},
		{"changing", want.changing, got.changing},
		{"attempts", want.attempts, got.attempts},
		{"view change", want.myVC, got.myVC},
		{"signed", want.signed, got.signed},
		{"prepared", want.prepared, got.prepared},
		{"slot", want.slot, got.slot},
		{"votes", want.votes, got.votes},
		{"mempool per sender", want.mempool.perSender, got.mempool.perSender},
		{"deadline pending", want.machine.DeadlinePending(), got.machine.DeadlinePending()},
		{"ready", want.out, got.out},
	}
	for _, f := range fields {
		if !reflect.DeepEqual(f.want, f.got) {
			tb.Fatalf("restored from a snapshot at height %d, %s is %+v, re-executing every block gives %+v", want.height, f.name, f.got, f.want)
		}
	}
	if len(want.execs) != len(got.execs) {
		tb.Fatalf("%d executed blocks, re-executing every block gives %d", len(got.execs), len(want.execs))
	}
	for bcid := range want.execs {
		if got.execs[bcid] == nil {
			tb.Fatalf("block %s not executed", bcid)
		}
	}
}

// TestRestoreSnapshotMatchesReplay restores a node of a run with an
// epoch change at many heights, on both sides of the boundary and at it,
// from a snapshot and by re-executing the blocks, and requires the same
// core.
func TestRestoreSnapshotMatchesReplay(t *testing.T) {
	sc := quietScenario(11, 4)
	sc.valChange = true
	s := runScenario(t, sc)
	n := s.nodes[1]
	boundary := 0
	for i, cb := range n.blocks {
		if i > 0 && cb.Block.Header.Epoch > n.blocks[i-1].Block.Header.Epoch {
			boundary = i // the height of the epoch's last block
			break
		}
	}
	if boundary == 0 {
		t.Fatal("no epoch change in the run")
	}
	heights := []int{1, boundary - 1, boundary, boundary + 1, boundary + 2, len(n.blocks)}
	for h := 5; h < len(n.blocks); h += 9 {
		heights = append(heights, h)
	}
	for _, h := range heights {
		var wal []Record
		if h == len(n.blocks) {
			wal = n.wal // the node's own records, about its last height
		}
		want, err := Restore(s.config(n), s.clock(n), n.blocks[:h], wal)
		if err != nil {
			t.Fatal(err)
		}
		got, err := RestoreSnapshot(s.config(n), s.clock(n), snapshotOf(t, s.w.genesis, n.blocks[:h]), wal)
		if err != nil {
			t.Fatalf("height %d: %v", h, err)
		}
		sameCore(t, want, got)
		// The epoch's last block puts the next set in force.
		if wantEpoch := uint64(min(h/boundary, 1)); got.vals.Epoch != wantEpoch || (wantEpoch == 1) != (got.prevVals.Members != nil) {
			t.Fatalf("height %d (epoch boundary %d): epoch %d, previous set %v", h, boundary, got.vals.Epoch, got.prevVals)
		}
	}
	// Height 0 is the genesis.
	want, err := New(s.config(n), s.clock(n))
	if err != nil {
		t.Fatal(err)
	}
	got, err := RestoreSnapshot(s.config(n), s.clock(n), Snapshot{}, nil)
	if err != nil {
		t.Fatal(err)
	}
	sameCore(t, want, got)
}

// TestRestoreSnapshotRejoins restarts honest nodes from snapshots of
// what they stored, before an epoch change, at its last block and after
// it (the new validator too), in runs of seeds with faults, checks each
// against a restart that re-executes every block, and requires every
// invariant of the run to hold: the restarted nodes keep committing with
// the others.
func TestRestoreSnapshotRejoins(t *testing.T) {
	seeds := []uint64{1, 7, 3, 15}
	if raceEnabled {
		seeds = seeds[:2]
	}
	for _, seed := range seeds {
		sc := randomScenario(seed)
		sc.valChange = true
		sc.byz = map[int]byzKind{}
		w := newWorld(t, sc.n, 2, simParams())
		s := newSim(t, sc, w)
		restarts := map[string]uint64{}
		restart := func(what string, n *simNode) {
			snap := snapshotOf(t, w.genesis, n.blocks)
			want, err := Restore(s.config(n), s.clock(n), n.blocks, n.wal)
			if err != nil {
				t.Fatalf("%s: %v", sc, err)
			}
			got, err := RestoreSnapshot(s.config(n), s.clock(n), snap, n.wal)
			if err != nil {
				t.Fatalf("%s: node %d: %v", sc, n.idx, err)
			}
			sameCore(t, want, got)
			got.hooks = s.hooksFor(n)
			got.hooks.sigCache = s.sigCache
			n.core, n.lastHeight = got, got.Height()
			restarts[what] = got.Height()
			s.drain(n)
		}
		cp := w.genesis.Params.CheckpointInterval
		end := sc.faultPhase + sc.healPhase
		for s.q.Len() > 0 && len(s.check.violations) == 0 {
			e := heap.Pop(&s.q).(*event)
			if e.at > end {
				break
			}
			s.now = e.at
			s.handle(e)
			s.steps++
			for i, n := range s.nodes {
				if n.crashed || n.core == nil || len(n.blocks) == 0 {
					continue
				}
				c := n.core
				lastEpoch := n.blocks[len(n.blocks)-1].Block.Header.Epoch
				switch {
				case i == 1 && restarts["epoch 0"] == 0 && c.height >= 3 && c.vals.Epoch == 0:
					restart("epoch 0", n)
				case i != 1 && restarts["boundary"] == 0 && c.vals.Epoch == 1 && lastEpoch == 0 && c.height%cp == 0:
					restart("boundary", n)
				case i == 0 && restarts["epoch 1"] == 0 && c.vals.Epoch == 1 && lastEpoch == 1:
					restart("epoch 1", n)
				case i == sc.n && restarts["new validator"] == 0 && c.vals.Epoch == 1 && lastEpoch == 1 && c.isValidator():
					restart("new validator", n)
				}
			}
		}
		s.check.finish()
		if v := s.check.violations; len(v) > 0 {
			t.Fatalf("%s: %v", sc, v)
		}
		for _, what := range []string{"epoch 0", "boundary", "epoch 1", "new validator"} {
			if restarts[what] == 0 {
				t.Fatalf("%s: no restart %s (restarts %v, epoch %d at height %d)", sc, what, restarts, s.nodes[0].core.vals.Epoch, s.maxHeight())
			}
		}
		t.Logf("%s: restarted from snapshots at heights %v; final height %d", sc, restarts, s.maxHeight())
	}
}

// TestRestoreSnapshotRefuses damages one part of a snapshot at a time.
func TestRestoreSnapshotRefuses(t *testing.T) {
	sc := quietScenario(11, 4)
	sc.valChange = true
	sc.healPhase = 4 * time.Second
	s := runScenario(t, sc)
	n := s.nodes[1]
	snapshot := snapshotOf(t, s.w.genesis, n.blocks)
	if snapshot.Header.Height < 3 || snapshot.PrevValidators.Members == nil {
		t.Fatalf("the run ends at height %d, previous validators %v: no epoch change", snapshot.Header.Height, snapshot.PrevValidators)
	}
	earlier := n.blocks[len(n.blocks)-2]
	tests := []struct {
		name   string
		damage func(sn *Snapshot)
	}{
		{"state of the block before", func(sn *Snapshot) { sn.State = earlier.State }},
		{"certificate of the block before", func(sn *Snapshot) { sn.Cert = earlier.Cert }},
		{"certificate short of a quorum", func(sn *Snapshot) {
			cert := *sn.Cert
			cert.Votes = cert.Votes[:1]
			sn.Cert = &cert
		}},
		{"no certificate", func(sn *Snapshot) { sn.Cert = nil }},
		{"no state", func(sn *Snapshot) { sn.State = nil }},
		{"header of another chain", func(sn *Snapshot) { sn.Header.Chain = "other" }},
		{"header time changed", func(sn *Snapshot) { sn.Header.Time++ }},
		{"no previous validators in epoch 1", func(sn *Snapshot) { sn.PrevValidators = chain.ValidatorSet{} }},
		{"previous validators of the wrong epoch", func(sn *Snapshot) { sn.PrevValidators.Epoch = 1 }},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			sn := snapshot
			tc.damage(&sn)
			if _, err := RestoreSnapshot(s.config(n), s.clock(n), sn, nil); err == nil {
				t.Fatal("a damaged snapshot was accepted")
			}
		})
	}
	if _, err := RestoreSnapshot(s.config(n), s.clock(n), snapshot, nil); err != nil {
		t.Fatalf("the undamaged snapshot: %v", err)
	}
}
