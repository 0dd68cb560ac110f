package node

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"time"

	"github.com/ipfs/go-cid"
	"github.com/libp2p/go-libp2p/core/crypto"
	"github.com/libp2p/go-libp2p/core/peer"
	"github.com/libp2p/go-libp2p/core/peerstore"
	"github.com/libp2p/go-libp2p/core/pnet"
	"golang.org/x/sync/errgroup"

	"auditnet/chain"
	"auditnet/p2p"
	"auditnet/storage"
	"auditnet/storage/unixfs"
)

// DaemonOptions configure RunDaemon.
type DaemonOptions struct {
	Logger *slog.Logger
	// Ready, if set, is called once the node is up, with the API's URL.
	Ready func(apiURL string)
	// RecoverWAL lets a validator whose chain WAL is missing start with an
	// empty one (see ErrWALMissing).
	RecoverWAL bool
}

// Daemon is a running node: the repo, the libp2p host, the DHT, the fetch
// service and fetcher, the reprovider and the HTTP API. RunDaemon owns it.
type Daemon struct {
	repo       *Repo
	net        NetConfig
	key        crypto.PrivKey
	host       *p2p.Host
	dht        *p2p.DHT
	records    *p2p.RecordStore
	authorizer *configAuthorizer
	members    *p2p.MemberSet
	service    *p2p.FetchService
	fetcher    *p2p.Fetcher
	reprovider *reprovider
	// chain runs the chain when the repo has a genesis.json; nil before.
	// gate and acks then decide and record access from the chain.
	chain  *chainNode
	gate   *accessGate
	acks   *p2p.AckService
	token  string
	logger *slog.Logger
}

// RunDaemon runs the node of the repo in dir until ctx is cancelled (the
// CLI cancels it on SIGINT and SIGTERM), then stops every part and
// returns.
func RunDaemon(ctx context.Context, dir string, opts DaemonOptions) (err error) {
	logger := opts.Logger
	if logger == nil {
		logger = slog.New(slog.DiscardHandler)
	}
	r, err := OpenRepo(dir, OpenOptions{Logger: logger})
	if err != nil {
		return err
	}
	defer func() { err = joinNew(err, r.Close()) }()
	d, err := startDaemon(r, opts, logger)
	if err != nil {
		return err
	}
	defer func() { err = joinNew(err, d.close()) }()

	ln, err := net.Listen("tcp", d.net.API)
	if err != nil {
		return fmt.Errorf("API listen on %s: %w", d.net.API, err)
	}
	apiURL := "http://" + ln.Addr().String()
	srv := &http.Server{Handler: d.apiHandler(ln.Addr().String()), ReadHeaderTimeout: 10 * time.Second}
	if err := storage.WriteFileAtomic(storage.OSFS{}, filepath.Join(dir, apiFile), []byte(apiURL+"\n"), 0o600); err != nil {
		ln.Close()
		return fmt.Errorf("write %s: %w", apiFile, err)
	}
	defer os.Remove(filepath.Join(dir, apiFile))

	g, gctx := errgroup.WithContext(ctx)
	// Requests run under the daemon's context: stopping the daemon cancels
	// a fetch in progress instead of waiting for it.
	srv.BaseContext = func(net.Listener) context.Context { return gctx }
	g.Go(func() error { return d.reprovider.run(gctx) })
	if d.chain != nil {
		g.Go(func() error { return d.chain.Run(gctx) })
		g.Go(func() error { return d.gate.run(gctx) })
	} else {
		g.Go(func() error { return d.watchMembership(gctx) })
	}
	g.Go(func() error {
		if err := srv.Serve(ln); !errors.Is(err, http.ErrServerClosed) {
			return fmt.Errorf("API: %w", err)
		}
		return nil
	})
	g.Go(func() error {
		<-gctx.Done()
		shutdown, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		if err := srv.Shutdown(shutdown); err != nil {
			logger.Warn("API requests still running at shutdown; closing them", "err", err)
			return srv.Close()
		}
		return nil
	})
	g.Go(func() error {
		boot, cancel := context.WithTimeout(gctx, 30*time.Second)
		defer cancel()
		if len(d.net.Bootstrap) == 0 {
			return nil
		}
		if err := d.dht.Bootstrap(boot, d.net.Bootstrap); err != nil && gctx.Err() == nil {
			logger.Warn("DHT bootstrap incomplete; the DHT keeps trying", "err", err)
		}
		return nil
	})
	logger.Info("daemon ready", "peer", d.host.ID(), "api", apiURL, "role", r.Config.Role)
	if opts.Ready != nil {
		opts.Ready(apiURL)
	}
	err = g.Wait()
	logger.Info("daemon stopping")
	if errors.Is(err, context.Canceled) {
		err = nil
	}
	return err
}

