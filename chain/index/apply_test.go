package index

import (
	"errors"
	"slices"
	"strings"
	"sync"
	"testing"

	"auditnet/chain"
	"auditnet/internal/dagcbor"
)

// TestApplyIsIdempotent re-applies every indexed height, with its own
// block and with another, and checks that nothing changes.
func TestApplyIsIdempotent(t *testing.T) {
	s := newScenario(t)
	before := s.all(t)
	s.applyAll(s.ix)
	other := s.blocks[len(s.blocks)-1]
	for h := uint64(0); h <= s.ix.LastHeight(); h++ {
		if err := s.ix.Apply(h, other.blk, other.outcomes); err != nil {
			t.Fatalf("re-apply at height %d: %v", h, err)
		}
	}
	if got := s.ix.LastHeight(); got != 7 {
		t.Fatalf("last height %d, want 7", got)
	}
	if after := s.all(t); !slices.Equal(places(after), places(before)) {
		t.Fatalf("re-applying changed the events: %v, was %v", places(after), places(before))
	}
}

// TestApplyGap checks that a block past the next height is refused with
// ErrGap and leaves the index as it was, and that the caller can then
// replay in order.
func TestApplyGap(t *testing.T) {
	s := newSim(t, []string{"agency1"}, []string{"auditor1"}, nil)
	ds := s.dataset("agency1", "ledger")
	s.block(s.anchor("agency1", "ledger", chain.PolicyOpen))
	s.block(s.access("auditor1", ds, "agency1", "audit", "C-1"))
	s.block(s.access("auditor1", ds, "agency1", "audit", "C-1"))
	ix := openIndex(t, t.TempDir())
	third := s.blocks[2]
	err := ix.Apply(3, third.blk, third.outcomes)
	if !errors.Is(err, ErrGap) {
		t.Fatalf("block 3 on an empty index: %v, want ErrGap", err)
	}
	if ix.LastHeight() != 0 {
		t.Fatalf("last height %d after a refused block", ix.LastHeight())
	}
	if evs, err := ix.Query(Filter{}); err != nil || len(evs) != 0 {
		t.Fatalf("%d events, %v after a refused block", len(evs), err)
	}
	s.applyAll(ix)
	if evs, err := ix.Query(Filter{}); err != nil || len(evs) != 3 || ix.LastHeight() != 3 {
		t.Fatalf("after replay: %d events, last %d, %v", len(evs), ix.LastHeight(), err)
	}
}

// TestApplyRefuses lists the blocks Apply refuses, and checks that each
// leaves the index untouched and able to take the right block next.
func TestApplyRefuses(t *testing.T) {
	s := newSim(t, []string{"agency1"}, []string{"auditor1"}, func(g *chain.Genesis) { g.Params.AccessWindow = 1 })
	ds := s.dataset("agency1", "ledger")
	s.block(s.anchor("agency1", "ledger", chain.PolicyOpen))
	req := s.access("auditor1", ds, "agency1", "audit", "C-1")
	s.block(req)
	s.block(s.access("auditor1", ds, "agency1", "audit", "C-2"))
	s.block() // the first request becomes a non-service
	if got := s.blocks[3].outcomes; len(got) != 1 || got[0].Code != chain.OutcomeNonService {
		t.Fatalf("block 4 outcomes %+v, want one non-service", got)
	}
	ix := openIndex(t, t.TempDir())
	if err := ix.Apply(1, s.blocks[0].blk, s.blocks[0].outcomes); err != nil {
		t.Fatal(err)
	}
	b2 := s.blocks[1]
	withHeader := func(mutate func(*chain.Header)) *chain.Block {
		blk := *b2.blk
		mutate(&blk.Header)
		return &blk
	}
	strange := chain.Outcome{Tx: dagcbor.Link{Cid: txID(t, s.anchor("agency1", "other", chain.PolicyOpen))}, Code: chain.OutcomeOK}
	tests := []struct {
		name     string
		blk      *chain.Block
		outcomes []chain.Outcome
		// rooted gives the block the results root of the outcomes, so
		// that Apply gets past that check to the matching of outcomes.
		rooted bool
		want   string
	}{
		{"nil block", nil, b2.outcomes, false, "nil"},
		{"header of another height", withHeader(func(h *chain.Header) { h.Height = 7 }), b2.outcomes, false, "header height 7"},
		{"time not after the last block's", withHeader(func(h *chain.Header) { h.Time = blockTime(1) }), b2.outcomes, false, "not after"},
		{"outcomes of another block", b2.blk, s.blocks[2].outcomes, false, "results root"},
		{"an outcome without a tx", b2.blk, []chain.Outcome{b2.outcomes[0], {Code: chain.OutcomeOK}}, false, "results root"},
		{"no outcomes", b2.blk, nil, true, "1 txs but 0 outcomes"},
		{"an outcome for a tx not in the block", b2.blk, []chain.Outcome{strange}, true, "not in the block"},
		{"two outcomes for one tx", b2.blk, []chain.Outcome{b2.outcomes[0], b2.outcomes[0]}, true, "has an outcome already"},
		{"a non-service of no request", b2.blk, append([]chain.Outcome{{Tx: strange.Tx, Code: chain.OutcomeNonService}}, b2.outcomes...), true, "no access request"},
		{"a non-service of a non-request", b2.blk, append([]chain.Outcome{{Tx: s.blocks[0].outcomes[0].Tx, Code: chain.OutcomeNonService}}, b2.outcomes...), true, "no access request"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			blk := tc.blk
			if tc.rooted {
				blk = withHeader(func(h *chain.Header) { h.ResultsRoot = header(t, 2, tc.outcomes).ResultsRoot })
			}
			err := ix.Apply(2, blk, tc.outcomes)
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("apply: %v, want an error with %q", err, tc.want)
			}
			if ix.LastHeight() != 1 {
				t.Fatalf("last height %d after a refused block", ix.LastHeight())
			}
			if evs, err := ix.Query(Filter{}); err != nil || len(evs) != 1 {
				t.Fatalf("%d events, %v after a refused block", len(evs), err)
			}
		})
	}
	s.applyAll(ix)
	ns, err := ix.Query(Filter{Kinds: []Kind{KindNonService}})
	if err != nil || len(ns) != 1 || !ns[0].Tx.Equals(txID(t, req)) {
		t.Fatalf("non-services %+v, %v", ns, err)
	}
}

