package chain

import (
	"bytes"
	"cmp"
	"crypto/sha256"
	"encoding/binary"
	"fmt"
	"math/bits"
	"slices"
	"sort"
)

// State is the chain's mutable state as key-value pairs with a root hash
// that commits to all of them. The state machine reads and writes it; part
// 2 of the chain work persists it in goleveldb behind this interface.
type State interface {
	Get(key []byte) ([]byte, bool)
	Set(key, value []byte)
	Delete(key []byte)
	// Root is the authenticated root of the current contents.
	Root() [32]byte
	// Clone returns an independent copy: later writes to either are not
	// seen by the other. Consensus executes a proposed block on a clone of
	// the committed state and keeps the clone if the block commits.
	Clone() State
}

// MemState is a State in memory: a compressed binary Merkle trie (a
// Patricia trie over SHA-256(key), with inner nodes only where keys
// branch) whose leaves hold the keys and values. An update copies and
// rehashes only the path from its leaf to the root, O(log n) nodes for n
// keys; nodes are never changed once shared, so Clone is O(1) and a clone
// and its original share every node neither has changed since. (A node a
// state made since it was last cloned is its own: later updates change it
// in place rather than copy it again, so a block's updates copy the top
// of the trie once, not once per key.) The root depends only on the
// contents, never on the order of updates. A MemState is not safe for
// concurrent use; clones may be used concurrently with each other only if
// neither is written.
//
// Hashes: a leaf is SHA-256(0x00 ‖ SHA-256(key) ‖ SHA-256(value)), an
// inner node SHA-256(0x01 ‖ left ‖ right), the empty state 32 zero bytes.
type MemState struct {
	root *trieNode
	size int
	// hashed counts node hashes computed, for tests of the update cost.
	hashed int
	// owner marks the nodes this state made since it was last cloned,
	// which it may change in place; nil until it makes one.
	owner *owner
}

// owner is the mark of one state's own nodes (not empty, so that two are
// never at one address).
type owner struct{ _ byte }

// NewMemState returns an empty state.
func NewMemState() *MemState { return &MemState{} }

// Clone implements State. Both states give up their own nodes: from now
// on the two share them, and neither may change them.
func (s *MemState) Clone() State {
	s.owner = nil
	c := *s
	return &c
}

// mark returns the mark of s's own nodes.
func (s *MemState) mark() *owner {
	if s.owner == nil {
		s.owner = &owner{}
	}
	return s.owner
}

// Len is the number of keys.
func (s *MemState) Len() int { return s.size }

type trieNode struct {
	// A leaf: its key, value and their hashes.
	leaf bool
	// hashed is set once hash is computed; a node is immutable, so its
	// hash never goes stale.
	hashed     bool
	keyHash    [32]byte
	valueHash  [32]byte
	key, value []byte
	// An inner node: the bit it branches on, its two sides, and the key
	// hash of its leftmost leaf (every key below shares its bits before
	// bit).
	bit         int
	left, right *trieNode
	first       *[32]byte
	hash        [32]byte
	// owner is the state that made the node, while it has not been
	// cloned since (nil when a builder made it).
	owner *owner
}

// inner returns a new inner node.
func inner(bit int, left, right *trieNode) *trieNode {
	return &trieNode{bit: bit, left: left, right: right, first: left.anyKey()}
}

// inner returns the inner node over left and right at bit: n itself,
// changed, if s owns it, else a new node of s's.
func (s *MemState) inner(n *trieNode, bit int, left, right *trieNode) *trieNode {
	if n != nil && n.owner != nil && n.owner == s.owner {
		n.bit, n.left, n.right, n.first, n.hashed = bit, left, right, left.anyKey(), false
		return n
	}
	c := inner(bit, left, right)
	c.owner = s.mark()
	return c
}

func bitOf(k *[32]byte, i int) int { return int(k[i/8]>>(7-uint(i%8))) & 1 }

