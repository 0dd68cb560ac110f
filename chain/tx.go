package chain

import (
	"bytes"
	"errors"
	"fmt"

	"github.com/ipfs/go-cid"

	"auditnet/internal/dagcbor"
)

// Domain tags of the signed types (DESIGN.md, "Domain separation").
const (
	TagTx   = "auditnet/tx/v1"
	TagAck  = "auditnet/ack/v1"
	TagVote = "auditnet/vote/v1"
)

// Kind is a transaction's kind.
type Kind string

// Transaction kinds (DESIGN.md, "Tx kinds"); the roles table there says
// who may send which.
const (
	KindAnchor   Kind = "anchor"
	KindGrant    Kind = "grant"
	KindRevoke   Kind = "revoke"
	KindAccess   Kind = "access"
	KindServed   Kind = "served"
	KindMember   Kind = "member"
	KindParams   Kind = "params"
	KindEvidence Kind = "evidence"
)

// Policy says who may read an anchored dataset.
type Policy string

// Policies: every auditor, or grantees only.
const (
	PolicyOpen       Policy = "open"
	PolicyRestricted Policy = "restricted"
)

// Dataset identifies a dataset: the peer that anchored it and its root.
type Dataset struct {
	Owner []byte       `cbor:"owner"`
	Root  dagcbor.Link `cbor:"root"`
}

// Anchor records a dataset: its root CID, size in bytes (the DAG's
// declared cumulative size), name and read policy.
type Anchor struct {
	Root   dagcbor.Link `cbor:"root"`
	Size   uint64       `cbor:"size"`
	Name   string       `cbor:"name"`
	Policy Policy       `cbor:"policy"`
}

// Grant lets an auditor read a dataset until Expires (block time, ms since
// 1970; 0: no expiry).
type Grant struct {
	Dataset Dataset `cbor:"dataset"`
	Auditor []byte  `cbor:"auditor"`
	Expires int64   `cbor:"expires"`
}

// Revoke withdraws a grant.
type Revoke struct {
	Dataset Dataset `cbor:"dataset"`
	Auditor []byte  `cbor:"auditor"`
}

// Scope is the part of a dataset an access asks for: the whole DAG (both
// empty), a UnixFS path, or link paths from the root.
type Scope struct {
	Path  string  `cbor:"path,omitempty"`
	Links [][]int `cbor:"links,omitempty"`
}

// AccessRequest is an auditor's signed request to read a dataset from a
// named provider; the state machine decides it.
type AccessRequest struct {
	Dataset  Dataset `cbor:"dataset"`
	Scope    Scope   `cbor:"scope"`
	Provider []byte  `cbor:"provider"`
	Nonce    []byte  `cbor:"nonce"`
	Purpose  string  `cbor:"purpose"`
	Case     string  `cbor:"case"`
}

// Ack is the requester's acknowledgement of a served access: what it
// received, signed by its node key.
type Ack struct {
	Chain   string       `cbor:"chain"`
	Request dagcbor.Link `cbor:"request"`
	Bytes   uint64       `cbor:"bytes"`
	Blocks  uint64       `cbor:"blocks"`
	Sig     []byte       `cbor:"sig,omitempty"`
}

// Served records that a provider served an authorised request; Ack is nil
// when the requester did not acknowledge.
type Served struct {
	Request dagcbor.Link `cbor:"request"`
	Ack     *Ack         `cbor:"ack,omitempty"`
}

// MemberOp is what a Member transaction does.
type MemberOp string

// Member operations.
const (
	MemberAdd    MemberOp = "add"
	MemberRemove MemberOp = "remove"
	MemberRole   MemberOp = "role"
)

// Member changes the membership: adds a peer with a role, removes it, or
// changes its role; Validator puts it in (or takes it out of) the
// validator set from the next epoch.
type Member struct {
	Op        MemberOp `cbor:"op"`
	Peer      []byte   `cbor:"peer"`
	Role      string   `cbor:"role,omitempty"`
	Name      string   `cbor:"name,omitempty"`
	Validator bool     `cbor:"validator,omitempty"`
}

// Evidence is two conflicting votes signed by one validator.
type Evidence struct {
	A SignedVote `cbor:"a"`
	B SignedVote `cbor:"b"`
}

// TxBody is what a transaction's signatures cover. Exactly one of the
// kind fields is set, the one Kind names.
type TxBody struct {
	Chain string `cbor:"chain"`
	Kind  Kind   `cbor:"kind"`
	// Sender is the peer ID of the sending node; admin transactions have
	// none (their signers are admins).
	Sender []byte `cbor:"sender,omitempty"`
	// Expires is the last height the transaction may be included at
	// (replay protection: at most the current height + W).
	Expires uint64 `cbor:"expires"`
	// Nonce makes otherwise equal transactions distinct.
	Nonce uint64 `cbor:"nonce"`

	Anchor   *Anchor        `cbor:"anchor,omitempty"`
	Grant    *Grant         `cbor:"grant,omitempty"`
	Revoke   *Revoke        `cbor:"revoke,omitempty"`
	Access   *AccessRequest `cbor:"access,omitempty"`
	Served   *Served        `cbor:"served,omitempty"`
	Member   *Member        `cbor:"member,omitempty"`
	Params   *Params        `cbor:"params,omitempty"`
	Evidence *Evidence      `cbor:"evidence,omitempty"`
}

