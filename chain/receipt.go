package chain

import (
	"bytes"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math"
	"os"
	"strings"
	"time"

	"github.com/ipfs/go-cid"
)

// Receipts (DESIGN.md, "Portable proofs") prove offline that a transaction
// committed with an outcome, starting from a trust anchor: the genesis or
// a trusted checkpoint.
//
// Epoch convention: epochs are numbered from 0, the genesis set. Every
// header's NextValidators is the hash of the set that validates the next
// block. It equals the hash of the current epoch's set, except on the last
// block of an epoch, where it names the set of the next epoch. A receipt
// carries one EpochChange per such last block between its anchor and its
// own block, and VerifyReceipt walks them in order.

// MaxReceiptSize bounds an encoded receipt; decoders check it before
// decoding anything.
const MaxReceiptSize = 16 << 20

// maxProofPath bounds a Merkle path: 64 levels cover any tree size.
const maxProofPath = 64

// ErrBadReceipt is wrapped by every refusal of VerifyReceipt, and by the
// decoders' shape checks.
var ErrBadReceipt = errors.New("chain: receipt does not hold")

// EpochChange proves that the validator set changed from epoch e to e+1.
type EpochChange struct {
	// Header is the last block of epoch e: its Epoch is e and its
	// NextValidators is the hash of the new set.
	Header Header `cbor:"header" json:"Header"`
	// Cert is Header's commit certificate, signed by a quorum of epoch
	// e's set.
	Cert CommitCert `cbor:"cert" json:"Cert"`
	// Validators are the peer IDs of epoch e+1's set, in strictly
	// increasing byte order (as ValidatorSet.IDs returns them).
	Validators [][]byte `cbor:"validators" json:"Validators"`
}

// TrustAnchor is what a verifier starts from: the validator set of Epoch,
// trusted to validate the blocks of Chain after Height. The genesis anchor
// has epoch 0 and height 0; a trusted checkpoint names a later epoch and
// the height after which its set validates (the height of the last block
// of the previous epoch, or any later height of the same epoch). The
// validators are peer ID strings, as ParsePeerID reads them.
type TrustAnchor struct {
	Chain      string   `json:"Chain"`
	Epoch      uint64   `json:"Epoch"`
	Height     uint64   `json:"Height"`
	Validators []string `json:"Validators"`
}

// AnchorFromGenesis returns the trust anchor of a genesis: epoch 0, height
// 0 and the genesis validators.
func AnchorFromGenesis(g *Genesis) (TrustAnchor, error) {
	if err := g.Validate(); err != nil {
		return TrustAnchor{}, fmt.Errorf("trust anchor: %w", err)
	}
	a := TrustAnchor{Chain: g.ChainID}
	for _, v := range g.Validators {
		id, err := ParsePeerID(v.PeerID)
		if err != nil {
			return TrustAnchor{}, fmt.Errorf("trust anchor: validator %q: %w", v.PeerID, err)
		}
		a.Validators = append(a.Validators, PeerIDString(id))
	}
	return a, nil
}

// ReadTrustAnchor reads and checks a trusted checkpoint written as JSON.
func ReadTrustAnchor(path string) (TrustAnchor, error) {
	raw, err := os.ReadFile(path)
	if err != nil {
		return TrustAnchor{}, fmt.Errorf("read trust anchor: %w", err)
	}
	var a TrustAnchor
	dec := json.NewDecoder(bytes.NewReader(raw))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&a); err != nil {
		return TrustAnchor{}, fmt.Errorf("read trust anchor %s: %w", path, err)
	}
	if _, err := a.set(); err != nil {
		return TrustAnchor{}, fmt.Errorf("trust anchor %s: %w", path, err)
	}
	return a, nil
}

// set checks the anchor and returns its validator set.
func (a *TrustAnchor) set() (ValidatorSet, error) {
	if a.Chain == "" || len(a.Chain) > maxNameLength {
		return ValidatorSet{}, errors.New("trust anchor has no valid chain id")
	}
	ids := make([][]byte, len(a.Validators))
	for i, v := range a.Validators {
		id, err := ParsePeerID(v)
		if err != nil {
			return ValidatorSet{}, fmt.Errorf("trust anchor: validator %d: %w", i, err)
		}
		ids[i] = id
	}
	if err := checkMembers(ids, false); err != nil {
		return ValidatorSet{}, fmt.Errorf("trust anchor: %w", err)
	}
	return NewValidatorSet(a.Epoch, ids...), nil
}

