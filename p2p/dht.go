package p2p

import (
	"context"
	"errors"
	"fmt"
	"log/slog"

	"github.com/ipfs/go-cid"
	ds "github.com/ipfs/go-datastore"
	dht "github.com/libp2p/go-libp2p-kad-dht"
	"github.com/libp2p/go-libp2p/core/host"
	"github.com/libp2p/go-libp2p/core/peer"
)

// DHTProtocolPrefix keeps auditnet's DHT apart from the public IPFS one:
// its peers speak /auditnet/kad/1.0.0 and never answer /ipfs/kad/1.0.0.
const DHTProtocolPrefix = "/auditnet"

// DHTConfig configures NewDHT.
type DHTConfig struct {
	// Server makes the node answer DHT queries and store provider records
	// (agencies and the data center); a client only asks (auditors).
	Server bool
	// Bootstrap peers are dialled at start and whenever the routing table
	// empties. There is no default: the public IPFS bootstrap peers are
	// never used.
	Bootstrap []peer.AddrInfo
	// Records, if set, keeps provider records across restarts (see
	// RecordStore); otherwise they live in memory.
	Records ds.Batching
	Logger  *slog.Logger
}

// DHT is the private Kademlia DHT: provider records of dataset roots.
type DHT struct {
	kad    *dht.IpfsDHT
	logger *slog.Logger
}

// NewDHT starts the DHT on h. Close stops it.
func NewDHT(h host.Host, cfg DHTConfig) (*DHT, error) {
	logger := cfg.Logger
	if logger == nil {
		logger = slog.New(slog.DiscardHandler)
	}
	mode := dht.ModeClient
	if cfg.Server {
		mode = dht.ModeServer
	}
	bootstrap := cfg.Bootstrap
	opts := []dht.Option{
		dht.Mode(mode),
		dht.ProtocolPrefix(DHTProtocolPrefix),
		dht.BootstrapPeersFunc(func() []peer.AddrInfo { return bootstrap }),
		dht.DisableValues(),
	}
	if cfg.Records != nil {
		opts = append(opts, dht.Datastore(cfg.Records))
	}
	kad, err := dht.New(h, opts...)
	if err != nil {
		return nil, fmt.Errorf("p2p: start DHT: %w", err)
	}
	return &DHT{kad: kad, logger: logger}, nil
}

// Bootstrap connects to the bootstrap peers and fills the routing table.
// Unreachable peers are logged, not fatal: the node keeps trying.
func (d *DHT) Bootstrap(ctx context.Context, peers []peer.AddrInfo) error {
	h := d.kad.Host()
	ok := 0
	var errs []error
	for _, p := range peers {
		if p.ID == h.ID() {
			continue
		}
		if err := h.Connect(ctx, p); err != nil {
			d.logger.Warn("bootstrap peer unreachable", "peer", p.ID, "err", err)
			errs = append(errs, err)
			continue
		}
		ok++
	}
	if err := d.kad.Bootstrap(ctx); err != nil {
		return fmt.Errorf("p2p: bootstrap DHT: %w", err)
	}
	if ok == 0 && len(errs) > 0 {
		return fmt.Errorf("p2p: no bootstrap peer reachable: %w", errors.Join(errs...))
	}
	return nil
}

// Provide announces that this node holds root.
func (d *DHT) Provide(ctx context.Context, root cid.Cid) error {
	if err := d.kad.Provide(ctx, root, true); err != nil {
		return fmt.Errorf("p2p: provide %s: %w", root, err)
	}
	return nil
}

// FindProviders returns up to max peers that announced root (max ≤ 0:
// up to 20). It ends when it has max or the query has run its course.
func (d *DHT) FindProviders(ctx context.Context, root cid.Cid, max int) ([]peer.AddrInfo, error) {
	if max <= 0 {
		max = 20
	}
	var out []peer.AddrInfo
	for p := range d.kad.FindProvidersAsync(ctx, root, max) {
		out = append(out, p)
	}
	if len(out) == 0 && ctx.Err() != nil {
		return nil, fmt.Errorf("p2p: find providers of %s: %w", root, ctx.Err())
	}
	return out, nil
}

// FindPeer returns the addresses of peer p: those the host knows, else
// what the DHT finds.
func (d *DHT) FindPeer(ctx context.Context, p peer.ID) (peer.AddrInfo, error) {
	info, err := d.kad.FindPeer(ctx, p)
	if err != nil {
		return peer.AddrInfo{}, fmt.Errorf("p2p: find peer %s: %w", p, err)
	}
	return info, nil
}

// RoutingTableSize is the number of peers in the routing table.
func (d *DHT) RoutingTableSize() int { return d.kad.RoutingTable().Size() }

// RefreshRoutingTable refreshes the routing table and waits for it.
func (d *DHT) RefreshRoutingTable(ctx context.Context) error {
	select {
	case err := <-d.kad.ForceRefresh():
		return err
	case <-ctx.Done():
		return ctx.Err()
	}
}

// Close stops the DHT.
func (d *DHT) Close() error { return d.kad.Close() }