// Signature is one signature over a transaction body; Signer is the peer
// ID of the Ed25519 key that made it (a node's, or an admin's).
type Signature struct {
	Signer []byte `cbor:"signer"`
	Sig    []byte `cbor:"sig"`
}

// Tx is a signed transaction: one signature from its sender, or k of m
// admin signatures for admin transactions. A decoded Tx is sealed: it
// keeps its encoding and ID, and must not be changed (see Seal).
type Tx struct {
	Body TxBody      `cbor:"body"`
	Sigs []Signature `cbor:"sigs"`

	sealed *sealed
}

// MaxSigs bounds the signatures on one transaction (k of m admins).
const MaxSigs = 16

// ID is the transaction's identity: the CID of its body, so that the same
// admin transaction signed by different subsets of admins is one
// transaction (and one replay).
func (t *Tx) ID() (cid.Cid, error) {
	if s := t.current(); s != nil {
		return s.id, nil
	}
	_, c, err := Encode(&t.Body)
	return c, err
}

// BodySigningBytes is what every signature of t covers.
func (t *Tx) BodySigningBytes() ([]byte, error) {
	if s := t.current(); s != nil {
		return append([]byte(TagTx), s.body...), nil
	}
	return signingBytes(TagTx, &t.Body)
}

// Sign appends a signature by s; t is not sealed afterwards.
func (t *Tx) Sign(s Signer) error {
	t.sealed = nil
	msg, err := t.BodySigningBytes()
	if err != nil {
		return err
	}
	sig, err := s.Sign(msg)
	if err != nil {
		return fmt.Errorf("sign tx: %w", err)
	}
	t.Sigs = append(t.Sigs, Signature{Signer: s.ID(), Sig: sig})
	return nil
}

// ErrBadSignature is wrapped by every signature failure.
var ErrBadSignature = errors.New("chain: bad signature")

// VerifySignatures checks that every signature is valid and that no signer
// signs twice; an Evidence transaction's two votes are verified too.
// Whether the signers may send this transaction is the state machine's
// question. A sealed Tx remembers that its signatures passed, and is not
// checked twice.
func (t *Tx) VerifySignatures() error {
	s := t.current()
	if s != nil && s.verified.Load() {
		return nil
	}
	if err := t.verifySignatures(); err != nil {
		return err
	}
	if s != nil {
		s.verified.Store(true)
	}
	return nil
}

func (t *Tx) verifySignatures() error {
	msg, err := t.BodySigningBytes()
	if err != nil {
		return err
	}
	seen := make(map[string]bool, len(t.Sigs))
	for i, s := range t.Sigs {
		if seen[string(s.Signer)] {
			return fmt.Errorf("%w: signer %d signs twice", ErrBadSignature, i)
		}
		seen[string(s.Signer)] = true
		if err := verifyBy(s.Signer, msg, s.Sig); err != nil {
			return fmt.Errorf("signature %d: %w", i, err)
		}
	}
	if e := t.Body.Evidence; e != nil {
		if err := e.A.Verify(); err != nil {
			return fmt.Errorf("evidence vote: %w", err)
		}
		if err := e.B.Verify(); err != nil {
			return fmt.Errorf("evidence vote: %w", err)
		}
	}
	return nil
}

// adminKinds are sent by admins (k of m), never by a node.
func (k Kind) admin() bool { return k == KindMember || k == KindParams }

// Validate checks a transaction's shape and bounds: a known kind with its
// body and no other, a sender where one belongs (and signing first), sizes,
// and signatures present. It does not verify signatures.
func (t *Tx) Validate() error {
	b := &t.Body
	if b.Chain == "" || len(b.Chain) > maxNameLength {
		return errors.New("chain: tx has no valid chain id")
	}
	set := [...]struct {
		kind  Kind
		isSet bool
	}{
		{KindAnchor, b.Anchor != nil}, {KindGrant, b.Grant != nil}, {KindRevoke, b.Revoke != nil},
		{KindAccess, b.Access != nil}, {KindServed, b.Served != nil}, {KindMember, b.Member != nil},
		{KindParams, b.Params != nil}, {KindEvidence, b.Evidence != nil},
	}
	known := false
	for _, k := range set {
		known = known || k.kind == b.Kind
	}
	if !known {
		return fmt.Errorf("chain: unknown tx kind %q", b.Kind)
	}
	for _, k := range set {
		if k.isSet != (k.kind == b.Kind) {
			return fmt.Errorf("chain: %s tx with a %s body", b.Kind, k.kind)
		}
	}
	if len(t.Sigs) == 0 || len(t.Sigs) > MaxSigs {
		return fmt.Errorf("chain: tx with %d signatures", len(t.Sigs))
	}
	switch {
	case b.Kind.admin() && len(b.Sender) != 0:
		return fmt.Errorf("chain: %s tx has a sender; admins send it", b.Kind)
	case len(b.Sender) != 0:
		if err := checkPeerID(b.Sender); err != nil {
			return fmt.Errorf("chain: sender: %w", err)
		}
		if len(t.Sigs) != 1 || string(t.Sigs[0].Signer) != string(b.Sender) {
			return errors.New("chain: a node's tx carries exactly its sender's signature")
		}
	case !b.Kind.admin() && b.Kind != KindGrant && b.Kind != KindRevoke:
		return fmt.Errorf("chain: %s tx has no sender", b.Kind)
	}
	return t.validateBody()
}

