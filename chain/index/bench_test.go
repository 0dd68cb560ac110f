package index

import (
	"fmt"
	"slices"
	"testing"

	"auditnet/chain"
	"auditnet/internal/dagcbor"
)

// benchAccessWindow is T in the benchmark chain.
const benchAccessWindow = 10

// benchChain makes a chain of about 2×requests events: 10 agencies anchor
// 10 open datasets each, 50 auditors send requests perBlock at a time,
// every third request is served (acknowledged) in the next block, and the
// rest become non-services T blocks later.
//
// The outcomes are those the machine gives such a chain: every request is
// authorised (open datasets, the owner as provider, no cap) and the
// deadlines fall due in request order. With execute, the machine runs too
// and each block's outcomes must equal them (TestBenchChainIsTheMachines);
// without, building 100k events takes seconds instead of minutes, since
// the machine's per-height tx lists cost O(k²) for k txs at one height.
func benchChain(tb testing.TB, requests, perBlock int, execute bool) (*sim, int) {
	tb.Helper()
	var agencies, auditors []string
	for i := range 10 {
		agencies = append(agencies, fmt.Sprint("agency", i))
	}
	for i := range 50 {
		auditors = append(auditors, fmt.Sprint("auditor", i))
	}
	s := newSim(tb, agencies, auditors, func(g *chain.Genesis) {
		g.Params.AccessWindow = benchAccessWindow
		g.Params.MaxAccessPerWindow = 1 << 40
	})
	due := map[uint64][]dagcbor.Link{}
	served := map[string]bool{}
	commit := func(txs []*chain.Tx) {
		var outcomes []chain.Outcome
		for _, id := range due[s.h] {
			if !served[id.KeyString()] {
				outcomes = append(outcomes, chain.Outcome{Tx: id, Code: chain.OutcomeNonService})
			}
		}
		for _, tx := range txs {
			o := chain.Outcome{Tx: dagcbor.Link{Cid: txID(tb, tx)}, Code: chain.OutcomeOK}
			switch tx.Body.Kind {
			case chain.KindAccess:
				o.Code = chain.OutcomeAuthorised
				due[s.h+benchAccessWindow+1] = append(due[s.h+benchAccessWindow+1], o.Tx)
			case chain.KindServed:
				o.Code = chain.OutcomeServed
				served[tx.Body.Served.Request.KeyString()] = true
			}
			outcomes = append(outcomes, o)
		}
		if execute {
			if c := s.block(txs...); !slices.Equal(c.outcomes, outcomes) {
				tb.Fatalf("block %d: the machine gives %+v, the benchmark %+v", c.blk.Header.Height, c.outcomes, outcomes)
			}
			return
		}
		s.record(txs, outcomes)
	}

	var anchors []*chain.Tx
	var datasets []chain.Dataset
	for _, a := range agencies {
		for j := range 10 {
			root := fmt.Sprint(a, "/dataset", j)
			anchors = append(anchors, s.anchor(a, root, chain.PolicyOpen))
			datasets = append(datasets, s.dataset(a, root))
		}
	}
	commit(anchors)
	var next []*chain.Tx
	for n := 0; n < requests; {
		txs := next
		next = nil
		for range perBlock {
			auditor, d := auditors[n%len(auditors)], (n*7)%len(datasets)
			owner := agencies[d/10]
			req := s.access(auditor, datasets[d], owner, "annual audit", fmt.Sprint("C-", n%13))
			txs = append(txs, req)
			if n%3 == 0 {
				next = append(next, s.served(owner, req, auditor, 1000))
			}
			n++
		}
		commit(txs)
	}
	commit(next)
	for range benchAccessWindow + 1 {
		commit(nil)
	}
	events := 0
	for _, c := range s.blocks {
		events += len(c.outcomes)
	}
	return s, events
}

// record keeps txs as the next block with the outcomes given, without
// executing them.
func (s *sim) record(txs []*chain.Tx, outcomes []chain.Outcome) {
	list := make([]chain.Tx, len(txs))
	for i, tx := range txs {
		list[i] = *tx
	}
	blk := &chain.Block{Header: header(s.t, s.h, outcomes), Txs: list}
	s.blocks = append(s.blocks, committed{blk: blk, outcomes: outcomes})
	s.h++
}

