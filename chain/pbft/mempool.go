package pbft

import (
	"github.com/ipfs/go-cid"

	"auditnet/chain"
)

// mempool holds valid transactions waiting for a block, in arrival order,
// bounded in number and per sender.
type mempool struct {
	max       int
	perSender uint64
	byID      map[cid.Cid]*entry
	order     []*entry // arrival order; removed entries are skipped and compacted
	live      int
	senders   map[string]uint64
}

type entry struct {
	tx      *chain.Tx
	id      cid.Cid
	size    int
	arrived int64
	// height is the committed height when it arrived.
	height uint64
	// reforwarded is set once this node forwarded it again, because it
	// waited too long; arrived and height count from then.
	reforwarded bool
	removed     bool
}

func newMempool(max int, perSender uint64) *mempool {
	return &mempool{max: max, perSender: perSender, byID: map[cid.Cid]*entry{}, senders: map[string]uint64{}}
}

func (p *mempool) len() int { return p.live }

func (p *mempool) has(id cid.Cid) bool { return p.byID[id] != nil }

func senderKey(tx *chain.Tx) string {
	if len(tx.Body.Sender) > 0 {
		return string(tx.Body.Sender)
	}
	return "admins"
}

// room returns ErrBusy if the mempool, or the sender's quota, is full.
// Limits apply in full to a client's transaction; one another validator
// forwarded, which that validator admitted under its own limits, may
// take up to peers times them. Were it refused, the forwarding validator
// would hold a transaction the leader never saw and, once it waited too
// long, suspect a leader that was only as busy as everyone: under
// saturation each validator's clients are refused instead. Memory stays
// bounded, by peers times the limits.
func (p *mempool) room(tx *chain.Tx, peers int) error {
	max, perSender := p.max, p.perSender
	if peers > 1 {
		max, perSender = max*peers, perSender*uint64(peers)
	}
	if p.live >= max || (perSender > 0 && p.senders[senderKey(tx)] >= perSender) {
		return ErrBusy
	}
	return nil
}

func (p *mempool) add(tx *chain.Tx, id cid.Cid, size int, now int64, height uint64) {
	e := &entry{tx: tx, id: id, size: size, arrived: now, height: height}
	p.byID[id] = e
	p.order = append(p.order, e)
	p.live++
	p.senders[senderKey(tx)]++
}

func (p *mempool) remove(id cid.Cid) {
	e := p.byID[id]
	if e == nil {
		return
	}
	e.removed = true
	delete(p.byID, id)
	p.live--
	k := senderKey(e.tx)
	if p.senders[k]--; p.senders[k] == 0 {
		delete(p.senders, k)
	}
	if len(p.order) > 64 && p.live < len(p.order)/2 {
		kept := p.order[:0]
		for _, e := range p.order {
			if !e.removed {
				kept = append(kept, e)
			}
		}
		clear(p.order[len(kept):])
		p.order = kept
	}
}

// expire drops transactions that can no longer be included at height
// next, and forgets that their signatures were verified.
func (p *mempool) expire(next uint64, verified map[[32]byte]bool) {
	var gone []*entry
	for _, e := range p.order {
		if !e.removed && e.tx.Body.Expires < next {
			gone = append(gone, e)
		}
	}
	for _, e := range gone {
		if k, err := e.tx.Hash(); err == nil {
			delete(verified, k)
		}
		p.remove(e.id)
	}
}

// take returns the oldest transactions that fit the limits.
func (p *mempool) take(maxTxs, maxBytes int) []chain.Tx {
	var out []chain.Tx
	bytes := 0
	for _, e := range p.order {
		if e.removed {
			continue
		}
		if len(out) >= maxTxs || bytes+e.size > maxBytes {
			break
		}
		out = append(out, *e.tx)
		bytes += e.size
	}
	return out
}

// dropInvalid removes the candidates a proposer's execution left out:
// they were valid when admitted and are not any more.
func (p *mempool) dropInvalid(candidates, included []chain.Tx) {
	in := make(map[cid.Cid]bool, len(included))
	for i := range included {
		if id, err := included[i].ID(); err == nil {
			in[id] = true
		}
	}
	for i := range candidates {
		if id, err := candidates[i].ID(); err == nil && !in[id] {
			p.remove(id)
		}
	}
}
