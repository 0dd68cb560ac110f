package unixfs

import (
	"context"
	"errors"
	"fmt"
	"math/bits"
	"sort"
	"strconv"
	"strings"

	"github.com/ipfs/go-cid"

	"auditnet/storage/dagpb"
)

// Getter reads blocks. Implementations return only bytes that hash to the
// CID asked for (storage.Store re-hashes every block it reads; a network
// fetcher checks every block it receives).
type Getter interface {
	Get(ctx context.Context, c cid.Cid) ([]byte, error)
}

// ErrNotUnixFS is wrapped by errors about blocks that are not the UnixFS a
// caller expected (a file where a directory was wanted, a foreign codec).
var ErrNotUnixFS = errors.New("unixfs: unexpected node")

// Kind is what a UnixFS node is to a user.
type Kind int

// Kinds of UnixFS nodes.
const (
	KindFile Kind = iota
	KindDirectory
	KindSymlink
)

func (k Kind) String() string {
	switch k {
	case KindFile:
		return "file"
	case KindDirectory:
		return "directory"
	case KindSymlink:
		return "symlink"
	}
	return "kind(" + strconv.Itoa(int(k)) + ")"
}

// Node is a decoded UnixFS node.
type Node struct {
	Cid  cid.Cid
	Kind Kind
	// Size is the file size for a file, the target length for a symlink
	// and 0 for a directory.
	Size uint64
	// Target is a symlink's target.
	Target string

	raw   []byte      // a raw leaf's bytes
	pb    dagpb.Node  // a dag-pb node
	data  Data        // its UnixFS data
	isPB  bool        // pb and data are set
	block []byte      // the block as read
	_     [0]struct{} // not comparable
}

// Load reads and decodes the UnixFS node c.
func Load(ctx context.Context, g Getter, c cid.Cid) (*Node, error) {
	block, err := g.Get(ctx, c)
	if err != nil {
		return nil, err
	}
	return decodeNode(c, block)
}

func decodeNode(c cid.Cid, block []byte) (*Node, error) {
	n := &Node{Cid: c, block: block}
	switch c.Type() {
	case cid.Raw:
		n.Kind, n.Size, n.raw = KindFile, uint64(len(block)), block
		return n, nil
	case cid.DagProtobuf:
	default:
		return nil, fmt.Errorf("%w: %s has codec 0x%x, not dag-pb or raw", ErrNotUnixFS, c, c.Type())
	}
	pb, err := dagpb.Decode(block)
	if err != nil {
		return nil, fmt.Errorf("decode %s: %w", c, err)
	}
	if pb.Data == nil {
		return nil, fmt.Errorf("%w: %s has no UnixFS data", ErrNotUnixFS, c)
	}
	data, err := DecodeData(pb.Data)
	if err != nil {
		return nil, fmt.Errorf("decode %s: %w", c, err)
	}
	n.pb, n.data, n.isPB = pb, data, true
	switch data.Type {
	case TypeFile, TypeRaw:
		n.Kind = KindFile
		n.Size = uint64(len(data.Data))
		if data.HasFileSize {
			n.Size = data.FileSize
		}
	case TypeDirectory, TypeHAMTShard:
		n.Kind = KindDirectory
		if data.Type == TypeHAMTShard {
			if _, err := shardPadLen(data); err != nil {
				return nil, fmt.Errorf("%s: %w", c, err)
			}
		}
	case TypeSymlink:
		n.Kind, n.Target, n.Size = KindSymlink, string(data.Data), uint64(len(data.Data))
	default:
		return nil, fmt.Errorf("%w: %s is UnixFS %s", ErrNotUnixFS, c, data.Type)
	}
	return n, nil
}

// Block returns the node's block bytes.
func (n *Node) Block() []byte { return n.block }

// Links returns the CIDs the node links to, in order.
func (n *Node) Links() []cid.Cid {
	out := make([]cid.Cid, len(n.pb.Links))
	for i, l := range n.pb.Links {
		out[i] = l.Hash
	}
	return out
}

// DirLink is one entry of a directory.
type DirLink struct {
	Name  string
	Cid   cid.Cid
	Tsize uint64
}

// ReadDir lists a directory's entries sorted by name, walking every shard
// of a HAMT directory.
func ReadDir(ctx context.Context, g Getter, dir *Node) ([]DirLink, error) {
	if dir.Kind != KindDirectory {
		return nil, fmt.Errorf("%w: %s is a %s, not a directory", ErrNotUnixFS, dir.Cid, dir.Kind)
	}
	var out []DirLink
	if dir.data.Type == TypeDirectory {
		for _, l := range dir.pb.Links {
			if err := checkEntryName(l.Name); err != nil {
				return nil, fmt.Errorf("directory %s: %w", dir.Cid, err)
			}
			out = append(out, DirLink{Name: l.Name, Cid: l.Hash, Tsize: l.Tsize})
		}
	} else if err := readShard(ctx, g, dir, nil, make(map[string]bool), &out); err != nil {
		return nil, err
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Name < out[j].Name })
	for i := 1; i < len(out); i++ {
		if out[i].Name == out[i-1].Name {
			return nil, fmt.Errorf("%w: directory %s names %q twice", ErrNotUnixFS, dir.Cid, out[i].Name)
		}
	}
	return out, nil
}