// firstDiff is the first bit at or after from where a and b differ, or
// 256.
func firstDiff(a, b *[32]byte, from int) int {
	for i := from / 8; i < 32; i++ {
		x := a[i] ^ b[i]
		if i == from/8 {
			x &= 0xff >> uint(from%8)
		}
		if x != 0 {
			return i*8 + bits.LeadingZeros8(x)
		}
	}
	return 256
}

// anyKey returns the key hash of a leaf below n.
func (n *trieNode) anyKey() *[32]byte {
	if n.leaf {
		return &n.keyHash
	}
	return n.first
}

// Get implements State.
func (s *MemState) Get(key []byte) ([]byte, bool) {
	kh := sha256.Sum256(key)
	n := s.root
	for n != nil && !n.leaf {
		if bitOf(&kh, n.bit) == 0 {
			n = n.left
		} else {
			n = n.right
		}
	}
	if n == nil || n.keyHash != kh {
		return nil, false
	}
	return n.value, true
}

// Set implements State.
func (s *MemState) Set(key, value []byte) {
	leaf := &trieNode{leaf: true, keyHash: sha256.Sum256(key), valueHash: sha256.Sum256(value),
		key: append([]byte(nil), key...), value: append([]byte(nil), value...)}
	var added bool
	s.root, added, _ = s.insert(s.root, leaf, 0)
	if added {
		s.size++
	}
}

// Delete implements State.
func (s *MemState) Delete(key []byte) {
	var removed bool
	s.root, removed = s.remove(s.root, sha256.Sum256(key))
	if removed {
		s.size--
	}
}

// insert returns n with leaf put in it (a new or, if s's own, changed node
// wherever it changed), whether the key is new and whether anything
// changed.
func (s *MemState) insert(n, leaf *trieNode, depth int) (out *trieNode, added, changed bool) {
	if n == nil {
		return leaf, true, true
	}
	if n.leaf {
		if n.keyHash == leaf.keyHash {
			if n.valueHash == leaf.valueHash {
				return n, false, false
			}
			return leaf, false, true
		}
		return s.branch(n, leaf, firstDiff(&n.keyHash, &leaf.keyHash, depth)), true, true
	}
	if d := firstDiff(n.anyKey(), &leaf.keyHash, depth); d < n.bit {
		// The key leaves this subtree's shared prefix above its branch.
		return s.branch(n, leaf, d), true, true
	}
	left, right := n.left, n.right
	if bitOf(&leaf.keyHash, n.bit) == 0 {
		left, added, changed = s.insert(n.left, leaf, n.bit+1)
	} else {
		right, added, changed = s.insert(n.right, leaf, n.bit+1)
	}
	if !changed {
		return n, false, false
	}
	return s.inner(n, n.bit, left, right), added, true
}

// branch joins a subtree and a new leaf under a new inner node at bit d,
// where they first differ.
func (s *MemState) branch(old, leaf *trieNode, d int) *trieNode {
	if bitOf(&leaf.keyHash, d) == 0 {
		return s.inner(nil, d, leaf, old)
	}
	return s.inner(nil, d, old, leaf)
}

// remove returns n without key (a new or, if s's own, changed node
// wherever it changed) and whether the key was there.
func (s *MemState) remove(n *trieNode, key [32]byte) (*trieNode, bool) {
	if n == nil {
		return nil, false
	}
	if n.leaf {
		if n.keyHash == key {
			return nil, true
		}
		return n, false
	}
	left, right := n.left, n.right
	var removed bool
	if bitOf(&key, n.bit) == 0 {
		left, removed = s.remove(n.left, key)
	} else {
		right, removed = s.remove(n.right, key)
	}
	switch {
	case !removed:
		return n, false
	case left == nil:
		return right, true // an inner node with one side collapses into it
	case right == nil:
		return left, true
	}
	return s.inner(n, n.bit, left, right), true
}

// Root implements State.
func (s *MemState) Root() [32]byte {
	if s.root == nil {
		return [32]byte{}
	}
	return s.rehash(s.root)
}

