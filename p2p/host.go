package p2p

import (
	"errors"
	"fmt"
	"log/slog"
	"time"

	"github.com/libp2p/go-libp2p"
	"github.com/libp2p/go-libp2p/core/crypto"
	"github.com/libp2p/go-libp2p/core/host"
	"github.com/libp2p/go-libp2p/core/network"
	"github.com/libp2p/go-libp2p/core/pnet"
	rcmgr "github.com/libp2p/go-libp2p/p2p/host/resource-manager"
	"github.com/libp2p/go-libp2p/p2p/net/connmgr"
	noise "github.com/libp2p/go-libp2p/p2p/security/noise"
	libp2ptls "github.com/libp2p/go-libp2p/p2p/security/tls"
	quic "github.com/libp2p/go-libp2p/p2p/transport/quic"
	"github.com/libp2p/go-libp2p/p2p/transport/tcp"
	ma "github.com/multiformats/go-multiaddr"
)

// Limits bound what the host spends on its peers. A zero field means the
// default noted beside it.
type Limits struct {
	// MaxConns bounds all connections (default 512), MaxConnsPerPeer those of
	// one peer (default 8).
	MaxConns, MaxConnsPerPeer int
	// MaxStreams bounds all streams (default 4096), MaxStreamsPerPeer those
	// of one peer (default 512).
	MaxStreams, MaxStreamsPerPeer int
	// MaxMemory bounds the memory the libp2p resource manager hands out, in
	// bytes (default 1 GiB); MaxMemoryPerPeer that of one peer (default 256
	// MiB).
	MaxMemory, MaxMemoryPerPeer int64
	// ConnLow and ConnHigh are the connection manager's watermarks (defaults
	// 100 and 400): above ConnHigh it trims connections down to ConnLow.
	ConnLow, ConnHigh int
}

// DefaultLimits are the limits a zero Limits stands for.
func DefaultLimits() Limits { return Limits{}.withDefaults() }

func (l Limits) withDefaults() Limits {
	def := func(v *int, d int) {
		if *v == 0 {
			*v = d
		}
	}
	def(&l.MaxConns, 512)
	def(&l.MaxConnsPerPeer, 8)
	def(&l.MaxStreams, 4096)
	def(&l.MaxStreamsPerPeer, 512)
	def(&l.ConnLow, 100)
	def(&l.ConnHigh, 400)
	if l.MaxMemory == 0 {
		l.MaxMemory = 1 << 30
	}
	if l.MaxMemoryPerPeer == 0 {
		l.MaxMemoryPerPeer = 256 << 20
	}
	return l
}

// HostConfig configures NewHost.
type HostConfig struct {
	// Identity is the node key (required).
	Identity crypto.PrivKey
	// ListenAddrs are the addresses to listen on (required), e.g.
	// /ip4/127.0.0.1/tcp/4001 and /ip4/127.0.0.1/udp/4001/quic-v1.
	ListenAddrs []ma.Multiaddr
	// AnnounceAddrs, if set, replace the listen addresses in what the host
	// tells its peers.
	AnnounceAddrs []ma.Multiaddr
	// SwarmKey, if set, puts the host in a private network: only peers with
	// the same key complete a handshake. libp2p's pre-shared keys work over
	// TCP only, so QUIC listen addresses are dropped.
	SwarmKey pnet.PSK
	// Members decides who may connect (required).
	Members Membership
	Limits  Limits
	Logger  *slog.Logger
}

// UserAgent is what the host says it runs.
const UserAgent = "auditnet/0.1"

// Host is a libp2p host with its gater.
type Host struct {
	host.Host
	Gater *Gater
}

