package index

import (
	"bytes"
	"slices"
	"testing"

	"auditnet/chain"
)

// reference is the filter applied by brute force, to compare Query with.
func reference(all []Event, f Filter) []Event {
	var out []Event
	for _, ev := range all {
		ok := len(f.Kinds) == 0 || slices.Contains(f.Kinds, ev.Kind)
		if f.Dataset != nil {
			ok = ok && ev.Dataset != nil && ev.Dataset.Root.Equals(f.Dataset.Root.Cid) &&
				(len(f.Dataset.Owner) == 0 || bytes.Equal(ev.Dataset.Owner, f.Dataset.Owner))
		}
		if f.Root.Defined() {
			ok = ok && ev.Dataset != nil && ev.Dataset.Root.Equals(f.Root)
		}
		ok = ok && (f.Auditor == nil || bytes.Equal(ev.Auditor, f.Auditor))
		ok = ok && (f.Agency == nil || bytes.Equal(ev.Agency, f.Agency))
		ok = ok && (f.Since == 0 || ev.Time >= f.Since) && (f.Until == 0 || ev.Time < f.Until)
		if ok && (f.Limit == 0 || len(out) < f.Limit) {
			out = append(out, ev)
		}
	}
	return out
}

func places(evs []Event) []place {
	ps := make([]place, len(evs))
	for i, ev := range evs {
		ps[i] = place{height: ev.Height, pos: ev.Pos}
	}
	return ps
}

// TestQueryFilters runs each filter alone and in combination, and checks
// the result against the brute-force filter and a count worked out by
// hand from the scenario.
func TestQueryFilters(t *testing.T) {
	s := newScenario(t)
	all := s.all(t)
	a1, a2 := s.ids["auditor1"], s.ids["auditor2"]
	g1, g2 := s.ids["agency1"], s.ids["agency2"]
	_, stranger := newKey(t)
	tests := []struct {
		name string
		f    Filter
		want int
	}{
		{"everything", Filter{}, 18},
		{"dataset", Filter{Dataset: &s.ledger1}, 7},
		{"dataset of the other owner", Filter{Dataset: &s.ledger2}, 2},
		{"dataset by root, any owner", Filter{Dataset: &chain.Dataset{Root: s.ledger1.Root}}, 9},
		{"root", Filter{Root: s.ledger1.Root.Cid}, 9},
		{"dataset nobody anchored", Filter{Dataset: &s.never2}, 1},
		{"dataset with the wrong owner", Filter{Dataset: &chain.Dataset{Owner: g2, Root: s.budget1.Root}}, 0},
		{"auditor", Filter{Auditor: a1}, 8},
		{"other auditor", Filter{Auditor: a2}, 4},
		{"unknown auditor", Filter{Auditor: stranger}, 0},
		{"agency", Filter{Agency: g1}, 12},
		{"other agency", Filter{Agency: g2}, 3},
		{"kinds", Filter{Kinds: []Kind{KindAccess}}, 6},
		{"settlements", Filter{Kinds: []Kind{KindServed, KindNonService}}, 3},
		{"since", Filter{Since: blockTime(3) + 1}, 9},
		{"until", Filter{Until: blockTime(3)}, 5},
		{"since and until", Filter{Since: blockTime(3), Until: blockTime(5)}, 7},
		{"since, between blocks", Filter{Since: blockTime(5) + 500}, 1},
		{"since after the last block", Filter{Since: blockTime(8)}, 0},
		{"until before the first block", Filter{Until: blockTime(1)}, 0},
		{"until after the last block", Filter{Until: blockTime(100)}, 18},
		{"auditor and agency", Filter{Auditor: a1, Agency: g1}, 7},
		{"auditor and dataset", Filter{Auditor: a1, Dataset: &s.ledger1}, 5},
		{"auditor and root", Filter{Auditor: a1, Root: s.ledger1.Root.Cid}, 6},
		{"auditor and agency, one event", Filter{Auditor: a2, Agency: g2}, 1},
		{"auditor and kinds", Filter{Auditor: a1, Kinds: []Kind{KindAccess}}, 4},
		{"auditor in a time range", Filter{Auditor: a1, Since: blockTime(4), Until: blockTime(6)}, 5},
		{"everything at once", Filter{Dataset: &s.ledger1, Auditor: a1, Agency: g1, Kinds: []Kind{KindAccess}, Since: blockTime(3)}, 2},
		{"agency and limit", Filter{Agency: g1, Limit: 4}, 4},
		{"auditor, dataset and limit", Filter{Auditor: a1, Dataset: &s.ledger1, Limit: 2}, 2},
		{"kinds and limit", Filter{Kinds: []Kind{KindAccess}, Limit: 5}, 5},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			got, err := s.ix.Query(tc.f)
			if err != nil {
				t.Fatal(err)
			}
			want := reference(all, tc.f)
			if len(want) != tc.want {
				t.Fatalf("the scenario has %d such events, the test counted %d", len(want), tc.want)
			}
			if !slices.Equal(places(got), places(want)) {
				t.Fatalf("got events at %v, want %v", places(got), places(want))
			}
		})
	}
}

// TestQueryOrderAndLimit checks that every query returns events in
// (height, position) order and that a limit keeps the earliest.
func TestQueryOrderAndLimit(t *testing.T) {
	s := newScenario(t)
	all := s.all(t)
	for _, f := range []Filter{{}, {Auditor: s.ids["auditor1"]}, {Agency: s.ids["agency1"]}, {Root: s.ledger1.Root.Cid}} {
		got, err := s.ix.Query(f)
		if err != nil {
			t.Fatal(err)
		}
		if !slices.IsSortedFunc(places(got), func(a, b place) int {
			if a.less(b) {
				return -1
			}
			return 1
		}) {
			t.Fatalf("filter %+v: events out of order: %v", f, places(got))
		}
		for n := 1; n <= len(got); n++ {
			f.Limit = n
			limited, err := s.ix.Query(f)
			if err != nil {
				t.Fatal(err)
			}
			if !slices.Equal(places(limited), places(got[:n])) {
				t.Fatalf("limit %d: got %v, want %v", n, places(limited), places(got[:n]))
			}
		}
	}
	// Within a block, the deadline outcomes come first: check that
	// positions follow the results, across a block with several kinds.
	var h5 []Event
	for _, ev := range all {
		if ev.Height == 5 {
			h5 = append(h5, ev)
		}
	}
	kinds := []Kind{KindRevoke, KindAccess, KindMember, KindParams, KindEvidence}
	for i, ev := range h5 {
		if ev.Pos != uint32(i) || ev.Kind != kinds[i] {
			t.Fatalf("block 5 event %d: position %d kind %s, want %d %s", i, ev.Pos, ev.Kind, i, kinds[i])
		}
	}
	if _, err := s.ix.Query(Filter{Limit: -1}); err == nil {
		t.Fatal("a negative limit passed")
	}
	if _, err := s.ix.Query(Filter{Dataset: &chain.Dataset{Owner: s.ids["agency1"]}}); err == nil {
		t.Fatal("a dataset filter without a root passed")
	}
}
