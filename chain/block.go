package chain

import (
	"errors"
	"fmt"

	"github.com/ipfs/go-cid"

	"auditnet/internal/dagcbor"
)

// Phase is the consensus phase a vote belongs to.
type Phase string

// Phases of PBFT's normal case.
const (
	PhasePrepare Phase = "prepare"
	PhaseCommit  Phase = "commit"
)

// Vote is what a validator signs for a phase: chain id, epoch, view,
// sequence (the height), phase and the block's CID (DESIGN.md, "What is
// signed").
type Vote struct {
	Chain string       `cbor:"chain"`
	Epoch uint64       `cbor:"epoch"`
	View  uint64       `cbor:"view"`
	Seq   uint64       `cbor:"seq"`
	Phase Phase        `cbor:"phase"`
	Block dagcbor.Link `cbor:"block"`
}

// SignedVote is a vote with its validator's signature.
type SignedVote struct {
	Vote   Vote   `cbor:"vote"`
	Signer []byte `cbor:"signer"`
	Sig    []byte `cbor:"sig"`
}

// SignVote signs v with s.
func SignVote(v Vote, s Signer) (SignedVote, error) {
	msg, err := signingBytes(TagVote, &v)
	if err != nil {
		return SignedVote{}, err
	}
	sig, err := s.Sign(msg)
	if err != nil {
		return SignedVote{}, fmt.Errorf("sign vote: %w", err)
	}
	return SignedVote{Vote: v, Signer: s.ID(), Sig: sig}, nil
}

// Verify checks the vote's signature.
func (sv *SignedVote) Verify() error {
	msg, err := signingBytes(TagVote, &sv.Vote)
	if err != nil {
		return err
	}
	return verifyBy(sv.Signer, msg, sv.Sig)
}

// Conflicts reports whether two signed votes are an equivocation: one
// signer, one slot (chain, epoch, view, sequence, phase), two blocks.
func Conflicts(a, b *SignedVote) bool {
	va, vb := a.Vote, b.Vote
	return string(a.Signer) == string(b.Signer) && va.Chain == vb.Chain && va.Epoch == vb.Epoch &&
		va.View == vb.View && va.Seq == vb.Seq && va.Phase == vb.Phase && !va.Block.Equals(vb.Block.Cid)
}

// Header is a block's header; its CID is the block's CID.
type Header struct {
	Chain  string `cbor:"chain"`
	Epoch  uint64 `cbor:"epoch"`
	Height uint64 `cbor:"height"`
	// Prev is the previous block's CID (the genesis CID for height 1).
	Prev dagcbor.Link `cbor:"prev"`
	// Time is the block time, ms since 1970 UTC.
	Time int64 `cbor:"time"`
	// TxRoot is the RFC 6962 Merkle root of the transactions, ResultsRoot
	// that of their outcomes, StateRoot the state after the block.
	TxRoot      []byte `cbor:"txroot"`
	ResultsRoot []byte `cbor:"resultsroot"`
	StateRoot   []byte `cbor:"stateroot"`
	// TxCount and ResultCount are the sizes of the two Merkle trees, so
	// that an inclusion proof names one leaf of one tree (RFC 6962 paths
	// alone fit more than one tree size).
	TxCount     uint64 `cbor:"ntxs"`
	ResultCount uint64 `cbor:"nresults"`
	// NextValidators is the hash of the validator set after this block.
	NextValidators []byte `cbor:"nextvals"`
	Proposer       []byte `cbor:"proposer"`
	// View is the view the block was first proposed in; a block
	// re-proposed after a view change keeps it.
	View uint64 `cbor:"view"`
}

// Block is a header and the transactions it orders.
type Block struct {
	Header Header `cbor:"header"`
	Txs    []Tx   `cbor:"txs"`
}

// CID returns the block's CID, that of its header.
func (b *Block) CID() (cid.Cid, error) {
	_, c, err := Encode(&b.Header)
	return c, err
}

// CommitCert proves a block committed: the COMMIT votes of a quorum of its
// epoch's validators for it, in the view it committed in.
type CommitCert struct {
	Height uint64       `cbor:"height"`
	View   uint64       `cbor:"view"`
	Block  dagcbor.Link `cbor:"block"`
	Votes  []SignedVote `cbor:"votes"`
}

// DecodeBlock decodes a block and checks the shape of every transaction.
func DecodeBlock(b []byte) (*Block, error) {
	var blk Block
	if err := decode(b, MaxBlockSize, &blk); err != nil {
		return nil, err
	}
	if len(blk.Txs) > MaxTxsPerBlk {
		return nil, fmt.Errorf("chain: block with %d txs", len(blk.Txs))
	}
	for i := range blk.Txs {
		if err := blk.Txs[i].Validate(); err != nil {
			return nil, fmt.Errorf("tx %d: %w", i, err)
		}
	}
	return &blk, nil
}

// DecodeCommitCert decodes a certificate (its signatures are checked
// against the epoch's validator set by whoever uses it).
func DecodeCommitCert(b []byte) (*CommitCert, error) {
	var c CommitCert
	if err := decode(b, MaxCertSize, &c); err != nil {
		return nil, err
	}
	if len(c.Votes) > MaxValidators {
		return nil, errors.New("chain: certificate with more votes than validators can cast")
	}
	return &c, nil
}

// DecodeVote decodes a signed vote.
func DecodeVote(b []byte) (*SignedVote, error) {
	var v SignedVote
	if err := decode(b, MaxVoteSize, &v); err != nil {
		return nil, err
	}
	return &v, nil
}