// joinNew adds to err the errors of closing that err does not already
// hold: a part whose error stopped the daemon (the chain WAL's is sticky)
// returns it again from Close, and the user should read it once, in one
// line.
func joinNew(err, closeErr error) error {
	if closeErr == nil || errors.Is(err, closeErr) {
		return err
	}
	if j, ok := closeErr.(interface{ Unwrap() []error }); ok {
		for _, e := range j.Unwrap() {
			err = joinNew(err, e)
		}
		return err
	}
	return errors.Join(err, closeErr)
}

func startDaemon(r *Repo, opts DaemonOptions, logger *slog.Logger) (*Daemon, error) {
	ncfg, err := r.Config.Parse()
	if err != nil {
		return nil, err
	}
	key, err := p2p.ReadIdentity(filepath.Join(r.Dir, identityFile))
	if err != nil {
		return nil, err
	}
	if id, _ := p2p.PeerIDOf(key); id.String() != r.Config.Identity.PeerID {
		return nil, fmt.Errorf("config Identity.PeerID %s does not match the key in %s (%s)", r.Config.Identity.PeerID, identityFile, id)
	}
	tok, err := os.ReadFile(filepath.Join(r.Dir, tokenFile))
	if err != nil {
		return nil, fmt.Errorf("read API token: %w", err)
	}
	psk, err := readSwarmKey(r.Dir)
	if err != nil {
		return nil, err
	}
	d := &Daemon{repo: r, net: ncfg, key: key, token: strings.TrimSpace(string(tok)), logger: logger}
	d.members = p2p.NewMemberSet(memberIDs(ncfg)...)
	d.authorizer = &configAuthorizer{}
	d.authorizer.set(ncfg)
	network := r.Config.Network
	var members p2p.Membership = d.members
	if d.chain, err = startChain(r, key, ncfg, opts, logger); err != nil {
		return nil, err
	}
	if d.chain != nil {
		// The chain's member list replaces the config's, and its id the
		// network name.
		members, network = d.chain, d.chain.genesis.ChainID
	}
	d.host, err = p2p.NewHost(p2p.HostConfig{
		Identity: key, ListenAddrs: ncfg.Listen, AnnounceAddrs: ncfg.Announce, SwarmKey: psk,
		Members: members, Limits: ncfg.Limits, Logger: logger,
	})
	if err != nil {
		if d.chain != nil {
			err = errors.Join(err, d.chain.close())
		}
		return nil, err
	}
	fail := func(err error) (*Daemon, error) {
		d.close()
		return nil, err
	}
	if d.chain != nil {
		if err := d.chain.attach(d.host); err != nil {
			return fail(err)
		}
	}
	server := r.Config.Role != RoleAuditor
	if d.records, err = p2p.OpenRecordStore(filepath.Join(r.Dir, dhtDir)); err != nil {
		return fail(err)
	}
	if d.dht, err = p2p.NewDHT(d.host, p2p.DHTConfig{Server: server, Bootstrap: ncfg.Bootstrap, Records: d.records, Logger: logger}); err != nil {
		return fail(err)
	}
	fcfg := p2p.FetchServiceConfig{
		Host: d.host, Store: r.Store, Network: network,
		Authorizer: d.authorizer,
		Freshness:  ncfg.Freshness, MaxConcurrent: ncfg.MaxConcurrent, MaxPerPeer: ncfg.MaxPerPeer, Logger: logger,
	}
	if d.chain != nil {
		// Strict mode: the chain decides every fetch, and what was served
		// goes on the chain.
		d.gate = newAccessGate(d.chain, func(ctx context.Context, root cid.Cid, path string) ([]int, error) {
			_, links, err := unixfs.ResolveLinks(ctx, r.Store, root, path)
			return links, err
		}, logger)
		fcfg.Authorizer, fcfg.Finished = d.gate, d.gate.finished
		d.acks = p2p.NewAckService(d.host, d.gate.acknowledge, logger)
	}
	d.service, err = p2p.NewFetchService(fcfg)
	if err != nil {
		return fail(err)
	}
	if d.fetcher, err = p2p.NewFetcher(p2p.FetcherConfig{Host: d.host, Identity: key, Network: network, Store: r.Store, Logger: logger}); err != nil {
		return fail(err)
	}
	d.reprovider = newReprovider(filepath.Join(r.Dir, reprovideFile), ncfg.Reprovide, r.Store, d.dht, logger)
	if d.chain != nil {
		// On the chain, only datasets anchored open are announced.
		d.reprovider.allowed = d.chain.isOpenDataset
	}
	return d, nil
}

