package p2p

import (
	"log/slog"
	"sync"

	"github.com/libp2p/go-libp2p/core/control"
	"github.com/libp2p/go-libp2p/core/network"
	"github.com/libp2p/go-libp2p/core/peer"
	ma "github.com/multiformats/go-multiaddr"
)

// Membership says whether a peer belongs to the network. It is the seam
// where the chain's member list plugs in; until then MemberSet, filled
// from the config, stands in.
type Membership interface {
	IsMember(p peer.ID) bool
}

// MemberSet is a Membership held in memory, safe for concurrent use.
type MemberSet struct {
	mu  sync.RWMutex
	ids map[peer.ID]struct{}
}

// NewMemberSet returns a set holding ids.
func NewMemberSet(ids ...peer.ID) *MemberSet {
	m := &MemberSet{ids: make(map[peer.ID]struct{}, len(ids))}
	for _, id := range ids {
		m.ids[id] = struct{}{}
	}
	return m
}

// IsMember implements Membership.
func (m *MemberSet) IsMember(p peer.ID) bool {
	m.mu.RLock()
	defer m.mu.RUnlock()
	_, ok := m.ids[p]
	return ok
}

// Add admits peers.
func (m *MemberSet) Add(ids ...peer.ID) {
	m.mu.Lock()
	defer m.mu.Unlock()
	for _, id := range ids {
		m.ids[id] = struct{}{}
	}
}

// Set replaces the whole membership; call Gater.Enforce afterwards to cut
// off those no longer in it.
func (m *MemberSet) Set(ids ...peer.ID) {
	next := make(map[peer.ID]struct{}, len(ids))
	for _, id := range ids {
		next[id] = struct{}{}
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	m.ids = next
}

// Remove takes peers out; call Gater.Enforce afterwards to cut them off.
func (m *MemberSet) Remove(ids ...peer.ID) {
	m.mu.Lock()
	defer m.mu.Unlock()
	for _, id := range ids {
		delete(m.ids, id)
	}
}

// Gater is a libp2p ConnectionGater that lets only members through, in
// both directions: outbound dials to non-members are refused before any
// packet leaves, inbound connections as soon as the security handshake has
// proved the remote peer's identity.
type Gater struct {
	self    peer.ID
	members Membership
	logger  *slog.Logger

	mu  sync.RWMutex
	cut map[peer.ID]struct{} // partitioned away by the test switch
}

// NewGater returns a gater for a host whose own ID is self.
func NewGater(self peer.ID, members Membership, logger *slog.Logger) *Gater {
	if logger == nil {
		logger = slog.New(slog.DiscardHandler)
	}
	return &Gater{self: self, members: members, logger: logger}
}

func (g *Gater) admits(p peer.ID) bool {
	if p == g.self {
		return true
	}
	g.mu.RLock()
	_, cut := g.cut[p]
	g.mu.RUnlock()
	return !cut && g.members.IsMember(p)
}

// Partition is a TEST-ONLY switch for multi-process tests: it refuses the
// given peers in both directions, dials and accepts, as if they were not
// members, until Heal. Call Host.Enforce afterwards to close the
// connections they already have.
func (g *Gater) Partition(peers ...peer.ID) {
	g.mu.Lock()
	defer g.mu.Unlock()
	if g.cut == nil {
		g.cut = make(map[peer.ID]struct{}, len(peers))
	}
	for _, p := range peers {
		g.cut[p] = struct{}{}
	}
	g.logger.Info("test switch: partitioned from peers", "peers", peers)
}

// Heal is a TEST-ONLY switch: it ends every Partition. Connections are not
// reopened here; the next dial succeeds.
func (g *Gater) Heal() {
	g.mu.Lock()
	defer g.mu.Unlock()
	if len(g.cut) > 0 {
		g.logger.Info("test switch: partition healed", "peers", len(g.cut))
	}
	g.cut = nil
}

// InterceptPeerDial implements connmgr.ConnectionGater.
func (g *Gater) InterceptPeerDial(p peer.ID) bool {
	if !g.admits(p) {
		g.logger.Debug("refused dial to non-member", "peer", p)
		return false
	}
	return true
}

// InterceptAddrDial implements connmgr.ConnectionGater.
func (g *Gater) InterceptAddrDial(p peer.ID, _ ma.Multiaddr) bool { return g.admits(p) }

// InterceptAccept implements connmgr.ConnectionGater. The peer is not known
// yet; InterceptSecured decides.
func (g *Gater) InterceptAccept(network.ConnMultiaddrs) bool { return true }

// InterceptSecured implements connmgr.ConnectionGater.
func (g *Gater) InterceptSecured(dir network.Direction, p peer.ID, addrs network.ConnMultiaddrs) bool {
	if !g.admits(p) {
		g.logger.Warn("refused connection from non-member", "peer", p, "addr", addrs.RemoteMultiaddr())
		return false
	}
	return true
}

// InterceptUpgraded implements connmgr.ConnectionGater.
func (g *Gater) InterceptUpgraded(c network.Conn) (bool, control.DisconnectReason) {
	return g.admits(c.RemotePeer()), 0
}

// Enforce closes every connection of a peer that is no longer a member,
// which resets its open streams. Call it after the membership shrinks.
func (g *Gater) Enforce(n network.Network) int {
	closed := 0
	for _, p := range n.Peers() {
		if g.admits(p) {
			continue
		}
		g.logger.Info("closing connections of a removed member", "peer", p)
		for _, c := range n.ConnsToPeer(p) {
			for _, s := range c.GetStreams() {
				s.Reset()
			}
		}
		if err := n.ClosePeer(p); err != nil {
			g.logger.Warn("close removed member", "peer", p, "err", err)
		}
		closed++
	}
	return closed
}
