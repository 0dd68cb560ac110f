package pbft

import (
	"fmt"

	"auditnet/chain"
)

// Verifier checks the signatures of consensus messages and of client
// transactions before they reach the Replica, so that a node verifies in
// the goroutines that receive from its peers and clients, in parallel and
// transactions in batches, rather than on the core's one goroutine. What
// passes is marked, in fields only this package and chain set and that are
// never encoded, and Step and Submit do not check it again; whatever is
// not marked the core still checks. A Verifier remembers the transactions
// it decoded and verified, so one forwarded by a validator and later
// proposed is decoded and verified once. It is safe for concurrent use.
type Verifier struct {
	txs *chain.TxCache
}

// VerifierConfig configures a Verifier.
type VerifierConfig struct {
	// RememberTxs is about how many transactions the Verifier remembers;
	// 0 means DefaultRememberTxs.
	RememberTxs int
}

// DefaultRememberTxs covers two full mempools.
const DefaultRememberTxs = 2 * DefaultMempoolTxs

// NewVerifier returns a Verifier.
func NewVerifier(cfg VerifierConfig) *Verifier {
	if cfg.RememberTxs <= 0 {
		cfg.RememberTxs = DefaultRememberTxs
	}
	return &Verifier{txs: chain.NewTxCache(cfg.RememberTxs)}
}

// VerifyMessage checks every signature m carries against the key of the
// signer it names: votes, certificates, view changes, checkpoints,
// heartbeats, and transactions (all of them in one batch). It does not
// check who may sign what; the Replica does, against the validator sets.
// What passed is marked: the message, if all its signatures other than
// its transactions' hold, and each transaction whose signatures hold. A
// nil error means everything passed; otherwise the node may drop m, or
// step it anyway: the core checks again whatever is not marked, and
// refuses it. Call it in the goroutine that received m, before handing m
// to the core's; m must not be changed afterwards.
func (v *Verifier) VerifyMessage(m *Message) error {
	var parts []signedPart
	var txs []*chain.Tx
	addVote := func(sv *chain.SignedVote) {
		parts = append(parts, signedPart{chain.TagVote, &sv.Vote, sv.Signer, sv.Sig})
	}
	addVotes := func(votes []chain.SignedVote) {
		for i := range votes {
			addVote(&votes[i])
		}
	}
	addBlock := func(b *chain.Block) {
		for i := range b.Txs {
			txs = append(txs, &b.Txs[i])
		}
	}
	addViewChange := func(svc *SignedViewChange) {
		vc := &svc.ViewChange
		parts = append(parts, signedPart{TagViewChange, vc, svc.Signer, svc.Sig})
		if vc.Cert != nil {
			addVotes(vc.Cert.Votes)
		}
		if vc.Prepared != nil {
			addVotes(vc.Prepared.Votes)
		}
		if svc.Block != nil {
			addBlock(svc.Block)
		}
	}
	if p := m.Proposal; p != nil {
		addVote(&p.Vote)
		addBlock(&p.Block)
	}
	if m.Vote != nil {
		addVote(m.Vote)
	}
	if m.ViewChange != nil {
		addViewChange(m.ViewChange)
	}
	if nv := m.NewView; nv != nil {
		for i := range nv.ViewChanges {
			addViewChange(&nv.ViewChanges[i])
		}
		if nv.Cert != nil {
			addVotes(nv.Cert.Votes)
		}
		addVote(&nv.Proposal.Vote)
		addBlock(&nv.Proposal.Block)
	}
	if sc := m.Checkpoint; sc != nil {
		parts = append(parts, signedPart{TagCheckpoint, &sc.Checkpoint, sc.Signer, sc.Sig})
	}
	if sh := m.Heartbeat; sh != nil {
		parts = append(parts, signedPart{TagHeartbeat, &sh.Heartbeat, sh.Signer, sh.Sig})
	}
	for i := range m.Txs {
		txs = append(txs, &m.Txs[i])
	}
	var first error
	for i, p := range parts {
		if err := p.verify(); err != nil {
			first = fmt.Errorf("signature %d of the message: %w", i, err)
			break
		}
	}
	m.verified = first == nil
	if len(txs) > 0 {
		for i, err := range v.txs.VerifyTxs(txs) {
			if err != nil && first == nil {
				first = fmt.Errorf("tx %d: %w", i, err)
			}
		}
	}
	return first
}

// VerifyTxs checks the signatures of client transactions in one batch and
// marks those that pass, for Submit or SubmitBatch; errs[i] is tx i's
// error. Like VerifyMessage, call it outside the core's goroutine.
func (v *Verifier) VerifyTxs(txs []*chain.Tx) (errs []error) { return v.txs.VerifyTxs(txs) }

// signedPart is one signature a message carries: sig by signer over v
// under tag.
type signedPart struct {
	tag         string
	v           any
	signer, sig []byte
}

func (p signedPart) verify() error {
	msg, err := chain.SigningBytes(p.tag, p.v)
	if err != nil {
		return err
	}
	return chain.VerifyBy(p.signer, msg, p.sig)
}