func (d *Daemon) close() error {
	var errs []error
	if d.service != nil {
		errs = append(errs, d.service.Close())
	}
	if d.acks != nil {
		errs = append(errs, d.acks.Close())
	}
	if d.dht != nil {
		errs = append(errs, d.dht.Close())
	}
	if d.host != nil {
		errs = append(errs, d.host.Close())
	}
	if d.records != nil {
		errs = append(errs, d.records.Close())
	}
	if d.chain != nil {
		errs = append(errs, d.chain.close())
	}
	return errors.Join(errs...)
}

// readSwarmKey reads the optional private-network key.
func readSwarmKey(dir string) (pnet.PSK, error) {
	f, err := os.Open(filepath.Join(dir, swarmKeyFile))
	if errors.Is(err, os.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("read swarm key: %w", err)
	}
	defer f.Close()
	psk, err := pnet.DecodeV1PSK(f)
	if err != nil {
		return nil, fmt.Errorf("read swarm key %s: %w", filepath.Join(dir, swarmKeyFile), err)
	}
	return psk, nil
}

// configAuthorizer authorises fetches from the peers the config's
// Fetch.Allow lists ("*": every member; the gater has already checked
// membership). The chain replaces it.
type configAuthorizer struct {
	mu    sync.RWMutex
	all   bool
	allow map[peer.ID]bool
}

func (a *configAuthorizer) set(n NetConfig) {
	allow := make(map[peer.ID]bool, len(n.Allow))
	for _, p := range n.Allow {
		allow[p] = true
	}
	a.mu.Lock()
	defer a.mu.Unlock()
	a.all, a.allow = n.AllowAll, allow
}

func (a *configAuthorizer) Authorize(_ context.Context, req *p2p.FetchRequest) error {
	a.mu.RLock()
	defer a.mu.RUnlock()
	if a.all || a.allow[req.RequesterID()] {
		return nil
	}
	return errors.New("requester not in this node's Fetch.Allow")
}

// memberIDs is who may connect: the configured members and the bootstrap
// peers.
func memberIDs(n NetConfig) []peer.ID {
	ids := append([]peer.ID(nil), n.Members...)
	for _, b := range n.Bootstrap {
		ids = append(ids, b.ID)
	}
	return ids
}

// configPollInterval is how often the daemon looks for a changed config.
const configPollInterval = 2 * time.Second

// watchMembership applies changes to the config's Members, Bootstrap and
// Fetch.Allow while the daemon runs: a peer taken out of the membership
// has its connections closed and its streams reset within a poll interval.
// Other keys take effect at the next start. An invalid config is logged
// and ignored.
func (d *Daemon) watchMembership(ctx context.Context) error {
	path := filepath.Join(d.repo.Dir, configFile)
	last := modTime(path)
	t := time.NewTicker(configPollInterval)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return nil
		case <-t.C:
		}
		mt := modTime(path)
		if mt.Equal(last) {
			continue
		}
		last = mt
		c, err := ReadConfig(d.repo.Dir)
		var n NetConfig
		if err == nil {
			n, err = c.Parse()
		}
		if err != nil {
			d.logger.Warn("config changed but does not validate; keeping the running membership", "err", err)
			continue
		}
		d.members.Set(memberIDs(n)...)
		d.authorizer.set(n)
		closed := d.host.Enforce()
		d.logger.Info("membership reloaded from the config", "members", len(n.Members), "disconnected", closed)
	}
}