func (s *MemState) rehash(n *trieNode) [32]byte {
	if n.hashed {
		return n.hash
	}
	var buf [1 + 64]byte
	if n.leaf {
		buf[0] = 0
		copy(buf[1:], n.keyHash[:])
		copy(buf[33:], n.valueHash[:])
	} else {
		buf[0] = 1
		l, r := s.rehash(n.left), s.rehash(n.right)
		copy(buf[1:], l[:])
		copy(buf[33:], r[:])
	}
	n.hash, n.hashed = sha256.Sum256(buf[:]), true
	s.hashed++
	return n.hash
}

// Keys returns the state's keys in order (for tests and dumps).
func (s *MemState) Keys() []string {
	var out []string
	var walk func(n *trieNode)
	walk = func(n *trieNode) {
		switch {
		case n == nil:
		case n.leaf:
			out = append(out, string(n.key))
		default:
			walk(n.left)
			walk(n.right)
		}
	}
	walk(s.root)
	sort.Strings(out)
	return out
}

// Diff returns what changed from old to s: the keys s holds with another
// value than old or that old lacks (set, with s's values), and the keys
// old holds that s lacks (deleted). It walks both tries together and
// skips every subtree they share (or, once hashed, hold the same
// contents), so for a state derived from old by updates (a clone written
// to) it costs O(c·log n) for c changed keys, not O(n). The values are
// s's own: callers must not modify them.
func (s *MemState) Diff(old *MemState) (set map[string][]byte, deleted []string) {
	set = map[string][]byte{}
	d := differ{set: set}
	d.nodes(s.root, old.root, 0)
	return set, d.deleted
}

type differ struct {
	set     map[string][]byte
	deleted []string
	// visited counts the node pairs compared, for tests of the cost.
	visited int
}

// span is the bit a node branches on, 256 for a leaf.
func span(n *trieNode) int {
	if n.leaf {
		return 256
	}
	return n.bit
}

// nodes diffs a (new) against b (old), two subtrees whose keys agree on
// every bit before from.
func (d *differ) nodes(a, b *trieNode, from int) {
	d.visited++
	switch {
	case a == b:
		return
	case a == nil:
		d.removed(b)
		return
	case b == nil:
		d.added(a)
		return
	case a.hashed && b.hashed && a.hash == b.hash:
		return // the same contents, built apart
	}
	sa, sb := span(a), span(b)
	if sa != sb || a.leaf || (a.first != b.first && a.left != b.left && a.right != b.right) {
		// Unless they share a side or their leftmost leaf, the two may
		// cover different prefixes: compare them up to the higher
		// branch.
		if p := firstDiff(a.anyKey(), b.anyKey(), from); p < min(sa, sb) {
			d.added(a)
			d.removed(b)
			return
		}
	}
	switch {
	case sa == sb && a.leaf: // one key in both
		if a.valueHash != b.valueHash {
			d.set[string(a.key)] = a.value
		}
	case sa == sb:
		d.nodes(a.left, b.left, sa+1)
		d.nodes(a.right, b.right, sa+1)
	case sa < sb: // b lies under one side of a
		if bitOf(b.anyKey(), sa) == 0 {
			d.nodes(a.left, b, sa+1)
			d.added(a.right)
		} else {
			d.added(a.left)
			d.nodes(a.right, b, sa+1)
		}
	default: // a lies under one side of b
		if bitOf(a.anyKey(), sb) == 0 {
			d.nodes(a, b.left, sb+1)
			d.removed(b.right)
		} else {
			d.removed(b.left)
			d.nodes(a, b.right, sb+1)
		}
	}
}

func (d *differ) added(n *trieNode) {
	if n.leaf {
		d.set[string(n.key)] = n.value
		return
	}
	d.added(n.left)
	d.added(n.right)
}