// checkMembers checks a validator list: 4 to MaxValidators distinct peer
// IDs, in strictly increasing byte order if sorted is set.
func checkMembers(ids [][]byte, sorted bool) error {
	if len(ids) < 4 || len(ids) > MaxValidators {
		return fmt.Errorf("%d validators, want 4 to %d", len(ids), MaxValidators)
	}
	seen := make(map[string]bool, len(ids))
	for i, id := range ids {
		if _, err := PublicKeyFromPeerID(id); err != nil {
			return fmt.Errorf("validator %d: %w", i, err)
		}
		if seen[string(id)] {
			return fmt.Errorf("validator %d listed twice", i)
		}
		seen[string(id)] = true
		if sorted && i > 0 && bytes.Compare(ids[i-1], id) >= 0 {
			return fmt.Errorf("validator %d out of byte order", i)
		}
	}
	return nil
}

// Receipt is a self-contained proof that Tx committed in the block of
// Header with Outcome: the tx's inclusion in Header.TxRoot, the outcome's
// in Header.ResultsRoot, Header's commit certificate, and every
// validator-set change since the trust anchor it is checked against.
//
// A receipt proves a transaction and its own outcome, both in the same
// block. Outcomes recorded in a later block (a non-service, whose Tx is an
// access request committed earlier) are not covered.
//
// TxCount and OutcomeCount must equal the header's TxCount and
// ResultCount, so each path names one leaf of one tree.
type Receipt struct {
	Chain string `cbor:"chain" json:"Chain"`
	Tx    Tx     `cbor:"tx" json:"Tx"`
	// TxPath proves EncodeTx(Tx) is leaf TxIndex of TxCount under
	// Header.TxRoot.
	TxIndex uint64   `cbor:"txindex" json:"TxIndex"`
	TxCount uint64   `cbor:"txcount" json:"TxCount"`
	TxPath  [][]byte `cbor:"txpath" json:"TxPath"`
	// OutcomePath proves the outcome's canonical encoding is leaf
	// OutcomeIndex of OutcomeCount under Header.ResultsRoot.
	Outcome      Outcome    `cbor:"outcome" json:"Outcome"`
	OutcomeIndex uint64     `cbor:"outcomeindex" json:"OutcomeIndex"`
	OutcomeCount uint64     `cbor:"outcomecount" json:"OutcomeCount"`
	OutcomePath  [][]byte   `cbor:"outcomepath" json:"OutcomePath"`
	Header       Header     `cbor:"header" json:"Header"`
	Cert         CommitCert `cbor:"cert" json:"Cert"`
	// Epochs are the validator-set changes since the trust anchor, in
	// order.
	Epochs []EpochChange `cbor:"epochs" json:"Epochs"`
}

// NewReceipt builds the receipt of blk's transaction txIndex, given the
// block's outcomes, its commit certificate and the epoch changes since the
// trust anchor the receipt is meant for.
func NewReceipt(blk *Block, outcomes []Outcome, txIndex int, cert CommitCert, epochs []EpochChange) (*Receipt, error) {
	if txIndex < 0 || txIndex >= len(blk.Txs) {
		return nil, fmt.Errorf("new receipt: tx %d of a block of %d", txIndex, len(blk.Txs))
	}
	txLeaves, err := leavesOf(blk.Txs, EncodeTx)
	if err != nil {
		return nil, fmt.Errorf("new receipt: %w", err)
	}
	outLeaves, err := leavesOf(outcomes, encodeOutcome)
	if err != nil {
		return nil, fmt.Errorf("new receipt: %w", err)
	}
	if !bytes.Equal(MerkleRoot(txLeaves), blk.Header.TxRoot) {
		return nil, errors.New("new receipt: the block's txs do not match its tx root")
	}
	id, err := blk.Txs[txIndex].ID()
	if err != nil {
		return nil, fmt.Errorf("new receipt: tx id: %w", err)
	}
	found, matches := 0, 0
	for i := range outcomes {
		if outcomes[i].Tx.Equals(id) {
			found, matches = i, matches+1
		}
	}
	if matches != 1 {
		return nil, fmt.Errorf("new receipt: %d outcomes for tx %s in block %d, want 1", matches, id, blk.Header.Height)
	}
	if !bytes.Equal(MerkleRoot(outLeaves), blk.Header.ResultsRoot) {
		return nil, errors.New("new receipt: the outcomes do not match the block's results root")
	}
	txPath, _ := InclusionProof(txLeaves, txIndex) // both indexes are in range
	outPath, _ := InclusionProof(outLeaves, found)
	return &Receipt{
		Chain: blk.Header.Chain, Tx: blk.Txs[txIndex],
		TxIndex: uint64(txIndex), TxCount: uint64(len(txLeaves)), TxPath: txPath,
		Outcome: outcomes[found], OutcomeIndex: uint64(found), OutcomeCount: uint64(len(outLeaves)), OutcomePath: outPath,
		Header: blk.Header, Cert: cert, Epochs: append([]EpochChange(nil), epochs...),
	}, nil
}

