package index

import (
	"strings"
	"testing"

	"github.com/syndtr/goleveldb/leveldb"

	"auditnet/chain"
	"auditnet/internal/dagcbor"
)

func put(t *testing.T, ix *Index, key, value []byte) {
	t.Helper()
	if err := ix.db.Put(key, value, nil); err != nil {
		t.Fatal(err)
	}
}

// TestCorruptValuesAreErrors damages one stored key or value at a time
// and checks that the queries reading it fail with an error naming it,
// and do not panic.
func TestCorruptValuesAreErrors(t *testing.T) {
	auditorEntry := func(s *scenario, p []byte) []byte {
		return append(secondaryPrefix(prefixAuditor, s.ids["auditor1"]), p...)
	}
	encoded := func(t *testing.T, v any) []byte {
		b, err := dagcbor.Marshal(v)
		if err != nil {
			t.Fatal(err)
		}
		return b
	}
	tests := []struct {
		name    string
		corrupt func(t *testing.T, s *scenario)
		f       func(s *scenario) Filter
		want    string
	}{
		{"event not CBOR", func(t *testing.T, s *scenario) {
			put(t, s.ix, eventKey(place{4, 0}), []byte{0xff, 0x00, 0x13})
		}, func(*scenario) Filter { return Filter{} }, "height 4 position 0"},
		{"event not CBOR, read through an index", func(t *testing.T, s *scenario) {
			put(t, s.ix, eventKey(place{4, 0}), []byte{0xa1})
		}, func(s *scenario) Filter { return Filter{Auditor: s.ids["auditor1"]} }, "height 4 position 0"},
		{"event truncated", func(t *testing.T, s *scenario) {
			raw, err := s.ix.db.Get(eventKey(place{3, 1}), nil)
			if err != nil {
				t.Fatal(err)
			}
			put(t, s.ix, eventKey(place{3, 1}), raw[:len(raw)/2])
		}, func(s *scenario) Filter { return Filter{Dataset: &s.budget1} }, "height 3 position 1"},
		{"event of an unknown kind", func(t *testing.T, s *scenario) {
			put(t, s.ix, eventKey(place{2, 0}), encoded(t, &Event{Kind: "bogus", Tx: s.blocks[1].outcomes[0].Tx}))
		}, func(*scenario) Filter { return Filter{} }, "kind \"bogus\""},
		{"event with an unknown field", func(t *testing.T, s *scenario) {
			put(t, s.ix, eventKey(place{2, 0}), encoded(t, map[string]any{"kind": "grant", "zzz": 1}))
		}, func(*scenario) Filter { return Filter{} }, "height 2 position 0"},
		{"event gone", func(t *testing.T, s *scenario) {
			if err := s.ix.db.Delete(eventKey(place{5, 1}), nil); err != nil {
				t.Fatal(err)
			}
		}, func(s *scenario) Filter { return Filter{Auditor: s.ids["auditor1"]} }, "height 5 position 1"},
		{"index entry of a short key", func(t *testing.T, s *scenario) {
			put(t, s.ix, auditorEntry(s, place{4, 0}.bytes()[:10]), []byte(KindAccess))
		}, func(s *scenario) Filter { return Filter{Auditor: s.ids["auditor1"]} }, "bytes where a height and position belong"},
		{"index entry of a bad kind", func(t *testing.T, s *scenario) {
			put(t, s.ix, auditorEntry(s, place{3, 0}.bytes()), []byte("??"))
		}, func(s *scenario) Filter { return Filter{Auditor: s.ids["auditor1"]} }, "holds kind"},
		{"time key of a bad length", func(t *testing.T, s *scenario) {
			put(t, s.ix, append(append([]byte(prefixTime), timeBytes(blockTime(3))...), 0, 0, 0), nil)
		}, func(*scenario) Filter { return Filter{Since: blockTime(3)} }, "time key"},
		{"last height record of a bad length", func(t *testing.T, s *scenario) {
			put(t, s.ix, keyLast, []byte{1, 2, 3})
		}, func(*scenario) Filter { return Filter{} }, "last height record"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			s := newScenario(t)
			tc.corrupt(t, s)
			_, err := s.ix.Query(tc.f(s))
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("query: %v, want an error with %q", err, tc.want)
			}
		})
	}
}

// TestCorruptRequestEntry damages the entry that finds an access request
// by its tx ID: the non-service that needs it is refused, not indexed
// under nobody.
func TestCorruptRequestEntry(t *testing.T) {
	s := newSim(t, []string{"agency1"}, []string{"auditor1"}, func(g *chain.Genesis) { g.Params.AccessWindow = 1 })
	ds := s.dataset("agency1", "ledger")
	s.block(s.anchor("agency1", "ledger", chain.PolicyOpen))
	req := s.access("auditor1", ds, "agency1", "audit", "C-1")
	s.block(req)
	s.block()
	c := s.block()
	ix := openIndex(t, t.TempDir())
	for _, b := range s.blocks[:3] {
		if err := ix.Apply(b.blk.Header.Height, b.blk, b.outcomes); err != nil {
			t.Fatal(err)
		}
	}
	put(t, ix, txKey(txID(t, req).Bytes()), []byte{1})
	err := ix.Apply(4, c.blk, c.outcomes)
	if err == nil || !strings.Contains(err.Error(), "tx entry of request") {
		t.Fatalf("apply: %v", err)
	}
	if ix.LastHeight() != 3 {
		t.Fatalf("last height %d", ix.LastHeight())
	}
}

// TestOpenRefuses checks what Open will not open: another format, a
// damaged last height record, and a database that is not an index.
func TestOpenRefuses(t *testing.T) {
	tests := []struct {
		name string
		fill func(db *leveldb.DB) error
		want string
	}{
		{"another format", func(db *leveldb.DB) error { return db.Put(keyFormat, []byte("auditnet/index/v0"), nil) }, "rebuild"},
		{"a damaged last height", func(db *leveldb.DB) error {
			if err := db.Put(keyFormat, []byte(format), nil); err != nil {
				return err
			}
			return db.Put(keyLast, []byte{0, 0, 1}, nil)
		}, "last height record"},
		{"not an index", func(db *leveldb.DB) error { return db.Put([]byte("blocks/1"), []byte("x"), nil) }, "not an index"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			dir := t.TempDir()
			db, err := leveldb.OpenFile(dir, nil)
			if err != nil {
				t.Fatal(err)
			}
			if err := tc.fill(db); err != nil {
				t.Fatal(err)
			}
			if err := db.Close(); err != nil {
				t.Fatal(err)
			}
			ix, err := Open(dir)
			if err == nil {
				ix.Close()
				t.Fatal("opened")
			}
			if !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("open: %v, want an error with %q", err, tc.want)
			}
		})
	}
}
