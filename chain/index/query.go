package index

import (
	"bytes"
	"errors"
	"fmt"

	"github.com/ipfs/go-cid"
	"github.com/syndtr/goleveldb/leveldb"
	"github.com/syndtr/goleveldb/leveldb/util"

	"auditnet/chain"
)

// Filter selects events. Every field set must match; the zero Filter
// selects every event.
type Filter struct {
	// Dataset selects events about one dataset; an empty Owner matches
	// the root under any owner.
	Dataset *chain.Dataset
	// Root selects events about datasets with this root, any owner.
	Root cid.Cid
	// Auditor and Agency select events naming that peer as the auditor,
	// or as the dataset's owner.
	Auditor []byte
	Agency  []byte
	// Since and Until bound the block time, ms since 1970 UTC: Since ≤
	// time < Until. Zero leaves that end open.
	Since, Until int64
	// Kinds selects events of these kinds; empty selects all.
	Kinds []Kind
	// Limit returns at most this many events, the earliest; 0 returns all.
	Limit int
}

// query is a validated filter.
type query struct {
	f     Filter
	roots []cid.Cid
	owner []byte
	kinds map[Kind]bool
}

func newQuery(f Filter) (*query, error) {
	q := &query{f: f}
	if f.Limit < 0 {
		return nil, fmt.Errorf("index: limit %d", f.Limit)
	}
	if f.Dataset != nil {
		if !f.Dataset.Root.Defined() {
			return nil, errors.New("index: filter dataset has no root")
		}
		q.roots, q.owner = append(q.roots, f.Dataset.Root.Cid), f.Dataset.Owner
	}
	if f.Root.Defined() {
		q.roots = append(q.roots, f.Root)
	}
	if len(f.Kinds) > 0 {
		q.kinds = make(map[Kind]bool, len(f.Kinds))
		for _, k := range f.Kinds {
			q.kinds[k] = true
		}
	}
	return q, nil
}

// prefixes are the secondary indexes the query can walk.
func (q *query) prefixes() [][]byte {
	var ps [][]byte
	for _, r := range q.roots {
		ps = append(ps, secondaryPrefix(prefixDataset, r.Bytes()))
	}
	if len(q.f.Auditor) > 0 {
		ps = append(ps, secondaryPrefix(prefixAuditor, q.f.Auditor))
	}
	if len(q.f.Agency) > 0 {
		ps = append(ps, secondaryPrefix(prefixAgency, q.f.Agency))
	}
	return ps
}

func (q *query) kindOK(k Kind) bool { return q.kinds == nil || q.kinds[k] }

// match checks the whole filter against an event.
func (q *query) match(ev *Event) bool {
	f := &q.f
	switch {
	case !q.kindOK(ev.Kind):
		return false
	case len(q.roots) > 0 && ev.Dataset == nil:
		return false
	case len(f.Auditor) > 0 && !bytes.Equal(ev.Auditor, f.Auditor):
		return false
	case len(f.Agency) > 0 && !bytes.Equal(ev.Agency, f.Agency):
		return false
	case len(q.owner) > 0 && !bytes.Equal(ev.Dataset.Owner, q.owner):
		return false
	case f.Since != 0 && ev.Time < f.Since:
		return false
	case f.Until != 0 && ev.Time >= f.Until:
		return false
	}
	for _, r := range q.roots {
		if !ev.Dataset.Root.Equals(r) {
			return false
		}
	}
	return true
}

func (q *query) full(n int) bool { return q.f.Limit > 0 && n >= q.f.Limit }

// Query returns the events f selects, in (height, position) order. It
// reads one snapshot of the index, so a concurrent Apply is seen whole or
// not at all.
func (ix *Index) Query(f Filter) ([]Event, error) {
	if err := ix.enter(); err != nil {
		return nil, err
	}
	defer ix.exit()
	q, err := newQuery(f)
	if err != nil {
		return nil, err
	}
	snap, err := ix.db.GetSnapshot()
	if err != nil {
		return nil, fmt.Errorf("index: snapshot: %w", err)
	}
	defer snap.Release()
	lo, hi, err := heightRange(snap, f.Since, f.Until)
	if err != nil || lo >= hi {
		return nil, err
	}
	if ps := q.prefixes(); len(ps) > 0 {
		return join(snap, q, ps, lo, hi)
	}
	return scan(snap, q, lo, hi)
}

// heightRange turns [since, until) into the heights [lo, hi) whose block
// times fall in it.
func heightRange(snap *leveldb.Snapshot, since, until int64) (lo, hi uint64, err error) {
	v, err := snap.Get(keyLast, nil)
	if errors.Is(err, leveldb.ErrNotFound) {
		return 0, 0, nil
	}
	if err != nil {
		return 0, 0, fmt.Errorf("index: read last height: %w", err)
	}
	last, _, err := parseLastRecord(v)
	if err != nil {
		return 0, 0, fmt.Errorf("index: %w", err)
	}
	lo, hi = 1, last+1
	if since != 0 {
		h, ok, err := firstHeightFrom(snap, since)
		if err != nil || !ok {
			return 0, 0, err
		}
		lo = h
	}
	if until != 0 {
		h, ok, err := firstHeightFrom(snap, until)
		if err != nil {
			return 0, 0, err
		}
		if ok {
			hi = h
		}
	}
	return lo, hi, nil
}

// firstHeightFrom returns the first height whose block time is at least t.
func firstHeightFrom(snap *leveldb.Snapshot, t int64) (uint64, bool, error) {
	it := snap.NewIterator(util.BytesPrefix([]byte(prefixTime)), nil)
	defer it.Release()
	if !it.Seek(append([]byte(prefixTime), timeBytes(t)...)) {
		if err := it.Error(); err != nil {
			return 0, false, fmt.Errorf("index: seek time %d: %w", t, err)
		}
		return 0, false, nil
	}
	h, err := heightOfTimeKey(it.Key())
	if err != nil {
		return 0, false, fmt.Errorf("index: %w", err)
	}
	return h, true, nil
}

// scan reads the events of heights [lo, hi) and keeps those q matches.
func scan(snap *leveldb.Snapshot, q *query, lo, hi uint64) ([]Event, error) {
	it := snap.NewIterator(&util.Range{Start: eventKey(place{height: lo}), Limit: eventKey(place{height: hi})}, nil)
	defer it.Release()
	var out []Event
	for !q.full(len(out)) && it.Next() {
		p, err := placeFrom(it.Key()[len(prefixEvent):])
		if err != nil {
			return nil, fmt.Errorf("index: event key %x: %w", it.Key(), err)
		}
		ev, err := decodeEvent(it.Value(), p.height, p.pos)
		if err != nil {
			return nil, fmt.Errorf("index: %w", err)
		}
		if q.match(&ev) {
			out = append(out, ev)
		}
	}
	if err := it.Error(); err != nil {
		return nil, fmt.Errorf("index: scan events: %w", err)
	}
	return out, nil
}
