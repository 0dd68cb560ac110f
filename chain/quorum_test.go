package chain

import (
	"errors"
	"testing"

	"github.com/ipfs/go-cid"
)

// TestQuorumIntersects checks q = ⌈(n+f+1)/2⌉ for n = 4..40: two quorums
// always share f+1 validators, a quorum never needs a faulty one, and it
// differs from 2f+1 exactly where DESIGN.md says it does.
func TestQuorumIntersects(t *testing.T) {
	for n := 4; n <= 40; n++ {
		f, q := Faults(n), Quorum(n)
		if 2*q-n < f+1 {
			t.Fatalf("n=%d: two quorums of %d share %d < f+1=%d", n, q, 2*q-n, f+1)
		}
		if q > n-f {
			t.Fatalf("n=%d: quorum %d needs faulty validators (n-f=%d)", n, q, n-f)
		}
	}
	for n, want := range map[int]int{4: 3, 5: 4, 6: 4, 7: 5, 8: 6, 9: 6, 10: 7} {
		if got := Quorum(n); got != want {
			t.Errorf("Quorum(%d) = %d, want %d", n, got, want)
		}
	}
}

// TestVerifyCommitCert builds a certificate of a 4-validator epoch and
// checks each way one can be wrong: q−1 signatures, a duplicate signer, a
// signer from another epoch's set, a prepare vote, a vote for another
// block or view, a forged signature, the set of another epoch.
func TestVerifyCommitCert(t *testing.T) {
	var keys []Signer
	var ids [][]byte
	for i := byte(10); i < 14; i++ {
		sk, id := testKey(t, i)
		keys, ids = append(keys, sk), append(ids, id)
	}
	outsiderKey, _ := testKey(t, 99)
	set := NewValidatorSet(2, ids...)
	block := testRoot("block").Cid
	vote := func(sk Signer, mutate func(*Vote)) SignedVote {
		v := Vote{Chain: "c", Epoch: 2, View: 5, Seq: 40, Phase: PhaseCommit, Block: testRoot("block")}
		if mutate != nil {
			mutate(&v)
		}
		sv, err := SignVote(v, sk)
		if err != nil {
			t.Fatal(err)
		}
		return sv
	}
	good := func() *CommitCert {
		c := &CommitCert{Height: 40, View: 5, Block: testRoot("block")}
		for _, sk := range keys[:3] {
			c.Votes = append(c.Votes, vote(sk, nil))
		}
		return c
	}
	if err := VerifyCommitCert(good(), "c", 2, 40, block, set); err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		name   string
		mutate func(*CommitCert) (epoch uint64, blk cid.Cid, s ValidatorSet)
	}{
		{"q-1 signatures", func(c *CommitCert) (uint64, cid.Cid, ValidatorSet) { c.Votes = c.Votes[:2]; return 2, block, set }},
		{"duplicate signer", func(c *CommitCert) (uint64, cid.Cid, ValidatorSet) {
			c.Votes[2] = c.Votes[0]
			return 2, block, set
		}},
		{"signer outside the set", func(c *CommitCert) (uint64, cid.Cid, ValidatorSet) {
			c.Votes[2] = vote(outsiderKey, nil)
			return 2, block, set
		}},
		{"prepare vote", func(c *CommitCert) (uint64, cid.Cid, ValidatorSet) {
			c.Votes[2] = vote(keys[2], func(v *Vote) { v.Phase = PhasePrepare })
			return 2, block, set
		}},
		{"vote for another view", func(c *CommitCert) (uint64, cid.Cid, ValidatorSet) {
			c.Votes[2] = vote(keys[2], func(v *Vote) { v.View = 6 })
			return 2, block, set
		}},
		{"vote of another epoch", func(c *CommitCert) (uint64, cid.Cid, ValidatorSet) {
			c.Votes[2] = vote(keys[2], func(v *Vote) { v.Epoch = 1 })
			return 2, block, set
		}},
		{"forged signature", func(c *CommitCert) (uint64, cid.Cid, ValidatorSet) {
			c.Votes[2].Sig[0] ^= 1
			return 2, block, set
		}},
		{"another block", func(c *CommitCert) (uint64, cid.Cid, ValidatorSet) { return 2, testRoot("other").Cid, set }},
		{"the set of another epoch", func(c *CommitCert) (uint64, cid.Cid, ValidatorSet) {
			return 2, block, NewValidatorSet(1, ids...)
		}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			c := good()
			epoch, blk, s := tc.mutate(c)
			if err := VerifyCommitCert(c, "c", epoch, 40, blk, s); !errors.Is(err, ErrBadCert) {
				t.Fatalf("%v", err)
			}
		})
	}
}

// TestValidatorSetHash checks that the set hash ignores insertion order
// and the epoch, and changes with the members.
func TestValidatorSetHash(t *testing.T) {
	_, a := testKey(t, 1)
	_, b := testKey(t, 2)
	_, c := testKey(t, 3)
	h1 := NewValidatorSet(1, a, b, c).Hash()
	if string(h1) != string(NewValidatorSet(7, c, a, b).Hash()) {
		t.Fatal("hash depends on order or epoch")
	}
	if string(h1) == string(NewValidatorSet(1, a, b).Hash()) {
		t.Fatal("hash ignores a member")
	}
}
