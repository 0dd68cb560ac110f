package index

import (
	"errors"
	"fmt"

	"github.com/ipfs/go-cid"
	"github.com/syndtr/goleveldb/leveldb"

	"auditnet/chain"
	"auditnet/internal/dagcbor"
)

// blockEvents turns one block's transactions and outcomes into events.
type blockEvents struct {
	db     *leveldb.DB
	height uint64
	time   int64
	// pending holds this block's access requests by tx ID, for a Served
	// or non-service in the same block.
	pending map[string]*Event
}

// build returns one event per outcome, at the outcome's position. Every
// outcome but a non-service names a transaction of the block, and every
// transaction has exactly one.
func (b *blockEvents) build(txs []chain.Tx, outcomes []chain.Outcome) ([]Event, error) {
	byID := make(map[string][]int, len(txs))
	for i := range txs {
		id, err := txs[i].ID()
		if err != nil {
			return nil, fmt.Errorf("tx %d: %w", i, err)
		}
		byID[id.KeyString()] = append(byID[id.KeyString()], i)
	}
	events := make([]Event, len(outcomes))
	matched := 0
	for pos, o := range outcomes {
		if !o.Tx.Defined() {
			return nil, fmt.Errorf("outcome %d names no tx", pos)
		}
		var err error
		if o.Code == chain.OutcomeNonService {
			events[pos], err = b.nonService(o)
		} else {
			k := o.Tx.KeyString()
			idx := byID[k]
			if len(idx) == 0 {
				return nil, fmt.Errorf("outcome %d names tx %s, which is not in the block (or has an outcome already)", pos, o.Tx.Cid)
			}
			byID[k] = idx[1:]
			matched++
			events[pos], err = b.fromTx(&txs[idx[0]], o)
		}
		if err != nil {
			return nil, fmt.Errorf("outcome %d: %w", pos, err)
		}
		ev := &events[pos]
		ev.Height, ev.Pos, ev.Time = b.height, uint32(pos), b.time
		if ev.Kind == KindAccess {
			b.pending[ev.Tx.KeyString()] = ev
		}
	}
	if matched != len(txs) {
		return nil, fmt.Errorf("%d txs but %d outcomes for them", len(txs), matched)
	}
	return events, nil
}

// fromTx is the event of a transaction that executed to o.
func (b *blockEvents) fromTx(tx *chain.Tx, o chain.Outcome) (Event, error) {
	body := &tx.Body
	kind, ok := kindOf[body.Kind]
	if !ok {
		return Event{}, fmt.Errorf("tx %s of unknown kind %q", o.Tx.Cid, body.Kind)
	}
	ev := Event{Kind: kind, Tx: o.Tx, Sender: body.Sender, Code: o.Code, Reason: o.Reason}
	if len(body.Sender) == 0 {
		for _, s := range tx.Sigs {
			ev.Signers = append(ev.Signers, s.Signer)
		}
	}
	switch {
	case body.Anchor != nil && kind == KindAnchor:
		ev.Dataset = &chain.Dataset{Owner: body.Sender, Root: body.Anchor.Root}
		ev.Agency, ev.Anchor = body.Sender, body.Anchor
	case body.Grant != nil && kind == KindGrant:
		g := body.Grant
		ev.Dataset, ev.Agency, ev.Auditor, ev.Expires = &g.Dataset, g.Dataset.Owner, g.Auditor, g.Expires
	case body.Revoke != nil && kind == KindRevoke:
		r := body.Revoke
		ev.Dataset, ev.Agency, ev.Auditor = &r.Dataset, r.Dataset.Owner, r.Auditor
	case body.Access != nil && kind == KindAccess:
		a := body.Access
		ev.Dataset, ev.Agency, ev.Auditor, ev.Provider = &a.Dataset, a.Dataset.Owner, body.Sender, a.Provider
		ev.Purpose, ev.Case = a.Purpose, a.Case
		if a.Scope.Path != "" || len(a.Scope.Links) > 0 {
			ev.Scope = &a.Scope
		}
	case body.Served != nil && kind == KindServed:
		return b.served(ev, body.Served)
	case body.Member != nil && kind == KindMember:
		ev.Peer, ev.Member = body.Member.Peer, body.Member
	case body.Params != nil && kind == KindParams:
		ev.Params = body.Params
	case body.Evidence != nil && kind == KindEvidence:
		ev.Peer = body.Evidence.A.Signer
	default:
		return Event{}, fmt.Errorf("%s tx %s without its body", body.Kind, o.Tx.Cid)
	}
	return ev, nil
}

// served completes a Served's event from the request it settles.
func (b *blockEvents) served(ev Event, sv *chain.Served) (Event, error) {
	req, err := b.request(sv.Request.Cid)
	if err != nil {
		return Event{}, fmt.Errorf("served: %w", err)
	}
	ev.Request = &dagcbor.Link{Cid: sv.Request.Cid}
	ev.Dataset, ev.Agency, ev.Auditor, ev.Provider = req.Dataset, req.Agency, req.Auditor, req.Provider
	if sv.Ack != nil {
		ev.Bytes, ev.Blocks = sv.Ack.Bytes, sv.Ack.Blocks
	}
	return ev, nil
}

// nonService is the event of an authorised request that was not served in
// time: the outcome's Tx is the request.
func (b *blockEvents) nonService(o chain.Outcome) (Event, error) {
	req, err := b.request(o.Tx.Cid)
	if err != nil {
		return Event{}, fmt.Errorf("non-service: %w", err)
	}
	return Event{
		Kind: KindNonService, Tx: o.Tx, Request: &dagcbor.Link{Cid: o.Tx.Cid},
		Dataset: req.Dataset, Agency: req.Agency, Auditor: req.Auditor, Provider: req.Provider,
		Code: o.Code, Reason: o.Reason, Purpose: req.Purpose, Case: req.Case,
	}, nil
}

// request returns the event of the access request id, from this block or
// the index.
func (b *blockEvents) request(id cid.Cid) (*Event, error) {
	if ev, ok := b.pending[id.KeyString()]; ok {
		return ev, nil
	}
	v, err := b.db.Get(txKey(id.Bytes()), nil)
	if errors.Is(err, leveldb.ErrNotFound) {
		return nil, fmt.Errorf("no access request %s is indexed", id)
	}
	if err != nil {
		return nil, fmt.Errorf("look up request %s: %w", id, err)
	}
	p, err := placeFrom(v)
	if err != nil {
		return nil, fmt.Errorf("tx entry of request %s: %w", id, err)
	}
	raw, err := b.db.Get(eventKey(p), nil)
	if err != nil {
		return nil, fmt.Errorf("event of request %s at height %d position %d: %w", id, p.height, p.pos, err)
	}
	ev, err := decodeEvent(raw, p.height, p.pos)
	if err != nil {
		return nil, err
	}
	if ev.Kind != KindAccess {
		return nil, fmt.Errorf("tx %s is a %s, not an access request", id, ev.Kind)
	}
	return &ev, nil
}
