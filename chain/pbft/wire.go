package pbft

import (
	"fmt"

	"auditnet/chain"
	"auditnet/internal/dagcbor"
)

// wireMessage is Message as it travels, with the transactions of
// forwarded batches and proposals left encoded, so that Verifier's
// DecodeMessage decodes only those it has not met. Its fields and keys are
// Message's; TestWireMessageDecodesAsMessage holds them together.
type wireMessage struct {
	Proposal   *wireProposal     `cbor:"proposal,omitempty"`
	Vote       *chain.SignedVote `cbor:"vote,omitempty"`
	ViewChange *SignedViewChange `cbor:"viewchange,omitempty"`
	NewView    *NewView          `cbor:"newview,omitempty"`
	Checkpoint *SignedCheckpoint `cbor:"checkpoint,omitempty"`
	Heartbeat  *SignedHeartbeat  `cbor:"heartbeat,omitempty"`
	Txs        []dagcbor.Raw     `cbor:"txs,omitempty"`
}

type wireProposal struct {
	Block wireBlock        `cbor:"block"`
	Vote  chain.SignedVote `cbor:"vote"`
}

type wireBlock struct {
	Header chain.Header  `cbor:"header"`
	Txs    []dagcbor.Raw `cbor:"txs"`
}

// DecodeMessage is the package's DecodeMessage, except that a transaction
// the Verifier met before (forwarded, say, and now in a proposal) is not
// decoded again: the message holds that one, verified if it was. A node
// calls it, then VerifyMessage, in the goroutine that received b.
func (v *Verifier) DecodeMessage(b []byte) (*Message, error) {
	var w wireMessage
	if err := chain.Decode(b, MaxMessageSize, &w); err != nil {
		return nil, fmt.Errorf("%w: %v", ErrMalformed, err)
	}
	m := &Message{Vote: w.Vote, ViewChange: w.ViewChange, NewView: w.NewView, Checkpoint: w.Checkpoint, Heartbeat: w.Heartbeat}
	var err error
	if p := w.Proposal; p != nil {
		m.Proposal = &Proposal{Block: chain.Block{Header: p.Block.Header}, Vote: p.Vote}
		if m.Proposal.Block.Txs, err = v.decodeTxs(p.Block.Txs, true); err != nil {
			return nil, err
		}
	}
	if m.Txs, err = v.decodeTxs(w.Txs, false); err != nil {
		return nil, err
	}
	if err := m.validate(); err != nil {
		return nil, fmt.Errorf("%w: %v", ErrMalformed, err)
	}
	return m, nil
}

// decodeTxs decodes raws, taking the transactions the cache remembers;
// empty gives an empty list where the codec would (a block's), else nil.
func (v *Verifier) decodeTxs(raws []dagcbor.Raw, empty bool) ([]chain.Tx, error) {
	if len(raws) > chain.MaxTxsPerBlk {
		return nil, fmt.Errorf("%w: %d txs", ErrMalformed, len(raws))
	}
	if len(raws) == 0 && !empty {
		return nil, nil
	}
	txs := make([]chain.Tx, len(raws))
	for i, raw := range raws {
		tx, err := v.txs.DecodeTx(raw)
		if err != nil {
			return nil, fmt.Errorf("%w: tx %d: %v", ErrMalformed, i, err)
		}
		txs[i] = *tx
	}
	return txs, nil
}
