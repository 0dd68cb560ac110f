package pbft

import "auditnet/chain"

// testHooks are switches that only this package's tests set: they break
// the protocol on purpose, to show that the simulator's checker catches a
// broken core, and they make Byzantine validators. A Replica built by New has
// them all off.
type testHooks struct {
	// quorumDelta lowers the quorum (1: q − 1).
	quorumDelta int
	// skipNewViewCheck accepts a new view without re-deriving its
	// proposal from its view changes.
	skipNewViewCheck bool
	// stamp changes the time a leader puts in its block.
	stamp func(t, last int64) int64
	// txs changes the transactions a leader puts in its block.
	txs func([]chain.Tx) []chain.Tx
	// viewChange changes the view changes this node sends.
	viewChange func(ViewChange) ViewChange
	// sigCache, shared by the simulated nodes of one process, remembers
	// signatures verified (for real, with Ed25519) by any of them, so a
	// simulation verifies each signed message once rather than once per
	// node.
	sigCache map[[32]byte]bool
	// newViewBlock changes the block a new view proposes.
	newViewBlock func(*Replica, *chain.Block) *chain.Block
}

func (h *testHooks) stampTime(t, last int64) int64 {
	if h.stamp == nil {
		return t
	}
	return h.stamp(t, last)
}

func (h *testHooks) tamperTxs(txs []chain.Tx) []chain.Tx {
	if h.txs == nil {
		return txs
	}
	return h.txs(txs)
}

func (h *testHooks) tamperViewChange(vc ViewChange) ViewChange {
	if h.viewChange == nil {
		return vc
	}
	return h.viewChange(vc)
}

func (h *testHooks) tamperNewViewBlock(c *Replica, b *chain.Block) *chain.Block {
	if h.newViewBlock == nil {
		return b
	}
	return h.newViewBlock(c, b)
}
