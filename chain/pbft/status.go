package pbft

import "auditnet/chain"

// PeerHeights returns, per validator (peer ID bytes as a string key), the
// highest height its signed heartbeats or certificates have shown this
// node. The map is a copy.
func (c *Replica) PeerHeights() map[string]uint64 {
	out := make(map[string]uint64, len(c.heights))
	for k, v := range c.heights {
		out[k] = v
	}
	return out
}

// CommittedState returns a copy of the committed state, O(1), which the
// caller may read from other goroutines as long as nobody writes to it.
func (c *Replica) CommittedState() chain.State { return c.state.Clone() }

// IsValidator reports whether this node votes in the epoch in force.
func (c *Replica) IsValidator() bool { return c.isValidator() }