// maxShardDepth bounds HAMT recursion: a 64-bit hash gives at most 64/3
// levels for the narrowest fanout (8).
const maxShardDepth = 64 / 3

func readShard(ctx context.Context, g Getter, shard *Node, path []int, visited map[string]bool, out *[]DirLink) error {
	if len(path) > maxShardDepth {
		return fmt.Errorf("%w: HAMT %s deeper than %d", ErrNotUnixFS, shard.Cid, maxShardDepth)
	}
	// A real HAMT never holds one shard twice (its names are unique, so its
	// subtrees differ); a forged one that does would list the same entries
	// over and over, a few blocks standing for billions of names.
	if visited[shard.Cid.KeyString()] {
		return fmt.Errorf("%w: HAMT shard %s appears twice", ErrNotUnixFS, shard.Cid)
	}
	visited[shard.Cid.KeyString()] = true
	padLen, err := shardPadLen(shard.data)
	if err != nil {
		return fmt.Errorf("%s: %w", shard.Cid, err)
	}
	width := bits.TrailingZeros64(shard.data.Fanout)
	bitfield := shard.data.Data
	if len(bitfield) > int(shard.data.Fanout/8) {
		return fmt.Errorf("%w: HAMT %s bitfield of %d bytes", ErrNotUnixFS, shard.Cid, len(bitfield))
	}
	set := 0
	for _, b := range bitfield {
		set += bits.OnesCount8(b)
	}
	if set != len(shard.pb.Links) {
		return fmt.Errorf("%w: HAMT %s has %d links for %d set bits", ErrNotUnixFS, shard.Cid, len(shard.pb.Links), set)
	}
	last := -1
	for _, l := range shard.pb.Links {
		slot, err := shardSlot(l.Name, padLen, shard.data.Fanout)
		if err != nil {
			return fmt.Errorf("%s: %w", shard.Cid, err)
		}
		byteIdx := len(bitfield) - 1 - slot/8
		if slot <= last || byteIdx < 0 || bitfield[byteIdx]&(1<<(slot%8)) == 0 {
			return fmt.Errorf("%w: HAMT %s slot %d out of order or not in its bitfield", ErrNotUnixFS, shard.Cid, slot)
		}
		last = slot
		here := append(path[:len(path):len(path)], slot)
		if len(l.Name) > padLen {
			name := l.Name[padLen:]
			if err := checkEntryName(name); err != nil {
				return fmt.Errorf("directory %s: %w", shard.Cid, err)
			}
			for depth, want := range here {
				if idx, err := hamtIndex(name, depth, width); err != nil || idx != want {
					return fmt.Errorf("%w: HAMT %s holds %q in a slot its hash does not lead to", ErrNotUnixFS, shard.Cid, name)
				}
			}
			*out = append(*out, DirLink{Name: name, Cid: l.Hash, Tsize: l.Tsize})
			continue
		}
		child, err := loadShard(ctx, g, l.Hash, shard.data.Fanout)
		if err != nil {
			return err
		}
		if err := readShard(ctx, g, child, here, visited, out); err != nil {
			return err
		}
	}
	return nil
}

func loadShard(ctx context.Context, g Getter, c cid.Cid, fanout uint64) (*Node, error) {
	child, err := Load(ctx, g, c)
	if err != nil {
		return nil, err
	}
	if !child.isPB || child.data.Type != TypeHAMTShard || child.data.Fanout != fanout {
		return nil, fmt.Errorf("%w: %s is not a HAMT shard of fanout %d", ErrNotUnixFS, c, fanout)
	}
	return child, nil
}

// shardPadLen checks a shard's parameters and returns the length of its
// links' hex prefixes.
func shardPadLen(d Data) (int, error) {
	if !d.HasFanout || d.Fanout < 8 || d.Fanout > 1024 || d.Fanout&(d.Fanout-1) != 0 {
		return 0, fmt.Errorf("%w: HAMT fanout %d", ErrNotUnixFS, d.Fanout)
	}
	if !d.HasHashType || d.HashType != HashMurmur3 {
		return 0, fmt.Errorf("%w: HAMT hash type 0x%x", ErrNotUnixFS, d.HashType)
	}
	return len(strconv.FormatUint(d.Fanout-1, 16)), nil
}

// shardSlot parses the hex prefix of a shard link name.
func shardSlot(name string, padLen int, fanout uint64) (int, error) {
	if len(name) < padLen {
		return 0, fmt.Errorf("%w: HAMT link name %q too short", ErrNotUnixFS, name)
	}
	prefix := name[:padLen]
	if strings.ToUpper(prefix) != prefix {
		return 0, fmt.Errorf("%w: HAMT link prefix %q", ErrNotUnixFS, prefix)
	}
	v, err := strconv.ParseUint(prefix, 16, 16)
	if err != nil || v >= fanout {
		return 0, fmt.Errorf("%w: HAMT link prefix %q", ErrNotUnixFS, prefix)
	}
	return int(v), nil
}