// TestBenchChainIsTheMachines checks the benchmarks' outcomes against the
// machine's on a small chain of the same shape.
func TestBenchChainIsTheMachines(t *testing.T) {
	s, events := benchChain(t, 300, 40, true)
	if events < 2*300 {
		t.Fatalf("%d events", events)
	}
	ix := openIndex(t, t.TempDir())
	s.applyAll(ix)
	for _, k := range []Kind{KindServed, KindNonService} {
		if evs, err := ix.Query(Filter{Kinds: []Kind{k}}); err != nil || len(evs) < 90 {
			t.Fatalf("%d %s events, %v", len(evs), k, err)
		}
	}
	// Joins over many interleaved entries agree with brute force.
	all, err := ix.Query(Filter{})
	if err != nil || len(all) != events {
		t.Fatalf("%d events, want %d (%v)", len(all), events, err)
	}
	mid := blockTime(s.h / 2)
	for _, f := range []Filter{
		{Auditor: s.ids["auditor7"], Agency: s.ids["agency4"]},
		{Auditor: s.ids["auditor3"], Agency: s.ids["agency2"], Since: mid},
		{Auditor: s.ids["auditor10"], Root: testRoot("agency7/dataset0").Cid, Until: mid},
		{Agency: s.ids["agency9"], Root: testRoot("agency9/dataset9").Cid, Kinds: []Kind{KindNonService}},
		{Agency: s.ids["agency0"], Auditor: s.ids["auditor1"], Root: testRoot("agency0/dataset7").Cid, Limit: 5},
	} {
		got, err := ix.Query(f)
		if err != nil {
			t.Fatal(err)
		}
		want := reference(all, f)
		if len(want) == 0 || !slices.Equal(places(got), places(want)) {
			t.Fatalf("filter %+v: got %v, want %v", f, places(got), places(want))
		}
	}
}

// BenchmarkApply indexes a chain of about 100k events into an empty index
// per iteration, one synced batch per block of 500 requests, and reports
// events/s.
func BenchmarkApply(b *testing.B) {
	s, events := benchChain(b, 50_000, 500, false)
	b.ReportAllocs()
	iterations := 0
	for b.Loop() {
		b.StopTimer()
		ix, err := Open(b.TempDir())
		if err != nil {
			b.Fatal(err)
		}
		b.StartTimer()
		s.applyAll(ix)
		b.StopTimer()
		if err := ix.Close(); err != nil {
			b.Fatal(err)
		}
		b.StartTimer()
		iterations++
	}
	b.ReportMetric(float64(events*iterations)/b.Elapsed().Seconds(), "events/s")
	b.ReportMetric(float64(events), "events/op")
	b.ReportMetric(float64(len(s.blocks)), "blocks/op")
}

// BenchmarkQueryByAuditor queries an index of about 100k events for one
// of 50 auditors: all their events, the first 100, those in a tenth of the
// chain's time, those with one agency (two indexes joined), and those of
// one kind.
func BenchmarkQueryByAuditor(b *testing.B) {
	s, events := benchChain(b, 50_000, 500, false)
	ix, err := Open(b.TempDir())
	if err != nil {
		b.Fatal(err)
	}
	defer ix.Close()
	s.applyAll(ix)
	// auditor7 sends requests n = 7 mod 50, for datasets 49 and 99: those
	// of agency4 and agency9.
	auditor, agency := s.ids["auditor7"], s.ids["agency4"]
	last := ix.LastHeight()
	from := blockTime(last / 2)
	tests := []struct {
		name string
		f    Filter
	}{
		{"all", Filter{Auditor: auditor}},
		{"limit 100", Filter{Auditor: auditor, Limit: 100}},
		{"a tenth of the time", Filter{Auditor: auditor, Since: from, Until: from + int64(last/10)*1000}},
		{"and agency", Filter{Auditor: auditor, Agency: agency}},
		{"and kind", Filter{Auditor: auditor, Kinds: []Kind{KindServed}}},
	}
	for _, tc := range tests {
		b.Run(tc.name, func(b *testing.B) {
			b.ReportAllocs()
			found := 0
			for b.Loop() {
				evs, err := ix.Query(tc.f)
				if err != nil {
					b.Fatal(err)
				}
				found = len(evs)
			}
			b.ReportMetric(float64(found), "events/query")
			b.ReportMetric(float64(events), "indexed")
		})
	}
}
