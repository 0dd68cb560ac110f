package unixfs

import (
	"errors"
	"fmt"
	"math/bits"
	"sort"

	"github.com/spaolacci/murmur3"

	"auditnet/storage/dagpb"
)

// DirEntry is one named entry of a directory being built.
type DirEntry struct {
	Name  string
	Entry Entry
}

// Directory stores a directory over entries (names must be unique) and
// returns its root. Like kubo, it makes a single dag-pb node unless the
// entries' names and CIDs add up to more than Params.HAMTThreshold bytes,
// in which case it makes a HAMT-sharded directory.
func (im *Importer) Directory(entries []DirEntry) (Entry, error) {
	estimate := 0
	seen := make(map[string]struct{}, len(entries))
	for _, e := range entries {
		if _, dup := seen[e.Name]; dup {
			return Entry{}, fmt.Errorf("unixfs: duplicate directory entry %q", e.Name)
		}
		seen[e.Name] = struct{}{}
		estimate += len(e.Name) + e.Entry.Cid.ByteLen()
	}
	if estimate > im.p.HAMTThreshold {
		return im.hamtDirectory(entries)
	}
	sorted := make([]DirEntry, len(entries))
	copy(sorted, entries)
	sort.Slice(sorted, func(i, j int) bool { return sorted[i].Name < sorted[j].Name })
	links := make([]dagpb.Link, len(sorted))
	for i, e := range sorted {
		links[i] = dagpb.NewLink(e.Entry.Cid, e.Name, e.Entry.Tsize)
	}
	data := Data{Type: TypeDirectory}
	return im.storeNode(dagpb.Node{Links: links, Data: data.Marshal()})
}

// Symlink stores a UnixFS symlink pointing at target.
func (im *Importer) Symlink(target string) (Entry, error) {
	data := Data{Type: TypeSymlink, Data: []byte(target)}
	return im.storeNode(dagpb.Node{Data: data.Marshal()})
}

// storeNode encodes, hashes and stores a dag-pb node.
func (im *Importer) storeNode(n dagpb.Node) (Entry, error) {
	block := n.Marshal()
	if len(block) > MaxBlockSize {
		return Entry{}, fmt.Errorf("unixfs: node of %d bytes exceeds the %d-byte block limit", len(block), MaxBlockSize)
	}
	c := dagpbCid(block)
	if err := im.put(c, block); err != nil {
		return Entry{}, err
	}
	tsize := uint64(len(block))
	for _, l := range n.Links {
		tsize += l.Tsize
	}
	return Entry{Cid: c, Tsize: tsize}, nil
}

// hamtShard is one node of a HAMT directory under construction: each slot
// is empty, holds an entry, or holds a child shard.
type hamtShard struct {
	slots []hamtSlot
}

type hamtSlot struct {
	entry *DirEntry
	child *hamtShard
}

// hamtDirectory builds the HAMT kubo (boxo's hamt package) builds for the
// same entries: names hashed with murmur3-x64-64, log2(fanout) bits of the
// hash per level from the most significant end, an entry stored in its slot
// until a second entry lands there, then both moved into a child shard.
func (im *Importer) hamtDirectory(entries []DirEntry) (Entry, error) {
	width := bits.TrailingZeros(uint(im.p.HAMTFanout))
	root := &hamtShard{slots: make([]hamtSlot, im.p.HAMTFanout)}
	for i := range entries {
		if err := root.insert(&entries[i], 0, width, im.p.HAMTFanout); err != nil {
			return Entry{}, err
		}
	}
	padLen := len(fmt.Sprintf("%X", im.p.HAMTFanout-1))
	return im.storeShard(root, padLen)
}

func (s *hamtShard) insert(e *DirEntry, depth, width, fanout int) error {
	idx, err := hamtIndex(e.Name, depth, width)
	if err != nil {
		return err
	}
	slot := &s.slots[idx]
	switch {
	case slot.child != nil:
		return slot.child.insert(e, depth+1, width, fanout)
	case slot.entry == nil:
		slot.entry = e
		return nil
	}
	child := &hamtShard{slots: make([]hamtSlot, fanout)}
	if err := child.insert(slot.entry, depth+1, width, fanout); err != nil {
		return err
	}
	if err := child.insert(e, depth+1, width, fanout); err != nil {
		return err
	}
	slot.entry, slot.child = nil, child
	return nil
}

func (im *Importer) storeShard(s *hamtShard, padLen int) (Entry, error) {
	bitfield := make([]byte, len(s.slots)/8)
	var links []dagpb.Link
	for i, slot := range s.slots {
		prefix := fmt.Sprintf("%0*X", padLen, i)
		switch {
		case slot.entry != nil:
			links = append(links, dagpb.NewLink(slot.entry.Entry.Cid, prefix+slot.entry.Name, slot.entry.Entry.Tsize))
		case slot.child != nil:
			child, err := im.storeShard(slot.child, padLen)
			if err != nil {
				return Entry{}, err
			}
			links = append(links, dagpb.NewLink(child.Cid, prefix, child.Tsize))
		default:
			continue
		}
		bitfield[len(bitfield)-1-i/8] |= 1 << (i % 8)
	}
	// The bitfield is written big-endian without leading zero bytes.
	for len(bitfield) > 0 && bitfield[0] == 0 {
		bitfield = bitfield[1:]
	}
	if len(bitfield) == 0 {
		bitfield = nil
	}
	data := Data{
		Type: TypeHAMTShard, Data: bitfield,
		HashType: HashMurmur3, HasHashType: true,
		Fanout: uint64(len(s.slots)), HasFanout: true,
	}
	return im.storeNode(dagpb.Node{Links: links, Data: data.Marshal()})
}

// errHAMTTooDeep means a name's 64-bit hash has no bits left at this depth.
var errHAMTTooDeep = errors.New("unixfs: sharded directory too deep")

// hamtIndex is the slot of name at depth in a shard of 2^width slots.
func hamtIndex(name string, depth, width int) (int, error) {
	if (depth+1)*width > 64 {
		return 0, errHAMTTooDeep
	}
	h := murmur3.Sum64([]byte(name))
	return int(h << (depth * width) >> (64 - width)), nil
}