// checkEntryName refuses names that could escape a directory when written
// to disk.
func checkEntryName(name string) error {
	if name == "" || name == "." || name == ".." || strings.ContainsAny(name, "/\x00") {
		return fmt.Errorf("%w: unsafe entry name %q", ErrNotUnixFS, name)
	}
	return nil
}

// Lookup finds the entry called name in a directory; ok is false if there
// is none. For a HAMT it follows the name's hash instead of listing.
func Lookup(ctx context.Context, g Getter, dir *Node, name string) (DirLink, bool, error) {
	l, _, ok, err := lookup(ctx, g, dir, name, nil)
	return l, ok, err
}

// lookup is Lookup that also appends to indices the position, in each
// dag-pb node it passes through, of the link it follows (one for a basic
// directory, one per shard level for a HAMT).
func lookup(ctx context.Context, g Getter, dir *Node, name string, indices []int) (DirLink, []int, bool, error) {
	if dir.Kind != KindDirectory {
		return DirLink{}, indices, false, fmt.Errorf("%w: %s is a %s, not a directory", ErrNotUnixFS, dir.Cid, dir.Kind)
	}
	if dir.data.Type == TypeDirectory {
		for i, l := range dir.pb.Links {
			if l.Name == name {
				return DirLink{Name: name, Cid: l.Hash, Tsize: l.Tsize}, append(indices, i), true, nil
			}
		}
		return DirLink{}, indices, false, nil
	}
	shard := dir
	width := bits.TrailingZeros64(shard.data.Fanout)
	for depth := 0; ; depth++ {
		padLen, err := shardPadLen(shard.data)
		if err != nil {
			return DirLink{}, indices, false, err
		}
		idx, err := hamtIndex(name, depth, width)
		if err != nil {
			return DirLink{}, indices, false, nil
		}
		next := -1
		for i := range shard.pb.Links {
			slot, err := shardSlot(shard.pb.Links[i].Name, padLen, shard.data.Fanout)
			if err != nil {
				return DirLink{}, indices, false, fmt.Errorf("%s: %w", shard.Cid, err)
			}
			if slot == idx {
				next = i
				break
			}
		}
		if next < 0 {
			return DirLink{}, indices, false, nil
		}
		l := shard.pb.Links[next]
		indices = append(indices, next)
		if len(l.Name) > padLen {
			if l.Name[padLen:] != name {
				return DirLink{}, indices, false, nil
			}
			return DirLink{Name: name, Cid: l.Hash, Tsize: l.Tsize}, indices, true, nil
		}
		if shard, err = loadShard(ctx, g, l.Hash, shard.data.Fanout); err != nil {
			return DirLink{}, indices, false, err
		}
	}
}

// ErrNoSuchEntry is returned by Resolve for a path that names nothing.
var ErrNoSuchEntry = errors.New("unixfs: no such entry")

// Resolve follows a slash-separated path of entry names from root and
// returns the node it names. An empty path names root itself.
func Resolve(ctx context.Context, g Getter, root cid.Cid, path string) (*Node, error) {
	n, _, err := ResolveLinks(ctx, g, root, path)
	return n, err
}

// ResolveLinks is Resolve that also returns the node's link path from
// root: the index of the link followed in each dag-pb node on the way,
// HAMT shards included. Following those indices from root, with no names
// and no hashing, leads to the same node. It reads the same blocks in the
// same order as Resolve.
func ResolveLinks(ctx context.Context, g Getter, root cid.Cid, path string) (*Node, []int, error) {
	n, err := Load(ctx, g, root)
	if err != nil {
		return nil, nil, err
	}
	walked := root.String()
	indices := []int{}
	for _, name := range strings.Split(path, "/") {
		if name == "" {
			continue
		}
		var l DirLink
		var ok bool
		l, indices, ok, err = lookup(ctx, g, n, name, indices)
		if err != nil {
			return nil, nil, fmt.Errorf("resolve %s/%s: %w", walked, name, err)
		}
		if !ok {
			return nil, nil, fmt.Errorf("resolve %s/%s: %w", walked, name, ErrNoSuchEntry)
		}
		if n, err = Load(ctx, g, l.Cid); err != nil {
			return nil, nil, err
		}
		walked += "/" + name
	}
	return n, indices, nil
}

// FileData returns the file bytes a file node holds itself: all of a raw
// leaf, the data field of a dag-pb file node (its children hold the rest).
func (n *Node) FileData() []byte {
	if n.isPB {
		return n.data.Data
	}
	return n.raw
}

// DecodeNode decodes block, the bytes of c, as a UnixFS node. The caller
// has checked that block hashes to c.
func DecodeNode(c cid.Cid, block []byte) (*Node, error) { return decodeNode(c, block) }
