package index

import (
	"fmt"

	"auditnet/chain"
	"auditnet/internal/dagcbor"
)

// Kind is what an event records.
type Kind string

// Event kinds: one per transaction kind, and NonService for an authorised
// access request that no Served followed within T blocks.
const (
	KindAnchor     Kind = "anchor"
	KindGrant      Kind = "grant"
	KindRevoke     Kind = "revoke"
	KindAccess     Kind = "access"
	KindServed     Kind = "served"
	KindNonService Kind = "non-service"
	KindMember     Kind = "member"
	KindParams     Kind = "params"
	KindEvidence   Kind = "evidence"
)

// kindOf maps a transaction kind to its event kind.
var kindOf = map[chain.Kind]Kind{
	chain.KindAnchor:   KindAnchor,
	chain.KindGrant:    KindGrant,
	chain.KindRevoke:   KindRevoke,
	chain.KindAccess:   KindAccess,
	chain.KindServed:   KindServed,
	chain.KindMember:   KindMember,
	chain.KindParams:   KindParams,
	chain.KindEvidence: KindEvidence,
}

// Event is one fact of the audit trail: a transaction of a committed
// block and what it executed to, or a deadline that fell due. Fields that
// do not apply to a kind are empty.
type Event struct {
	// Height and Pos place the event: the block, and the index of its
	// outcome in the block's results. They come from the key, not the
	// stored value.
	Height uint64 `cbor:"-"`
	Pos    uint32 `cbor:"-"`

	Kind Kind `cbor:"kind"`
	// Time is the block time, ms since 1970 UTC.
	Time int64 `cbor:"time"`
	// Tx is the transaction's ID; for a non-service, the access request's.
	Tx dagcbor.Link `cbor:"tx"`
	// Request is the access request a Served or a non-service settles.
	Request *dagcbor.Link `cbor:"request,omitempty"`
	// Sender is the sending node; Signers are the admins who signed a
	// transaction without one (Member, Params, an admins' Grant or Revoke).
	Sender  []byte   `cbor:"sender,omitempty"`
	Signers [][]byte `cbor:"signers,omitempty"`

	// Dataset, for every event about one; Agency is its owner.
	Dataset *chain.Dataset `cbor:"dataset,omitempty"`
	Agency  []byte         `cbor:"agency,omitempty"`
	// Auditor is the grantee of a Grant or Revoke, the requester of an
	// access, and the requester a Served or non-service settles.
	Auditor []byte `cbor:"auditor,omitempty"`
	// Provider is the holder named by an access request.
	Provider []byte `cbor:"provider,omitempty"`
	// Peer is the member a Member transaction changes, or the validator
	// whose conflicting votes an Evidence carries.
	Peer []byte `cbor:"peer,omitempty"`

	// Code and Reason are the outcome (chain.Outcome*, chain.Reason*).
	Code   string `cbor:"code"`
	Reason string `cbor:"reason,omitempty"`

	// Access requests: why, for which case, and what part of the dataset.
	Purpose string       `cbor:"purpose,omitempty"`
	Case    string       `cbor:"case,omitempty"`
	Scope   *chain.Scope `cbor:"scope,omitempty"`
	// Served: what the auditor acknowledged (zero when unacknowledged).
	Bytes  uint64 `cbor:"bytes,omitempty"`
	Blocks uint64 `cbor:"blocks,omitempty"`

	// The bodies of the other kinds, as committed.
	Anchor  *chain.Anchor `cbor:"anchor,omitempty"`
	Expires int64         `cbor:"expires,omitempty"`
	Member  *chain.Member `cbor:"member,omitempty"`
	Params  *chain.Params `cbor:"params,omitempty"`
}

// encodeEvent returns an event's stored bytes.
func encodeEvent(ev *Event) ([]byte, error) {
	b, err := dagcbor.Marshal(ev)
	if err != nil {
		return nil, fmt.Errorf("encode %s event at position %d: %w", ev.Kind, ev.Pos, err)
	}
	return b, nil
}

// decodeEvent decodes an event's stored bytes; h and pos come from its key.
func decodeEvent(b []byte, h uint64, pos uint32) (Event, error) {
	var ev Event
	if err := dagcbor.Unmarshal(b, &ev); err != nil {
		return Event{}, fmt.Errorf("event at height %d position %d: %w", h, pos, err)
	}
	if !validKind(ev.Kind) || !ev.Tx.Defined() {
		return Event{}, fmt.Errorf("event at height %d position %d: kind %q or tx missing", h, pos, ev.Kind)
	}
	ev.Height, ev.Pos = h, pos
	return ev, nil
}

func validKind(k Kind) bool {
	if k == KindNonService {
		return true
	}
	for _, known := range kindOf {
		if k == known {
			return true
		}
	}
	return false
}
