package pbft

import (
	"crypto/sha256"
	"encoding/binary"
	"errors"
	"fmt"

	"github.com/ipfs/go-cid"

	"auditnet/chain"
	"auditnet/internal/dagcbor"
)

// Domain tags of the consensus messages signed here (votes use
// chain.TagVote).
const (
	TagCheckpoint = "auditnet/checkpoint/v1"
	TagViewChange = "auditnet/viewchange/v1"
	TagHeartbeat  = "auditnet/heartbeat/v1"
)

// MaxMessageSize bounds one encoded message: a block at its largest and a
// new view's certificates.
const MaxMessageSize = chain.MaxBlockSize + 4<<20

// Proposal is a leader's block for a sequence number with the leader's own
// PREPARE vote for it, which is the pre-prepare.
type Proposal struct {
	Block chain.Block      `cbor:"block"`
	Vote  chain.SignedVote `cbor:"vote"`
}

// PreparedCert proves a block prepared in a view: PREPARE votes of a
// quorum for it.
type PreparedCert struct {
	View  uint64             `cbor:"view"`
	Block dagcbor.Link       `cbor:"block"`
	Votes []chain.SignedVote `cbor:"votes"`
}

// ViewChange is a validator's request to move to View: its last committed
// height with the certificate that proves it, and the block it prepared
// for the next height, if any.
type ViewChange struct {
	Chain    string            `cbor:"chain"`
	Epoch    uint64            `cbor:"epoch"`
	View     uint64            `cbor:"view"`
	Height   uint64            `cbor:"height"`
	Cert     *chain.CommitCert `cbor:"cert,omitempty"`
	Prepared *PreparedCert     `cbor:"prepared,omitempty"`
}

// SignedViewChange is a signed view change. Block, outside the signature,
// is the prepared block itself (its CID is signed), so that the new leader
// can re-propose it byte for byte; a new view carries it once, in its
// proposal, and strips it from the view changes.
type SignedViewChange struct {
	ViewChange ViewChange   `cbor:"vc"`
	Signer     []byte       `cbor:"signer"`
	Sig        []byte       `cbor:"sig"`
	Block      *chain.Block `cbor:"block,omitempty"`
}

// NewView starts a view: a quorum of view changes for it, the commit
// certificate of the highest block they (or the leader) know, and the
// leader's proposal for the next height, which every backup re-derives
// from the view changes before it votes.
type NewView struct {
	View        uint64             `cbor:"view"`
	ViewChanges []SignedViewChange `cbor:"vcs"`
	Cert        *chain.CommitCert  `cbor:"cert,omitempty"`
	Proposal    Proposal           `cbor:"proposal"`
}

// Checkpoint is a validator's statement that a block is committed at a
// checkpoint height; a quorum of them makes the checkpoint stable.
type Checkpoint struct {
	Chain  string       `cbor:"chain"`
	Epoch  uint64       `cbor:"epoch"`
	Height uint64       `cbor:"height"`
	Block  dagcbor.Link `cbor:"block"`
}

// SignedCheckpoint is a signed checkpoint.
type SignedCheckpoint struct {
	Checkpoint Checkpoint `cbor:"cp"`
	Signer     []byte     `cbor:"signer"`
	Sig        []byte     `cbor:"sig"`
}

// Heartbeat is a validator's signed statement of its view and committed
// height, sent while the chain is idle: backups know the leader is alive,
// followers know their lag without new blocks, and a validator that
// started a view answers one that shows an earlier view, or a view change
// to its view still under way, with that view's NEW-VIEW.
type Heartbeat struct {
	Chain  string       `cbor:"chain"`
	Epoch  uint64       `cbor:"epoch"`
	View   uint64       `cbor:"view"`
	Height uint64       `cbor:"height"`
	Block  dagcbor.Link `cbor:"block"`
	// Changing says the validator is changing to View and has not
	// started it yet.
	Changing bool `cbor:"changing,omitempty"`
}

// SignedHeartbeat is a signed heartbeat.
type SignedHeartbeat struct {
	Heartbeat Heartbeat `cbor:"hb"`
	Signer    []byte    `cbor:"signer"`
	Sig       []byte    `cbor:"sig"`
}

// Message is what validators send each other; exactly one field is set.
type Message struct {
	Proposal   *Proposal         `cbor:"proposal,omitempty"`
	Vote       *chain.SignedVote `cbor:"vote,omitempty"`
	ViewChange *SignedViewChange `cbor:"viewchange,omitempty"`
	NewView    *NewView          `cbor:"newview,omitempty"`
	Checkpoint *SignedCheckpoint `cbor:"checkpoint,omitempty"`
	Heartbeat  *SignedHeartbeat  `cbor:"heartbeat,omitempty"`
	// Txs are transactions a validator admitted from its clients and
	// forwards to the others, those of one Ready in one message.
	Txs []chain.Tx `cbor:"txs,omitempty"`

	// verified is set by Verifier.VerifyMessage once every signature the
	// message carries, other than its transactions' (which are marked one
	// by one), passed: Step does not check them again. It is not encoded,
	// so a decoded message never has it.
	verified bool
}

// ErrMalformed is wrapped by every decoding failure of a message.
var ErrMalformed = errors.New("pbft: malformed message")