// TestReopen closes the index and opens it again: every event and the
// last height are still there, and indexing goes on from there.
func TestReopen(t *testing.T) {
	s := newScenario(t)
	before := s.all(t)
	byAuditor, err := s.ix.Query(Filter{Auditor: s.ids["auditor2"]})
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	ix := openIndex(t, dir)
	s.applyAll(ix)
	if err := ix.Close(); err != nil {
		t.Fatal(err)
	}
	s.ix = openIndex(t, dir)
	if got := s.ix.LastHeight(); got != 7 {
		t.Fatalf("last height %d after reopening, want 7", got)
	}
	if after := s.all(t); !slices.Equal(places(after), places(before)) {
		t.Fatalf("events after reopening %v, want %v", places(after), places(before))
	}
	again, err := s.ix.Query(Filter{Auditor: s.ids["auditor2"]})
	if err != nil || !slices.Equal(places(again), places(byAuditor)) {
		t.Fatalf("auditor's events after reopening %v (%v), want %v", places(again), err, places(byAuditor))
	}
	// The time check survives too: block 8 must come after block 7.
	c := s.block(s.access("auditor2", s.budget1, "agency1", "later", "C-3"))
	late := *c.blk
	late.Header.Time = blockTime(7)
	if err := s.ix.Apply(8, &late, c.outcomes); err == nil {
		t.Fatal("a block no later than the last, after reopening, applied")
	}
	if err := s.ix.Apply(8, c.blk, c.outcomes); err != nil {
		t.Fatal(err)
	}
	if got, err := s.ix.Query(Filter{Auditor: s.ids["auditor2"]}); err != nil || len(got) != len(byAuditor)+1 {
		t.Fatalf("%d events for the auditor after block 8, want %d (%v)", len(got), len(byAuditor)+1, err)
	}
}

// TestClosed checks that a closed index says so instead of panicking.
func TestClosed(t *testing.T) {
	s := newScenario(t)
	if err := s.ix.Close(); err != nil {
		t.Fatal(err)
	}
	if err := s.ix.Close(); err != nil {
		t.Fatalf("second close: %v", err)
	}
	if _, err := s.ix.Query(Filter{}); !errors.Is(err, ErrClosed) {
		t.Fatalf("query after close: %v", err)
	}
	c := s.block()
	if err := s.ix.Apply(8, c.blk, c.outcomes); !errors.Is(err, ErrClosed) {
		t.Fatalf("apply after close: %v", err)
	}
}

// TestQueryDuringApply runs queries while blocks are applied: each query
// sees whole blocks only (a block's events all, or none of them).
func TestQueryDuringApply(t *testing.T) {
	s := newSim(t, []string{"agency1"}, []string{"auditor1", "auditor2"}, nil)
	ds := s.dataset("agency1", "ledger")
	s.block(s.anchor("agency1", "ledger", chain.PolicyOpen))
	for range 30 {
		s.block(s.access("auditor1", ds, "agency1", "audit", "C-1"), s.access("auditor2", ds, "agency1", "audit", "C-1"),
			s.access("auditor1", ds, "agency1", "audit", "C-2"))
	}
	ix := openIndex(t, t.TempDir())
	done := make(chan struct{})
	var wg sync.WaitGroup
	errs := make(chan error, 1)
	wg.Go(func() {
		for {
			select {
			case <-done:
				return
			default:
			}
			evs, err := ix.Query(Filter{Agency: s.ids["agency1"], Kinds: []Kind{KindAccess}})
			if err == nil && len(evs)%3 != 0 {
				err = errors.New("a query saw part of a block")
			}
			if err != nil {
				errs <- err
				return
			}
		}
	})
	s.applyAll(ix)
	close(done)
	wg.Wait()
	select {
	case err := <-errs:
		t.Fatal(err)
	default:
	}
}