// EncodeReceipt returns a receipt's canonical DAG-CBOR bytes.
func EncodeReceipt(r *Receipt) ([]byte, error) {
	b, _, err := Encode(r)
	if err != nil {
		return nil, fmt.Errorf("encode receipt: %w", err)
	}
	return b, nil
}

// DecodeReceipt decodes a receipt of at most MaxReceiptSize bytes and
// checks its shape; VerifyReceipt checks what it proves.
func DecodeReceipt(b []byte) (*Receipt, error) {
	var r Receipt
	if err := decode(b, MaxReceiptSize, &r); err != nil {
		return nil, fmt.Errorf("decode receipt: %w", err)
	}
	if err := r.checkShape(); err != nil {
		return nil, err
	}
	return &r, nil
}

// DecodeReceiptJSON decodes a receipt written by encoding/json (R.json),
// refusing unknown fields, input over MaxReceiptSize, and any encoding
// but the canonical one (encoding/json's, whitespace aside): JSON can
// spell the same receipt several ways (base64 with stray padding bits,
// escapes, duplicate keys), and a receipt is one document, so that a
// changed byte is always a refused receipt.
func DecodeReceiptJSON(b []byte) (*Receipt, error) {
	if len(b) > MaxReceiptSize {
		return nil, fmt.Errorf("decode receipt: %w: %d bytes, at most %d", ErrTooLarge, len(b), MaxReceiptSize)
	}
	var r Receipt
	dec := json.NewDecoder(bytes.NewReader(b))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&r); err != nil {
		return nil, fmt.Errorf("decode receipt: %w", err)
	}
	if _, err := dec.Token(); err != io.EOF {
		return nil, errors.New("decode receipt: trailing data after the receipt")
	}
	var compact bytes.Buffer
	if err := json.Compact(&compact, b); err != nil {
		return nil, fmt.Errorf("decode receipt: %w", err)
	}
	canonical, err := json.Marshal(&r)
	if err != nil {
		return nil, fmt.Errorf("decode receipt: %w", err)
	}
	if !bytes.Equal(compact.Bytes(), canonical) {
		return nil, fmt.Errorf("%w: the receipt is not in its canonical JSON encoding", ErrBadReceipt)
	}
	if err := r.checkShape(); err != nil {
		return nil, err
	}
	return &r, nil
}

// checkShape bounds the receipt's lists.
func (r *Receipt) checkShape() error {
	if len(r.TxPath) > maxProofPath || len(r.OutcomePath) > maxProofPath {
		return fmt.Errorf("%w: merkle path longer than %d", ErrBadReceipt, maxProofPath)
	}
	if len(r.Cert.Votes) > MaxValidators {
		return fmt.Errorf("%w: certificate with %d votes", ErrBadReceipt, len(r.Cert.Votes))
	}
	for i := range r.Epochs {
		ec := &r.Epochs[i]
		if len(ec.Cert.Votes) > MaxValidators || len(ec.Validators) > MaxValidators {
			return fmt.Errorf("%w: epoch change %d lists more than %d validators or votes", ErrBadReceipt, i, MaxValidators)
		}
	}
	return nil
}

func refuse(part string, err error) error {
	return fmt.Errorf("%w: %s: %w", ErrBadReceipt, part, err)
}

func refusef(format string, args ...any) error {
	return fmt.Errorf("%w: %s", ErrBadReceipt, fmt.Sprintf(format, args...))
}