// NewHost builds and starts the libp2p host: TCP and QUIC (TCP only in a
// private network), TLS and Noise, yamux, the resource manager with the
// configured limits, a connection manager and the membership gater; no
// relay, hole punching, port mapping, mDNS or public bootstrap peers.
func NewHost(cfg HostConfig) (*Host, error) {
	if cfg.Identity == nil || cfg.Members == nil {
		return nil, errors.New("p2p: host needs an identity and a membership")
	}
	if len(cfg.ListenAddrs) == 0 {
		return nil, errors.New("p2p: host needs at least one listen address")
	}
	logger := cfg.Logger
	if logger == nil {
		logger = slog.New(slog.DiscardHandler)
	}
	self, err := PeerIDOf(cfg.Identity)
	if err != nil {
		return nil, err
	}
	lim := cfg.Limits.withDefaults()
	rm, err := resourceManager(lim)
	if err != nil {
		return nil, err
	}
	cm, err := connmgr.NewConnManager(lim.ConnLow, lim.ConnHigh, connmgr.WithGracePeriod(time.Minute))
	if err != nil {
		return nil, fmt.Errorf("p2p: connection manager: %w", err)
	}
	gater := NewGater(self, cfg.Members, logger)
	listen := cfg.ListenAddrs
	opts := []libp2p.Option{
		libp2p.Identity(cfg.Identity),
		libp2p.Security(libp2ptls.ID, libp2ptls.New),
		libp2p.Security(noise.ID, noise.New),
		// Outbound TCP dials from an ephemeral port, not the listening one:
		// two nodes that dial each other at the same moment (daemons started
		// together, each the other's bootstrap peer) would otherwise meet in
		// a TCP simultaneous open where both TLS handshakes fail. Reusing the
		// port only helps NAT traversal, which auditnet does not do.
		libp2p.Transport(tcp.NewTCPTransport, tcp.DisableReuseport()),
		libp2p.ResourceManager(rm),
		libp2p.ConnectionManager(cm),
		libp2p.ConnectionGater(gater),
		libp2p.DisableRelay(),
		libp2p.DisableMetrics(),
		libp2p.UserAgent(UserAgent),
	}
	if cfg.SwarmKey != nil {
		listen = tcpOnly(listen)
		if len(listen) == 0 {
			return nil, errors.New("p2p: a private network (swarm key) runs over TCP only, and no TCP listen address is configured")
		}
		opts = append(opts, libp2p.PrivateNetwork(cfg.SwarmKey))
		logger.Info("private network key set: TCP only (libp2p's pre-shared keys do not work over QUIC)")
	} else {
		opts = append(opts, libp2p.Transport(quic.NewTransport))
	}
	opts = append(opts, libp2p.ListenAddrs(listen...))
	if len(cfg.AnnounceAddrs) > 0 {
		announce := cfg.AnnounceAddrs
		opts = append(opts, libp2p.AddrsFactory(func([]ma.Multiaddr) []ma.Multiaddr { return announce }))
	}
	h, err := libp2p.New(opts...)
	if err != nil {
		rm.Close()
		return nil, fmt.Errorf("p2p: start host: %w", err)
	}
	logger.Info("host started", "peer", h.ID(), "addrs", h.Addrs())
	return &Host{Host: h, Gater: gater}, nil
}

// Enforce closes the connections of peers that are no longer members.
func (h *Host) Enforce() int { return h.Gater.Enforce(h.Network()) }

func tcpOnly(addrs []ma.Multiaddr) []ma.Multiaddr {
	var out []ma.Multiaddr
	for _, a := range addrs {
		if _, err := a.ValueForProtocol(ma.P_TCP); err == nil {
			out = append(out, a)
		}
	}
	return out
}

func resourceManager(l Limits) (network.ResourceManager, error) {
	scaling := rcmgr.DefaultLimits
	libp2p.SetDefaultServiceLimits(&scaling)
	base := scaling.Scale(l.MaxMemory, 4096)
	explicit := rcmgr.PartialLimitConfig{
		System: rcmgr.ResourceLimits{
			Conns:   rcmgr.LimitVal(l.MaxConns),
			Streams: rcmgr.LimitVal(l.MaxStreams),
			Memory:  rcmgr.LimitVal64(l.MaxMemory),
		},
		PeerDefault: rcmgr.ResourceLimits{
			Conns:   rcmgr.LimitVal(l.MaxConnsPerPeer),
			Streams: rcmgr.LimitVal(l.MaxStreamsPerPeer),
			Memory:  rcmgr.LimitVal64(l.MaxMemoryPerPeer),
		},
	}
	rm, err := rcmgr.NewResourceManager(rcmgr.NewFixedLimiter(explicit.Build(base)))
	if err != nil {
		return nil, fmt.Errorf("p2p: resource manager: %w", err)
	}
	return rm, nil
}