func (t *Tx) validateBody() error {
	b := &t.Body
	peerOK := func(what string, p []byte) error {
		if err := checkPeerID(p); err != nil {
			return fmt.Errorf("chain: %s: %w", what, err)
		}
		return nil
	}
	switch b.Kind {
	case KindAnchor:
		a := b.Anchor
		if len(a.Name) > maxNameLength || (a.Policy != PolicyOpen && a.Policy != PolicyRestricted) {
			return errors.New("chain: anchor with a bad name or policy")
		}
	case KindGrant:
		if err := peerOK("grant owner", b.Grant.Dataset.Owner); err != nil {
			return err
		}
		return peerOK("grant auditor", b.Grant.Auditor)
	case KindRevoke:
		if err := peerOK("revoke owner", b.Revoke.Dataset.Owner); err != nil {
			return err
		}
		return peerOK("revoke auditor", b.Revoke.Auditor)
	case KindAccess:
		a := b.Access
		if len(a.Purpose) > 1024 || len(a.Case) > maxNameLength || len(a.Nonce) > 32 || len(a.Scope.Path) > 4096 || len(a.Scope.Links) > 4096 {
			return errors.New("chain: access request out of bounds")
		}
		if err := peerOK("access owner", a.Dataset.Owner); err != nil {
			return err
		}
		return peerOK("access provider", a.Provider)
	case KindMember:
		m := b.Member
		if m.Op != MemberAdd && m.Op != MemberRemove && m.Op != MemberRole || len(m.Name) > maxNameLength {
			return errors.New("chain: member tx with a bad op or name")
		}
		if m.Op != MemberRemove && !validRole(m.Role) {
			return fmt.Errorf("chain: member tx with role %q", m.Role)
		}
		return peerOK("member", m.Peer)
	case KindParams:
		return b.Params.Validate()
	}
	return nil
}

// EncodeTx returns a transaction's canonical bytes, a slice of the
// caller's own.
func EncodeTx(t *Tx) ([]byte, error) {
	if s := t.current(); s != nil {
		return bytes.Clone(s.raw), nil
	}
	return t.Encoding()
}

// DecodeTx decodes and validates a transaction (not its signatures); the
// result is sealed.
func DecodeTx(b []byte) (*Tx, error) { return decodeTx(b, MaxTxSize) }

// decodeTx is DecodeTx for at most limit bytes.
func decodeTx(b []byte, limit int) (*Tx, error) {
	var t Tx
	if err := decode(b, limit, &t); err != nil {
		return nil, err
	}
	if err := t.Validate(); err != nil {
		return nil, err
	}
	return &t, nil
}

// MaxAckSize bounds an encoded acknowledgement.
const MaxAckSize = 1 << 10

// DecodeAck decodes an acknowledgement as it comes off the network
// (canonical DAG-CBOR, at most MaxAckSize bytes); its signature is the
// caller's to check (VerifyAck).
func DecodeAck(b []byte) (*Ack, error) {
	var a Ack
	if err := decode(b, MaxAckSize, &a); err != nil {
		return nil, err
	}
	if a.Chain == "" || len(a.Chain) > maxNameLength || !a.Request.Cid.Defined() || len(a.Sig) != 64 {
		return nil, errors.New("chain: acknowledgement without a chain, a request or a signature")
	}
	return &a, nil
}

// SignAck signs an acknowledgement with the requester's key.
func SignAck(a *Ack, s Signer) error {
	a.Sig = nil
	msg, err := signingBytes(TagAck, a)
	if err != nil {
		return err
	}
	a.Sig, err = s.Sign(msg)
	return err
}

// VerifyAck checks an acknowledgement's signature by requester.
func VerifyAck(a *Ack, requester []byte) error {
	unsigned := *a
	unsigned.Sig = nil
	msg, err := signingBytes(TagAck, &unsigned)
	if err != nil {
		return err
	}
	return verifyBy(requester, msg, a.Sig)
}