// VerifyReceipt checks r end to end against anchor: chain ids everywhere,
// each epoch change in order from the anchor's set, the header's commit
// certificate by the set of its epoch, the inclusion of the tx and of its
// outcome, and the tx's shape and signatures. Every cheap check passes
// before any signature is checked. It returns the facts proven, or an
// error wrapping ErrBadReceipt that names the part that failed.
func VerifyReceipt(r *Receipt, anchor TrustAnchor) (*Proven, error) {
	if r == nil {
		return nil, refusef("no receipt")
	}
	// The proof is about the fields as they are now: a decoded receipt's
	// transaction is sealed, and whoever holds it may have changed it.
	unsealed := *r
	unsealed.Tx.sealed = nil
	r = &unsealed
	if err := r.checkShape(); err != nil {
		return nil, err
	}
	set, err := anchor.set()
	if err != nil {
		return nil, refuse("anchor", err)
	}
	if err := r.checkChainIDs(anchor.Chain); err != nil {
		return nil, err
	}
	id, err := r.checkInclusion()
	if err != nil {
		return nil, err
	}
	certs, err := r.certChecks(set, anchor.Height)
	if err != nil {
		return nil, err
	}
	if err := r.Tx.VerifySignatures(); err != nil {
		return nil, refuse("tx signatures", err)
	}
	for _, c := range certs {
		if err := VerifyCommitCert(c.cert, r.Chain, c.set.Epoch, c.height, c.block, c.set); err != nil {
			return nil, refuse(c.part, err)
		}
	}
	return r.proven(id, certs[0].block), nil
}

// checkChainIDs requires one chain id everywhere.
func (r *Receipt) checkChainIDs(chain string) error {
	if r.Chain != chain {
		return refusef("receipt for chain %q, anchor of chain %q", r.Chain, chain)
	}
	if r.Header.Chain != chain || r.Tx.Body.Chain != chain {
		return refusef("header or tx of another chain than %q", chain)
	}
	for i := range r.Epochs {
		if r.Epochs[i].Header.Chain != chain {
			return refusef("epoch change %d is of chain %q", i, r.Epochs[i].Header.Chain)
		}
	}
	return nil
}

// checkInclusion checks the tx and its outcome against the header's roots
// and returns the tx's ID.
func (r *Receipt) checkInclusion() (cid.Cid, error) {
	if err := r.Tx.Validate(); err != nil {
		return cid.Undef, refuse("tx", err)
	}
	leaf, err := EncodeTx(&r.Tx)
	if err != nil {
		return cid.Undef, refuse("tx", err)
	}
	id, err := r.Tx.ID()
	if err != nil {
		return cid.Undef, refuse("tx id", err)
	}
	if r.TxCount != r.Header.TxCount || r.OutcomeCount != r.Header.ResultCount {
		return cid.Undef, fmt.Errorf("%w: %w: counts %d and %d differ from the header's %d and %d", ErrBadReceipt, ErrBadProof,
			r.TxCount, r.OutcomeCount, r.Header.TxCount, r.Header.ResultCount)
	}
	if err := included("tx", leaf, r.TxIndex, r.TxCount, r.TxPath, r.Header.TxRoot); err != nil {
		return cid.Undef, err
	}
	if !r.Outcome.Tx.Equals(id) {
		return cid.Undef, refusef("outcome is not that of tx %s", id)
	}
	outLeaf, _, err := Encode(&r.Outcome)
	if err != nil {
		return cid.Undef, refuse("outcome", err)
	}
	return id, included("outcome", outLeaf, r.OutcomeIndex, r.OutcomeCount, r.OutcomePath, r.Header.ResultsRoot)
}

// included checks that leaf is leaf index of count under root.
func included(what string, leaf []byte, index, count uint64, path [][]byte, root []byte) error {
	if index >= count {
		return refusef("%s index %d of %d", what, index, count)
	}
	if err := VerifyInclusion(leaf, index, count, path, root); err != nil {
		return refuse(what+" inclusion", err)
	}
	return nil
}

// certCheck is a commit certificate to verify once the cheap checks pass.
type certCheck struct {
	part   string
	cert   *CommitCert
	height uint64
	block  cid.Cid
	set    ValidatorSet
}

// certChecks follows the epoch changes from set, whose blocks come after
// height, and returns the certificates to verify: the header's first,
// then each change's.
func (r *Receipt) certChecks(set ValidatorSet, height uint64) ([]certCheck, error) {
	checks := make([]certCheck, 1, len(r.Epochs)+1)
	for i := range r.Epochs {
		ec := &r.Epochs[i]
		part := fmt.Sprintf("epoch change %d", i)
		c, err := newCertCheck(part, &ec.Header, &ec.Cert, set, height)
		if err != nil {
			return nil, err
		}
		if set.Epoch == math.MaxUint64 {
			return nil, refusef("%s: epoch number overflows", part)
		}
		if err := checkMembers(ec.Validators, true); err != nil {
			return nil, refuse(part+": new set", err)
		}
		next := NewValidatorSet(set.Epoch+1, ec.Validators...)
		if !bytes.Equal(next.Hash(), ec.Header.NextValidators) {
			return nil, refusef("%s: new set does not hash to the header's next validators", part)
		}
		checks = append(checks, c)
		set, height = next, ec.Header.Height
	}
	c, err := newCertCheck("header", &r.Header, &r.Cert, set, height)
	if err != nil {
		return nil, err
	}
	checks[0] = c
	return checks, nil
}