// EncodeMessage returns a message's canonical bytes.
func EncodeMessage(m *Message) ([]byte, error) {
	return chain.Marshal(m)
}

// DecodeMessage decodes a message and checks its shape: one kind, within
// the size limits, every transaction well formed. Signatures are checked
// by the core, which knows the validator sets.
func DecodeMessage(b []byte) (*Message, error) {
	var m Message
	if err := chain.Decode(b, MaxMessageSize, &m); err != nil {
		return nil, fmt.Errorf("%w: %v", ErrMalformed, err)
	}
	if err := m.validate(); err != nil {
		return nil, fmt.Errorf("%w: %v", ErrMalformed, err)
	}
	return &m, nil
}

func (m *Message) validate() error {
	n := 0
	for _, set := range []bool{m.Proposal != nil, m.Vote != nil, m.ViewChange != nil, m.NewView != nil,
		m.Checkpoint != nil, m.Heartbeat != nil, len(m.Txs) > 0} {
		if set {
			n++
		}
	}
	if n != 1 {
		return fmt.Errorf("message with %d kinds", n)
	}
	checkBlock := func(b *chain.Block) error {
		if len(b.Txs) > chain.MaxTxsPerBlk {
			return fmt.Errorf("block with %d txs", len(b.Txs))
		}
		for i := range b.Txs {
			if err := b.Txs[i].Validate(); err != nil {
				return fmt.Errorf("tx %d: %w", i, err)
			}
		}
		return nil
	}
	checkVC := func(vc *SignedViewChange) error {
		if c := vc.ViewChange.Cert; c != nil && len(c.Votes) > chain.MaxValidators {
			return errors.New("view change certificate too large")
		}
		if p := vc.ViewChange.Prepared; p != nil && len(p.Votes) > chain.MaxValidators {
			return errors.New("prepared certificate too large")
		}
		if vc.Block != nil {
			return checkBlock(vc.Block)
		}
		return nil
	}
	switch {
	case m.Proposal != nil:
		return checkBlock(&m.Proposal.Block)
	case m.ViewChange != nil:
		return checkVC(m.ViewChange)
	case m.NewView != nil:
		nv := m.NewView
		if len(nv.ViewChanges) > chain.MaxValidators {
			return errors.New("new view with too many view changes")
		}
		if nv.Cert != nil && len(nv.Cert.Votes) > chain.MaxValidators {
			return errors.New("new view certificate too large")
		}
		for i := range nv.ViewChanges {
			if nv.ViewChanges[i].Block != nil {
				return errors.New("new view repeats a prepared block")
			}
			if err := checkVC(&nv.ViewChanges[i]); err != nil {
				return err
			}
		}
		return checkBlock(&nv.Proposal.Block)
	case len(m.Txs) > 0:
		if len(m.Txs) > maxForwardTxs {
			return fmt.Errorf("%d forwarded txs, at most %d", len(m.Txs), maxForwardTxs)
		}
		for i := range m.Txs {
			if err := m.Txs[i].Validate(); err != nil {
				return fmt.Errorf("tx %d: %w", i, err)
			}
		}
	}
	return nil
}

// Bounds of one message of forwarded transactions; more are split over
// several messages.
const (
	maxForwardTxs   = chain.MaxTxsPerBlk
	maxForwardBytes = chain.MaxBlockSize
)

// sign signs v under tag with s, returning the signer's peer ID bytes and
// the signature.
func sign(tag string, v any, s chain.Signer) (signer, sig []byte, err error) {
	msg, err := chain.SigningBytes(tag, v)
	if err != nil {
		return nil, nil, err
	}
	sig, err = s.Sign(msg)
	if err != nil {
		return nil, nil, fmt.Errorf("sign %s: %w", tag, err)
	}
	return s.ID(), sig, nil
}

// verifyVote checks a vote's signature, once per process when tests share
// a cache of verified signatures between simulated nodes.
func (c *Replica) verifyVote(sv *chain.SignedVote) error {
	return c.verifySigned(chain.TagVote, &sv.Vote, sv.Signer, sv.Sig)
}

// verifySigned checks sig by signer over v under tag, unless the message
// being stepped was verified already (Verifier.VerifyMessage).
func (c *Replica) verifySigned(tag string, v any, signer, sig []byte) error {
	if c.trusted {
		return nil
	}
	msg, err := chain.SigningBytes(tag, v)
	if err != nil {
		return err
	}
	if c.hooks.sigCache == nil {
		return chain.VerifyBy(signer, msg, sig)
	}
	h := sha256.New()
	for _, part := range [][]byte{signer, msg, sig} {
		h.Write(binary.BigEndian.AppendUint32(nil, uint32(len(part))))
		h.Write(part)
	}
	var k [32]byte
	h.Sum(k[:0])
	if c.hooks.sigCache[k] {
		return nil
	}
	if err := chain.VerifyBy(signer, msg, sig); err != nil {
		return err
	}
	c.hooks.sigCache[k] = true
	return nil
}

// blockCID is a block's CID (that of its header).
func blockCID(b *chain.Block) (cid.Cid, error) {
	_, c, err := chain.Encode(&b.Header)
	return c, err
}