func modTime(path string) time.Time {
	fi, err := os.Stat(path)
	if err != nil {
		return time.Time{}
	}
	return fi.ModTime()
}

// ErrNoProviders is returned when the DHT knows no holder of a dataset.
var ErrNoProviders = errors.New("no provider found")

// providers finds the holders of root, without this node.
func (d *Daemon) providers(ctx context.Context, root cid.Cid) ([]peer.AddrInfo, error) {
	ctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	found, err := d.dht.FindProviders(ctx, root, 20)
	if err != nil {
		return nil, err
	}
	out := found[:0]
	for _, p := range found {
		if p.ID == d.host.ID() {
			continue
		}
		d.host.Peerstore().AddAddrs(p.ID, p.Addrs, peerstore.TempAddrTTL)
		out = append(out, p)
	}
	return out, nil
}

func (d *Daemon) fetchOptions(ctx context.Context, root cid.Cid) (p2p.FetchOptions, error) {
	provs, err := d.providers(ctx, root)
	if err != nil {
		return p2p.FetchOptions{}, err
	}
	if len(provs) == 0 {
		return p2p.FetchOptions{}, fmt.Errorf("%s: %w in the DHT", root, ErrNoProviders)
	}
	opts := p2p.FetchOptions{Purpose: "get"}
	for _, p := range provs {
		opts.Providers = append(opts.Providers, p.ID)
	}
	return opts, nil
}

// held reports whether the node keeps root's DAG (pinned: added here, or
// fetched before).
func (d *Daemon) held(ctx context.Context, root cid.Cid) (bool, error) {
	_, pinned, err := d.repo.Store.PinOrigin(ctx, root)
	return pinned, err
}

// Cat writes the file ref names: from the repo if the node keeps its
// dataset, else fetched from the network, verified as it streams.
//
// On the chain, a fetch is an access: the chain decides it first
// (requestAccess), o saying why, and the holder it names serves it.
func (d *Daemon) Cat(ctx context.Context, ref Ref, w io.Writer, o AccessOptions) error {
	held, err := d.held(ctx, ref.Root)
	if err != nil {
		return err
	}
	if held {
		return d.repo.Cat(ctx, ref, w)
	}
	src, err := d.source(ctx, ref, o, "cat")
	if err != nil {
		return err
	}
	stats, err := d.fetcher.Cat(ctx, ref.Root, ref.Path, w, src.opts)
	return src.done(ctx, stats, err)
}

// fetchSource is where a fetch comes from: on the chain, the holder of an
// access the chain authorised; else the providers the DHT names.
type fetchSource struct {
	opts p2p.FetchOptions
	// access is the authorised access (chain only).
	access *access
	d      *Daemon
}

// source finds where ref comes from; on the chain it first has the chain
// decide the access (requestAccess).
func (d *Daemon) source(ctx context.Context, ref Ref, o AccessOptions, purpose string) (fetchSource, error) {
	if d.chain == nil {
		opts, err := d.fetchOptions(ctx, ref.Root)
		return fetchSource{opts: opts, d: d}, err
	}
	a, err := d.requestAccess(ctx, ref.Root, ref.Path, o)
	if err != nil {
		return fetchSource{}, err
	}
	opts, err := d.accessFetchOptions(ctx, a, purpose)
	return fetchSource{opts: opts, access: &a, d: d}, err
}

// done settles a fetch from src: on the chain, a completed fetch is
// acknowledged to the holder and a failed one explained.
func (src fetchSource) done(ctx context.Context, stats p2p.FetchStats, err error) error {
	switch {
	case src.access == nil:
		return err
	case err != nil:
		return holderFailed(*src.access, err)
	}
	src.d.acknowledge(ctx, *src.access, stats.Bytes, stats.Blocks)
	return nil
}