// newCertCheck checks that h is of set's epoch and after height, and that
// cert names it.
func newCertCheck(part string, h *Header, cert *CommitCert, set ValidatorSet, height uint64) (certCheck, error) {
	switch {
	case h.Epoch != set.Epoch:
		return certCheck{}, refusef("%s is in epoch %d, expected epoch %d", part, h.Epoch, set.Epoch)
	case h.Height <= height:
		return certCheck{}, refusef("%s height %d is not after height %d", part, h.Height, height)
	}
	_, block, err := Encode(h)
	if err != nil {
		return certCheck{}, refuse(part, err)
	}
	if cert.Height != h.Height || !cert.Block.Equals(block) {
		return certCheck{}, refuse(part, fmt.Errorf("%w: certificate is for another block", ErrBadCert))
	}
	return certCheck{part: part + " certificate", cert: cert, height: h.Height, block: block, set: set}, nil
}

// Proven is what a verified receipt proves: that transaction Tx of Chain
// committed in Block and executed to Code (and Reason).
type Proven struct {
	Chain string
	Tx    cid.Cid
	Kind  Kind
	// Sender is the node that sent the tx; empty for admin txs.
	Sender []byte
	// Signers are the peer IDs that signed the tx: the sender, or the
	// admins.
	Signers [][]byte
	Block   cid.Cid
	Height  uint64
	Epoch   uint64
	// Time is the block time, ms since 1970 UTC.
	Time   int64
	Code   string
	Reason string
	// Anchor is set for an anchor tx, Access for an access request.
	Anchor *Anchor
	Access *AccessRequest
}

func (r *Receipt) proven(id, block cid.Cid) *Proven {
	b := &r.Tx.Body
	p := &Proven{
		Chain: r.Chain, Tx: id, Kind: b.Kind, Block: block,
		Height: r.Header.Height, Epoch: r.Header.Epoch, Time: r.Header.Time,
		Code: r.Outcome.Code, Reason: r.Outcome.Reason,
	}
	if len(b.Sender) > 0 {
		p.Sender = bytes.Clone(b.Sender)
	}
	for _, s := range r.Tx.Sigs {
		p.Signers = append(p.Signers, bytes.Clone(s.Signer))
	}
	if b.Anchor != nil {
		a := *b.Anchor
		p.Anchor = &a
	}
	if b.Access != nil {
		a := *b.Access
		p.Access = &a
	}
	return p
}

// Lines says in plain words what the receipt proves, one fact a line.
func (p *Proven) Lines() []string {
	lines := []string{
		fmt.Sprintf("transaction %s (%s) committed on chain %q", p.Tx, p.Kind, p.Chain),
		fmt.Sprintf("in block %s at height %d, epoch %d, block time %s", p.Block, p.Height, p.Epoch,
			time.UnixMilli(p.Time).UTC().Format(time.RFC3339Nano)),
	}
	if len(p.Sender) > 0 {
		lines = append(lines, "sent and signed by "+peerName(p.Sender))
	} else {
		names := make([]string, len(p.Signers))
		for i, s := range p.Signers {
			names[i] = peerName(s)
		}
		lines = append(lines, "signed by admins "+strings.Join(names, ", "))
	}
	if p.Reason != "" {
		lines = append(lines, fmt.Sprintf("outcome: %s, reason %s", p.Code, p.Reason))
	} else {
		lines = append(lines, "outcome: "+p.Code)
	}
	if a := p.Anchor; a != nil {
		lines = append(lines, fmt.Sprintf("anchors dataset %s of %d bytes, name %q, policy %s", a.Root, a.Size, a.Name, a.Policy))
	}
	if a := p.Access; a != nil {
		lines = append(lines,
			fmt.Sprintf("asks provider %s for dataset %s of owner %s", peerName(a.Provider), a.Dataset.Root, peerName(a.Dataset.Owner)),
			fmt.Sprintf("purpose %q, case %q", a.Purpose, a.Case))
	}
	return lines
}

// String is Lines joined by newlines.
func (p *Proven) String() string { return strings.Join(p.Lines(), "\n") }

// peerName prints a peer ID, or its hex if it is not one.
func peerName(b []byte) string {
	if _, err := PublicKeyFromPeerID(b); err == nil {
		return PeerIDString(b)
	}
	return hex.EncodeToString(b)
}
