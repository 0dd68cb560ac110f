package chain

import (
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"testing"
)

// TestMerkleMatchesRFC6962 checks roots against the RFC 6962 reference
// values (the Certificate Transparency test vectors for the 8 leaves
// below) and every inclusion proof of every tree size up to 8 against
// transparency-dev's verifier, plus one bad vector per part of a proof.
func TestMerkleMatchesRFC6962(t *testing.T) {
	leaves := [][]byte{
		{}, {0x00}, {0x10}, {0x20, 0x21}, {0x30, 0x31},
		{0x40, 0x41, 0x42, 0x43}, {0x50, 0x51, 0x52, 0x53, 0x54, 0x55, 0x56, 0x57},
		{0x60, 0x61, 0x62, 0x63, 0x64, 0x65, 0x66, 0x67, 0x68, 0x69, 0x6a, 0x6b, 0x6c, 0x6d, 0x6e, 0x6f},
	}
	// Roots of the first n leaves, from the Certificate Transparency tests.
	want := []string{
		"6e340b9cffb37a989ca544e6bb780a2c78901d3fb33738768511a30617afa01d",
		"fac54203e7cc696cf0dfcb42c92a1d9dbaf70ad9e621f4bd8d98662f00e3c125",
		"aeb6bcfe274b70a14fb067a5e5578264db0fa9b51af5e0ba159158f329e06e77",
		"d37ee418976dd95753c1c73862b9398fa2a2cf9b4ff0fdfe8b30cd95209614b7",
		"4e3bbb1f7b478dcfe71fb631631519a3bca12c9aefca1612bfce4c13a86264d4",
		"76e67dadbcdf1e10e1b74ddc608abd2f98dfb16fbce75277b5232a127f2087ef",
		"ddb89be403809e325750d3d263cd78929c2942b7942a34b77e122c9594a74c8c",
		"5dc9da79a70659a9ad559cb701ded9a2ab9d823aad2f4960cfe370eff4604328",
	}
	if got := hex.EncodeToString(MerkleRoot(nil)); got != hex.EncodeToString(sha256.New().Sum(nil)) {
		t.Fatalf("empty root %s", got)
	}
	for n := 1; n <= len(leaves); n++ {
		root := MerkleRoot(leaves[:n])
		if got := hex.EncodeToString(root); got != want[n-1] {
			t.Fatalf("root of %d leaves: %s, want %s", n, got, want[n-1])
		}
		for i := 0; i < n; i++ {
			p, err := InclusionProof(leaves[:n], i)
			if err != nil {
				t.Fatal(err)
			}
			if err := VerifyInclusion(leaves[i], uint64(i), uint64(n), p, root); err != nil {
				t.Fatalf("leaf %d of %d: %v", i, n, err)
			}
			for name, bad := range badProofs(leaves, i, n, p, root) {
				if err := bad(); !errors.Is(err, ErrBadProof) {
					t.Fatalf("leaf %d of %d, %s: %v", i, n, name, err)
				}
			}
		}
	}
}

// badProofs mutates one part of a good proof at a time.
func badProofs(leaves [][]byte, i, n int, p [][]byte, root []byte) map[string]func() error {
	out := map[string]func() error{
		"other leaf": func() error {
			return VerifyInclusion(append([]byte{0xff}, leaves[i]...), uint64(i), uint64(n), p, root)
		},
		"index past the size": func() error { return VerifyInclusion(leaves[i], uint64(n), uint64(n), p, root) },
		"other root":          func() error { return VerifyInclusion(leaves[i], uint64(i), uint64(n), p, flip(root)) },
		"extra sibling":       func() error { return VerifyInclusion(leaves[i], uint64(i), uint64(n), append(p, root), root) },
	}
	for k := range p {
		out[fmt.Sprintf("sibling %d changed", k)] = func() error {
			q := append([][]byte(nil), p...)
			q[k] = flip(q[k])
			return VerifyInclusion(leaves[i], uint64(i), uint64(n), q, root)
		}
	}
	if n > 1 {
		// (A tree size alone is not always told apart by a path: leaf 0 of
		// 3 and of 4 have paths of one shape. The size a proof is checked
		// against comes from the signed header.)
		out["other index"] = func() error { return VerifyInclusion(leaves[i], uint64((i+1)%n), uint64(n), p, root) }
	}
	if len(p) > 0 {
		out["sibling dropped"] = func() error { return VerifyInclusion(leaves[i], uint64(i), uint64(n), p[:len(p)-1], root) }
	}
	return out
}

func flip(b []byte) []byte {
	c := append([]byte(nil), b...)
	c[0] ^= 1
	return c
}

// TestTxRootProvesEachTx checks that every transaction of a block has an
// inclusion proof against the block's TxRoot, and a changed one has none.
func TestTxRootProvesEachTx(t *testing.T) {
	blk := sampleBlock(t)
	root, err := TxRoot(blk.Txs)
	if err != nil {
		t.Fatal(err)
	}
	leaves := make([][]byte, len(blk.Txs))
	for i := range blk.Txs {
		leaves[i], _ = EncodeTx(&blk.Txs[i])
	}
	for i := range leaves {
		p, _ := InclusionProof(leaves, i)
		if err := VerifyInclusion(leaves[i], uint64(i), uint64(len(leaves)), p, root); err != nil {
			t.Fatal(err)
		}
		changed := append([]byte(nil), leaves[i]...)
		changed[len(changed)-1] ^= 1
		if err := VerifyInclusion(changed, uint64(i), uint64(len(leaves)), p, root); err == nil {
			t.Fatal("a changed tx is proven")
		}
	}
}