// Get writes what ref names to dst: fetched into the repo first (pinned as
// fetched: kept, never served or announced) unless the node keeps it.
// It reports what was fetched (nothing, if the node held it).
func (d *Daemon) Get(ctx context.Context, ref Ref, dst string, opts GetOptions) (Fetched, error) {
	var out Fetched
	held, err := d.held(ctx, ref.Root)
	if err != nil {
		return out, err
	}
	if !held {
		src, err := d.source(ctx, ref, opts.Access, "get")
		if err != nil {
			return out, err
		}
		stats, err := d.fetcher.Get(ctx, ref.Root, ref.Path, src.opts)
		if err := src.done(ctx, stats, err); err != nil {
			return out, err
		}
		d.logger.Info("fetched", "cid", stats.Target, "bytes", stats.Bytes, "requests", stats.Requests)
		ref = Ref{Root: stats.Target}
		out = Fetched{Bytes: stats.Bytes, Blocks: stats.Blocks, Requests: stats.Requests, FromProvider: map[string]int64{}, Dropped: map[string]string{}}
		if src.access != nil {
			out.Request = src.access.tx.String()
		}
		for p, n := range stats.FromProvider {
			out.FromProvider[p.String()] = n
		}
		for p, why := range stats.DroppedReasons {
			out.Dropped[p.String()] = why
		}
	}
	return out, d.repo.Get(ctx, ref, dst, opts)
}

// Fetched reports a fetch from the network.
type Fetched struct {
	// Request is the access request on the chain the fetch was made
	// under (strict mode).
	Request       string `json:",omitempty"`
	Bytes, Blocks int64
	Requests      int
	// FromProvider counts the bytes each provider sent; Dropped says why a
	// provider was dropped.
	FromProvider map[string]int64  `json:",omitempty"`
	Dropped      map[string]string `json:",omitempty"`
}

// Add imports paths as Add does. On an agency's node that runs the chain
// it then anchors each root (unless NoPin) with opts.Policy and returns
// once every anchor has committed; only roots anchored open are announced
// in the DHT. A node without the chain announces every root it pinned.
func (d *Daemon) Add(ctx context.Context, paths []string, opts AddOptions) (AddResult, error) {
	res, err := Add(ctx, d.repo, paths, opts)
	if err != nil || opts.NoPin {
		return res, err
	}
	if d.chain == nil {
		for _, root := range res.Roots {
			d.reprovider.announce(root.Cid)
		}
		return res, nil
	}
	if d.repo.Config.Role != RoleAgency {
		return res, nil // only agencies anchor; the roots stay local
	}
	if opts.Policy == "" {
		opts.Policy = chain.PolicyRestricted
	}
	for i := range res.Roots {
		root := &res.Roots[i]
		a, err := d.chain.anchor(ctx, root.Cid, root.DAGSize, root.Path, opts.Policy)
		if err != nil {
			return res, fmt.Errorf("%s is stored and pinned but not anchored: %w", root.Cid, err)
		}
		root.Anchor = &a
		if a.Policy == chain.PolicyOpen {
			d.reprovider.announce(root.Cid)
		}
	}
	return res, nil
}

// PinAdd pins DAGs, fetching from the network (as `ipfs pin add` does)
// those the repo does not hold in full; fetched DAGs are pinned as
// fetched.
func (d *Daemon) PinAdd(ctx context.Context, roots []cid.Cid) error {
	for _, root := range roots {
		err := d.repo.PinAdd(ctx, []cid.Cid{root})
		if !errors.Is(err, storage.ErrNotFound) {
			if err != nil {
				return err
			}
			continue
		}
		fopts, err := d.fetchOptions(ctx, root)
		if err != nil {
			return err
		}
		stats, err := d.fetcher.Get(ctx, root, "", fopts)
		if err != nil {
			return err
		}
		d.logger.Info("fetched", "cid", root, "bytes", stats.Bytes, "requests", stats.Requests)
	}
	return nil
}
