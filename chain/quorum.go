package chain

import (
	"errors"
	"fmt"
	"sort"

	"github.com/ipfs/go-cid"
)

// Faults is f = ⌊(n−1)/3⌋, the validators that may be faulty in a set of n.
func Faults(n int) int { return (n - 1) / 3 }

// Quorum is q = ⌈(n+f+1)/2⌉ (DESIGN.md, "Quorum"): any two quorums share at
// least f+1 validators, one of them honest, for every n ≥ 4 (not "2f+1",
// which is smaller for n = 5, 6, 8, 9).
func Quorum(n int) int { return (n + Faults(n) + 2) / 2 }

// ValidatorSet is the set of validators of one epoch, by peer ID bytes.
type ValidatorSet struct {
	Epoch   uint64
	Members map[string]bool
}

// NewValidatorSet returns the set of the given peer IDs for an epoch.
func NewValidatorSet(epoch uint64, ids ...[]byte) ValidatorSet {
	s := ValidatorSet{Epoch: epoch, Members: make(map[string]bool, len(ids))}
	for _, id := range ids {
		s.Members[string(id)] = true
	}
	return s
}

// ErrBadCert is wrapped by every certificate failure.
var ErrBadCert = errors.New("chain: commit certificate does not hold")

// VerifyCommitCert checks that cert proves block (a header of the given
// chain, epoch and height) committed: at least Quorum(n) distinct members
// of the epoch's set each signed a COMMIT vote for exactly that chain,
// epoch, view, height and block.
func VerifyCommitCert(cert *CommitCert, chainID string, epoch, height uint64, block cid.Cid, set ValidatorSet) error {
	return VerifyCommitCertWith(cert, chainID, epoch, height, block, set, Quorum(len(set.Members)), (*SignedVote).Verify)
}

// VerifyCommitCertWith is VerifyCommitCert with the quorum and the vote
// signature check given. Consensus passes a check that remembers the
// votes it verified already; only tests that show the consensus checker
// catches a broken quorum pass anything but Quorum(n).
func VerifyCommitCertWith(cert *CommitCert, chainID string, epoch, height uint64, block cid.Cid, set ValidatorSet, q int, verify func(*SignedVote) error) error {
	if set.Epoch != epoch {
		return fmt.Errorf("%w: checked against the set of epoch %d, block is in epoch %d", ErrBadCert, set.Epoch, epoch)
	}
	if cert.Height != height || !cert.Block.Equals(block) {
		return fmt.Errorf("%w: certificate is for another block", ErrBadCert)
	}
	want := Vote{Chain: chainID, Epoch: epoch, View: cert.View, Seq: height, Phase: PhaseCommit}
	signers := make(map[string]bool, len(cert.Votes))
	for i := range cert.Votes {
		sv := &cert.Votes[i]
		v := sv.Vote
		if v.Chain != want.Chain || v.Epoch != want.Epoch || v.View != want.View || v.Seq != want.Seq || v.Phase != want.Phase || !v.Block.Equals(block) {
			return fmt.Errorf("%w: vote %d is not a commit vote for this block", ErrBadCert, i)
		}
		if !set.Members[string(sv.Signer)] {
			return fmt.Errorf("%w: vote %d is by a signer outside epoch %d's set", ErrBadCert, i, epoch)
		}
		if signers[string(sv.Signer)] {
			return fmt.Errorf("%w: vote %d repeats a signer", ErrBadCert, i)
		}
		if err := verify(sv); err != nil {
			return fmt.Errorf("%w: vote %d: %v", ErrBadCert, i, err)
		}
		signers[string(sv.Signer)] = true
	}
	if len(signers) < q {
		return fmt.Errorf("%w: %d signers, quorum is %d of %d", ErrBadCert, len(signers), q, len(set.Members))
	}
	return nil
}

// IDs returns the set's members in byte order.
func (s ValidatorSet) IDs() [][]byte {
	out := make([][]byte, 0, len(s.Members))
	for id := range s.Members {
		out = append(out, []byte(id))
	}
	sort.Slice(out, func(i, j int) bool { return string(out[i]) < string(out[j]) })
	return out
}

// Hash commits to the set's members (not its epoch): the RFC 6962 root of
// their peer IDs in byte order. Headers carry the next set's hash.
func (s ValidatorSet) Hash() []byte { return MerkleRoot(s.IDs()) }
