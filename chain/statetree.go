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
	// Clone returns an independent copy: later writes to either are not
	// seen by the other. Consensus executes a proposed block on a clone of
	// the committed state and keeps the clone if the block commits.
	Clone() State
}

// MemState is a State in memory: a compressed binary Merkle trie (a
// Patricia trie over SHA-256(key), with inner nodes only where keys
// branch) whose leaves hold the keys and values. An update copies and
// rehashes only the path from its leaf to the root, O(log n) nodes for n
// keys; nodes are never changed once built, so Clone is O(1) and a clone
// and its original share every node neither has changed since. The root
// depends only on the contents, never on the order of updates. A MemState
// is not safe for concurrent use; clones may be used concurrently with
// each other only if neither is written.
//
// Hashes: a leaf is SHA-256(0x00 ‖ SHA-256(key) ‖ SHA-256(value)), an
// inner node SHA-256(0x01 ‖ left ‖ right), the empty state 32 zero bytes.
type MemState struct {
	root *trieNode
	size int
	// hashed counts node hashes computed, for tests of the update cost.
	hashed int
}

// NewMemState returns an empty state.
func NewMemState() *MemState { return &MemState{} }

// Clone implements State.
func (s *MemState) Clone() State { c := *s; return &c }

// Len is the number of keys.
func (s *MemState) Len() int { return s.size }

type trieNode struct {
	// A leaf: its key, value and their hashes.
	leaf       bool
	keyHash    [32]byte
	valueHash  [32]byte
	key, value []byte
	// An inner node: the bit it branches on, a key below it (every key
	// below shares its bits before bit), and its two sides.
	bit         int
	left, right *trieNode
	// hash is the node's hash once computed (hashed true); a node is
	// immutable, so it never goes stale.
	hash   [32]byte
	hashed bool
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
	return &n.keyHash
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
	s.root, added = insert(s.root, leaf, 0)
	if added {
		s.size++
	}
}

// Delete implements State.
func (s *MemState) Delete(key []byte) {
	var removed bool
	s.root, removed = remove(s.root, sha256.Sum256(key))
	if removed {
		s.size--
	}
}

// insert returns n with leaf put in it (a new node wherever it changed)
// and whether the key is new.
func insert(n, leaf *trieNode, depth int) (*trieNode, bool) {
	if n == nil {
		return leaf, true
	}
	if n.leaf {
		if n.keyHash == leaf.keyHash {
			if n.valueHash == leaf.valueHash {
				return n, false
			}
			return leaf, false
		}
		return branch(n, leaf, firstDiff(&n.keyHash, &leaf.keyHash, depth)), true
	}
	if d := firstDiff(n.anyKey(), &leaf.keyHash, depth); d < n.bit {
		// The key leaves this subtree's shared prefix above its branch.
		return branch(n, leaf, d), true
	}
	c := &trieNode{bit: n.bit, left: n.left, right: n.right}
	var added bool
	if bitOf(&leaf.keyHash, n.bit) == 0 {
		c.left, added = insert(n.left, leaf, n.bit+1)
		if c.left == n.left {
			return n, false
		}
	} else {
		c.right, added = insert(n.right, leaf, n.bit+1)
		if c.right == n.right {
			return n, false
		}
	}
	return c, added
}

// branch joins a subtree and a new leaf under an inner node at bit d,
// where they first differ.
func branch(old, leaf *trieNode, d int) *trieNode {
	in := &trieNode{bit: d, left: old, right: leaf}
	if bitOf(&leaf.keyHash, d) == 0 {
		in.left, in.right = leaf, old
	}
	return in
}

// remove returns n without key (a new node wherever it changed) and
// whether the key was there.
func remove(n *trieNode, key [32]byte) (*trieNode, bool) {
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
		left, removed = remove(n.left, key)
	} else {
		right, removed = remove(n.right, key)
	}
	switch {
	case !removed:
		return n, false
	case left == nil:
		return right, true // an inner node with one side collapses into it
	case right == nil:
		return left, true
	}
	return &trieNode{bit: n.bit, left: left, right: right}, true
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
