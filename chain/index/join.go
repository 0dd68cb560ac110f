package index

import (
	"fmt"

	"github.com/syndtr/goleveldb/leveldb"
	"github.com/syndtr/goleveldb/leveldb/iterator"
	"github.com/syndtr/goleveldb/leveldb/util"
)

// cursor walks one secondary index's entries for one value, over a range
// of heights.
type cursor struct {
	it     iterator.Iterator
	prefix []byte
	at     place
	valid  bool
}

func newCursor(snap *leveldb.Snapshot, prefix []byte, lo, hi uint64) *cursor {
	r := &util.Range{
		Start: append(append([]byte(nil), prefix...), place{height: lo}.bytes()...),
		Limit: append(append([]byte(nil), prefix...), place{height: hi}.bytes()...),
	}
	return &cursor{it: snap.NewIterator(r, nil), prefix: prefix}
}

// seek moves the cursor to its first entry at or after target; false when
// there is none. A step of one entry is tried before a seek, so that a
// cursor walking its entries in turn never seeks.
func (c *cursor) seek(target place) (bool, error) {
	if c.valid && !c.at.less(target) {
		return true, nil
	}
	var ok bool
	if c.valid {
		ok = c.it.Next()
		if ok {
			if err := c.read(); err != nil {
				return false, err
			}
			if !c.at.less(target) {
				return true, nil
			}
		}
	}
	if !c.valid || ok {
		ok = c.it.Seek(append(append([]byte(nil), c.prefix...), target.bytes()...))
	}
	if !ok {
		c.valid = false
		if err := c.it.Error(); err != nil {
			return false, fmt.Errorf("index: walk entries %x: %w", c.prefix, err)
		}
		return false, nil
	}
	return true, c.read()
}

// read parses the place of the entry the iterator is at.
func (c *cursor) read() error {
	p, err := placeFrom(c.it.Key()[len(c.prefix):])
	if err != nil {
		c.valid = false
		return fmt.Errorf("index: entry %x: %w", c.it.Key(), err)
	}
	c.at, c.valid = p, true
	return nil
}

// kind is the kind the current entry records.
func (c *cursor) kind() (Kind, error) {
	k := Kind(c.it.Value())
	if !validKind(k) {
		return "", fmt.Errorf("index: entry %x holds kind %q", c.it.Key(), k)
	}
	return k, nil
}

// join walks the secondary indexes under prefixes together (a leapfrog
// join): each cursor seeks to the furthest place any has reached, and a
// place all of them hold is a candidate. Its cost follows the most
// selective index, not the sum of them.
func join(snap *leveldb.Snapshot, q *query, prefixes [][]byte, lo, hi uint64) ([]Event, error) {
	cs := make([]*cursor, len(prefixes))
	for i, p := range prefixes {
		cs[i] = newCursor(snap, p, lo, hi)
		defer cs[i].it.Release()
	}
	var out []Event
	target := place{height: lo}
	for !q.full(len(out)) {
		ok, err := align(cs, &target)
		if err != nil {
			return nil, err
		}
		if !ok {
			break
		}
		ev, keep, err := candidate(snap, q, cs[0], target)
		if err != nil {
			return nil, err
		}
		if keep {
			out = append(out, ev)
		}
		target = target.next()
	}
	return out, nil
}

// align moves every cursor to the first place at or after target that
// all of them hold, and sets target to it; false when there is none.
func align(cs []*cursor, target *place) (bool, error) {
	for i, agreed := 0, 0; agreed < len(cs); i = (i + 1) % len(cs) {
		ok, err := cs[i].seek(*target)
		if err != nil || !ok {
			return false, err
		}
		if cs[i].at == *target {
			agreed++
		} else {
			*target, agreed = cs[i].at, 1
		}
	}
	return true, nil
}

// candidate reads the event at p if its kind is wanted, and says whether
// the query keeps it.
func candidate(snap *leveldb.Snapshot, q *query, c *cursor, p place) (Event, bool, error) {
	k, err := c.kind()
	if err != nil || !q.kindOK(k) {
		return Event{}, false, err
	}
	raw, err := snap.Get(eventKey(p), nil)
	if err != nil {
		return Event{}, false, fmt.Errorf("index: event at height %d position %d, named by entry %x: %w", p.height, p.pos, c.it.Key(), err)
	}
	ev, err := decodeEvent(raw, p.height, p.pos)
	if err != nil {
		return Event{}, false, fmt.Errorf("index: %w", err)
	}
	return ev, q.match(&ev), nil
}
