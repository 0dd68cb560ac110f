package chain

import (
	"crypto/sha256"
	"math/bits"
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
}

// MemState is a State in memory: a map for the values and a compressed
// binary Merkle trie (a Patricia trie over SHA-256(key), with inner nodes
// only where keys branch) for the root. An update rehashes only the path
// from its leaf to the root, O(log n) nodes for n keys, and the root
// depends only on the contents, never on the order of updates.
//
// Hashes: a leaf is SHA-256(0x00 ‖ SHA-256(key) ‖ SHA-256(value)), an
// inner node SHA-256(0x01 ‖ left ‖ right), the empty state 32 zero bytes.
type MemState struct {
	values map[string][]byte
	root   *trieNode
	// hashed counts node hashes computed, for tests of the update cost.
	hashed int
}

// NewMemState returns an empty state.
func NewMemState() *MemState { return &MemState{values: make(map[string][]byte)} }

type trieNode struct {
	// A leaf: its key and value hashes.
	leaf       bool
	key, value [32]byte
	// An inner node: the bit it branches on, a key below it (every key
	// below shares its bits before bit), and its two sides.
	bit         int
	left, right *trieNode
	hash        [32]byte
	dirty       bool
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

func (n *trieNode) anyKey() *[32]byte {
	for !n.leaf {
		n = n.left
	}
	return &n.key
}

// Get implements State.
func (s *MemState) Get(key []byte) ([]byte, bool) {
	v, ok := s.values[string(key)]
	return v, ok
}

// Set implements State.
func (s *MemState) Set(key, value []byte) {
	s.values[string(key)] = append([]byte(nil), value...)
	s.root = insert(s.root, sha256.Sum256(key), sha256.Sum256(value), 0)
}

// Delete implements State.
func (s *MemState) Delete(key []byte) {
	if _, ok := s.values[string(key)]; !ok {
		return
	}
	delete(s.values, string(key))
	s.root = remove(s.root, sha256.Sum256(key))
}

func insert(n *trieNode, key, value [32]byte, depth int) *trieNode {
	if n == nil {
		return &trieNode{leaf: true, key: key, value: value, dirty: true}
	}
	if n.leaf {
		if n.key == key {
			if n.value != value {
				n.value, n.dirty = value, true
			}
			return n
		}
		return branch(n, &trieNode{leaf: true, key: key, value: value, dirty: true}, firstDiff(&n.key, &key, depth))
	}
	if d := firstDiff(n.anyKey(), &key, depth); d < n.bit {
		// The key leaves this subtree's shared prefix above its branch.
		return branch(n, &trieNode{leaf: true, key: key, value: value, dirty: true}, d)
	}
	if bitOf(&key, n.bit) == 0 {
		n.left = insert(n.left, key, value, n.bit+1)
	} else {
		n.right = insert(n.right, key, value, n.bit+1)
	}
	n.dirty = true
	return n
}

// branch joins a subtree and a new leaf under an inner node at bit d,
// where they first differ.
func branch(old, leaf *trieNode, d int) *trieNode {
	in := &trieNode{bit: d, dirty: true, left: old, right: leaf}
	if bitOf(&leaf.key, d) == 0 {
		in.left, in.right = leaf, old
	}
	return in
}

func remove(n *trieNode, key [32]byte) *trieNode {
	if n == nil {
		return nil
	}
	if n.leaf {
		if n.key == key {
			return nil
		}
		return n
	}
	if bitOf(&key, n.bit) == 0 {
		n.left = remove(n.left, key)
	} else {
		n.right = remove(n.right, key)
	}
	switch {
	case n.left == nil:
		return n.right // an inner node with one side collapses into it
	case n.right == nil:
		return n.left
	}
	n.dirty = true
	return n
}

// Root implements State.
func (s *MemState) Root() [32]byte {
	if s.root == nil {
		return [32]byte{}
	}
	return s.rehash(s.root)
}

func (s *MemState) rehash(n *trieNode) [32]byte {
	if !n.dirty {
		return n.hash
	}
	var buf [1 + 64]byte
	if n.leaf {
		buf[0] = 0
		copy(buf[1:], n.key[:])
		copy(buf[33:], n.value[:])
	} else {
		buf[0] = 1
		l, r := s.rehash(n.left), s.rehash(n.right)
		copy(buf[1:], l[:])
		copy(buf[33:], r[:])
	}
	n.hash, n.dirty = sha256.Sum256(buf[:]), false
	s.hashed++
	return n.hash
}

// Keys returns the state's keys in order (for tests and dumps).
func (s *MemState) Keys() []string {
	out := make([]string, 0, len(s.values))
	for k := range s.values {
		out = append(out, k)
	}
	sort.Strings(out)
	return out
}
