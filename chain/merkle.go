package chain

import (
	"errors"
	"fmt"
	"math/bits"

	"github.com/transparency-dev/merkle/proof"
	"github.com/transparency-dev/merkle/rfc6962"
)

// Merkle trees over a block's transactions and outcomes hash as RFC 6962
// (Certificate Transparency) does: leaves are SHA-256(0x00 ‖ leaf), inner
// nodes SHA-256(0x01 ‖ left ‖ right), and a tree of n leaves splits at the
// largest power of two below n. Proofs are checked with transparency-dev's
// verifier.

// MerkleRoot returns the RFC 6962 root of leaves (the hash of the empty
// string for none).
func MerkleRoot(leaves [][]byte) []byte {
	hashes := make([][]byte, len(leaves))
	for i, l := range leaves {
		hashes[i] = rfc6962.DefaultHasher.HashLeaf(l)
	}
	return subtreeRoot(hashes)
}

func subtreeRoot(hashes [][]byte) []byte {
	switch len(hashes) {
	case 0:
		return rfc6962.DefaultHasher.EmptyRoot()
	case 1:
		return hashes[0]
	}
	k := splitPoint(len(hashes))
	return rfc6962.DefaultHasher.HashChildren(subtreeRoot(hashes[:k]), subtreeRoot(hashes[k:]))
}

// splitPoint is the largest power of two smaller than n (n ≥ 2).
func splitPoint(n int) int { return 1 << (bits.Len(uint(n-1)) - 1) }

// InclusionProof returns the audit path of leaf index among leaves
// (RFC 6962 section 2.1.1), siblings from the leaf up.
func InclusionProof(leaves [][]byte, index int) ([][]byte, error) {
	if index < 0 || index >= len(leaves) {
		return nil, fmt.Errorf("chain: leaf %d of %d", index, len(leaves))
	}
	hashes := make([][]byte, len(leaves))
	for i, l := range leaves {
		hashes[i] = rfc6962.DefaultHasher.HashLeaf(l)
	}
	return path(hashes, index), nil
}

func path(hashes [][]byte, index int) [][]byte {
	if len(hashes) <= 1 {
		return nil
	}
	k := splitPoint(len(hashes))
	if index < k {
		return append(path(hashes[:k], index), subtreeRoot(hashes[k:]))
	}
	return append(path(hashes[k:], index-k), subtreeRoot(hashes[:k]))
}

// ErrBadProof is wrapped by every inclusion-proof failure.
var ErrBadProof = errors.New("chain: inclusion proof does not hold")

// VerifyInclusion checks that leaf is leaf index of a tree of size leaves
// whose root is root.
func VerifyInclusion(leaf []byte, index, size uint64, path [][]byte, root []byte) error {
	if err := proof.VerifyInclusion(rfc6962.DefaultHasher, index, size, rfc6962.DefaultHasher.HashLeaf(leaf), path, root); err != nil {
		return fmt.Errorf("%w: %v", ErrBadProof, err)
	}
	return nil
}

// TxRoot is the Merkle root of a block's transactions: the RFC 6962 root
// over their canonical encodings, in block order.
func TxRoot(txs []Tx) ([]byte, error) {
	leaves, err := leavesOf(txs, EncodeTx)
	if err != nil {
		return nil, err
	}
	return MerkleRoot(leaves), nil
}

// leavesOf encodes each item as a Merkle leaf.
func leavesOf[T any](items []T, enc func(*T) ([]byte, error)) ([][]byte, error) {
	leaves := make([][]byte, len(items))
	for i := range items {
		b, err := enc(&items[i])
		if err != nil {
			return nil, fmt.Errorf("leaf %d: %w", i, err)
		}
		leaves[i] = b
	}
	return leaves, nil
}