func (d *differ) removed(n *trieNode) {
	if n.leaf {
		d.deleted = append(d.deleted, string(n.key))
		return
	}
	d.removed(n.left)
	d.removed(n.right)
}

// MemStateBuilder builds a MemState from its keys and values, given in
// any order: loading a stored state this way sorts the leaves once and
// builds each inner node once, where as many Set calls would copy a path
// per key. The zero value is ready to use.
type MemStateBuilder struct {
	// Leaves are allocated in chunks that never move, so that each is
	// allocated and copied once.
	chunk  []trieNode
	leaves []sortLeaf
	arena  []byte
}

// sortLeaf is a leaf with the first bytes of its key hash beside it, so
// that sorting mostly compares integers in place.
type sortLeaf struct {
	prefix uint64
	n      *trieNode
}

// Sizes of the blocks leaves, keys and values are allocated in.
const (
	builderChunk = 4096
	builderArena = 1 << 20
)

// Add adds a key and its value; both are copied. Each key may be added
// once.
func (b *MemStateBuilder) Add(key, value []byte) {
	if len(b.chunk) == cap(b.chunk) {
		b.chunk = make([]trieNode, 0, builderChunk)
	}
	b.chunk = append(b.chunk, trieNode{leaf: true, keyHash: sha256.Sum256(key), valueHash: sha256.Sum256(value),
		key: b.copy(key), value: b.copy(value)})
	n := &b.chunk[len(b.chunk)-1]
	b.leaves = append(b.leaves, sortLeaf{prefix: binary.BigEndian.Uint64(n.keyHash[:8]), n: n})
}

// copy copies p into the arena, so that a million small keys are not a
// million allocations.
func (b *MemStateBuilder) copy(p []byte) []byte {
	if len(p) > builderArena/8 {
		return append([]byte(nil), p...)
	}
	if len(b.arena)+len(p) > cap(b.arena) {
		b.arena = make([]byte, 0, builderArena)
	}
	n := len(b.arena)
	b.arena = append(b.arena, p...)
	return b.arena[n : n+len(p) : n+len(p)]
}

// Len is the number of keys added.
func (b *MemStateBuilder) Len() int { return len(b.leaves) }

// Build returns the state of the keys added; an error if a key was added
// twice. The builder is empty afterwards.
func (b *MemStateBuilder) Build() (*MemState, error) {
	leaves := b.leaves
	*b = MemStateBuilder{}
	slices.SortFunc(leaves, func(x, y sortLeaf) int {
		if x.prefix != y.prefix {
			return cmp.Compare(x.prefix, y.prefix)
		}
		return bytes.Compare(x.n.keyHash[:], y.n.keyHash[:])
	})
	sorted := make([]*trieNode, len(leaves))
	for i, l := range leaves {
		sorted[i] = l.n
		if i > 0 && l.n.keyHash == sorted[i-1].keyHash {
			return nil, fmt.Errorf("chain: state key %q added twice", l.n.key)
		}
	}
	s := &MemState{size: len(sorted)}
	if len(sorted) > 0 {
		nodes := make([]trieNode, len(sorted)-1)
		s.root = buildTrie(sorted, 0, &nodes)
	}
	return s, nil
}

// buildTrie returns the trie of leaves, sorted by key hash and agreeing
// on every bit before from, taking its inner nodes from the front of
// nodes.
func buildTrie(leaves []*trieNode, from int, nodes *[]trieNode) *trieNode {
	if len(leaves) == 1 {
		return leaves[0]
	}
	d := firstDiff(&leaves[0].keyHash, &leaves[len(leaves)-1].keyHash, from)
	split := sort.Search(len(leaves), func(i int) bool { return bitOf(&leaves[i].keyHash, d) == 1 })
	n := &(*nodes)[0]
	*nodes = (*nodes)[1:]
	n.bit = d
	n.left = buildTrie(leaves[:split], d+1, nodes)
	n.right = buildTrie(leaves[split:], d+1, nodes)
	n.first = n.left.anyKey()
	return n
}
