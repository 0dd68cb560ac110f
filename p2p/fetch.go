package p2p

import (
	"bufio"
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"sync"
	"time"

	"github.com/ipfs/go-cid"
	"github.com/libp2p/go-libp2p/core/host"
	"github.com/libp2p/go-libp2p/core/network"
	"github.com/libp2p/go-libp2p/core/peer"

	"auditnet/storage"
)

// Authorizer decides whether a request that is well formed, signed,
// fresh, addressed to this node and not replayed may be served. It must
// not depend on whether this node holds the data: a refusal has to look
// the same either way. The chain will implement it; until then the node's
// config does.
type Authorizer interface {
	Authorize(ctx context.Context, req *FetchRequest) error
}

// AllowAll authorises every request; for tests and closed networks.
type AllowAll struct{}

// Authorize implements Authorizer.
func (AllowAll) Authorize(context.Context, *FetchRequest) error { return nil }

// Defaults of FetchServiceConfig.
const (
	DefaultFreshness     = 2 * time.Minute
	DefaultMaxConcurrent = 32
	DefaultMaxPerPeer    = 8
)

// FetchServiceConfig configures NewFetchService.
type FetchServiceConfig struct {
	Host       host.Host
	Store      *storage.Store
	Network    string
	Authorizer Authorizer
	// Freshness is how far a request's time may be from this node's clock
	// (default 2 minutes); nonces are remembered that long.
	Freshness time.Duration
	// MaxConcurrent bounds the fetches served at once (default 32), and
	// MaxPerPeer those served to one peer (default 8): one member cannot
	// take every slot.
	MaxConcurrent, MaxPerPeer int
	// IdleTimeout bounds every read and write of a stream (default 30 s).
	IdleTimeout time.Duration
	// Finished, if set, is told of every authorised request once its
	// stream has ended: the bytes and blocks sent, and whether the whole
	// scope was (the audit layer records what it served).
	Finished func(req *FetchRequest, bytes, blocks uint64, complete bool)
	Now      func() time.Time
	Logger   *slog.Logger
}

// FetchService serves /auditnet/fetch/1: it checks each request, then
// streams the requested scope of a root this node holds as its source, as
// a CAR whose blocks come in the traversal order both ends compute.
type FetchService struct {
	cfg    FetchServiceConfig
	replay *replayCache
	slots  chan struct{}
	mu     sync.Mutex
	busy   map[peer.ID]int // fetches running per peer
	// closed (under mu) stops new streams from joining wg once Close
	// waits on it.
	closed bool
	ctx    context.Context
	cancel context.CancelFunc
	wg     sync.WaitGroup
}

// NewFetchService registers the fetch handler on the host. Close removes
// it and waits for running streams.
func NewFetchService(cfg FetchServiceConfig) (*FetchService, error) {
	if cfg.Host == nil || cfg.Store == nil || cfg.Authorizer == nil || cfg.Network == "" {
		return nil, errors.New("p2p: fetch service needs a host, a store, an authorizer and a network id")
	}
	if cfg.Freshness == 0 {
		cfg.Freshness = DefaultFreshness
	}
	if cfg.MaxConcurrent == 0 {
		cfg.MaxConcurrent = DefaultMaxConcurrent
	}
	if cfg.MaxPerPeer == 0 {
		cfg.MaxPerPeer = DefaultMaxPerPeer
	}
	if cfg.IdleTimeout == 0 {
		cfg.IdleTimeout = 30 * time.Second
	}
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.DiscardHandler)
	}
	ctx, cancel := context.WithCancel(context.Background())
	s := &FetchService{
		cfg:    cfg,
		replay: newReplayCache(),
		slots:  make(chan struct{}, cfg.MaxConcurrent),
		busy:   make(map[peer.ID]int),
		ctx:    ctx,
		cancel: cancel,
	}
	cfg.Host.SetStreamHandler(FetchProtocol, s.handle)
	return s, nil
}

// Close stops serving: new streams are refused, running ones reset.
func (s *FetchService) Close() error {
	s.cfg.Host.RemoveStreamHandler(FetchProtocol)
	s.cancel()
	s.mu.Lock()
	s.closed = true
	s.mu.Unlock()
	s.wg.Wait()
	return nil
}

func (s *FetchService) handle(st network.Stream) {
	s.mu.Lock()
	if s.closed {
		s.mu.Unlock()
		st.Reset()
		return
	}
	s.wg.Add(1)
	s.mu.Unlock()
	defer s.wg.Done()
	ctx, cancel := context.WithCancel(s.ctx)
	defer cancel()
	stop := context.AfterFunc(ctx, func() { st.Reset() })
	defer stop()
	remote := st.Conn().RemotePeer()
	log := s.cfg.Logger.With("peer", remote)
	if err := s.serve(ctx, st, remote, log); err != nil {
		if errors.Is(err, storage.ErrCorrupt) {
			// Serving re-reads every block through the store's hash check,
			// so damage to this node's own data shows here first.
			log.Error("a block this node serves is corrupt; run 'auditnet repo verify'", "err", err)
		} else {
			log.Debug("fetch stream ended with an error", "err", err)
		}
		st.Reset()
		return
	}
	st.Close()
}

func (s *FetchService) serve(ctx context.Context, st network.Stream, remote peer.ID, log *slog.Logger) (err error) {
	st.SetReadDeadline(s.cfg.Now().Add(s.cfg.IdleTimeout))
	br := bufio.NewReaderSize(io.LimitReader(st, maxRequestSize+16), 4096)
	raw, err := readFrame(br, maxRequestSize)
	if err != nil {
		return s.reply(st, replyRefused, "malformed request")
	}
	req, reason := s.check(ctx, raw, remote)
	if reason != "" {
		log.Warn("refused fetch request", "reason", reason)
		return s.reply(st, replyRefused, reason)
	}
	var sent *sendingGetter
	complete := false
	if s.cfg.Finished != nil {
		defer func() {
			var bytes, blocks uint64
			if sent != nil {
				bytes, blocks = uint64(sent.bytes), uint64(sent.blocks)
			}
			s.cfg.Finished(req, bytes, blocks, complete && err == nil)
		}()
	}
	if !s.acquire(remote) {
		return s.reply(st, replyBusy, "too many fetches running")
	}
	defer s.release(remote)
	// Only now is the store consulted.
	origin, pinned, err := s.cfg.Store.PinOrigin(ctx, req.Root.Cid)
	if err != nil {
		return err
	}
	if !pinned || origin != storage.PinLocal {
		return s.reply(st, replyNotHeld, "this node is not a source of "+req.Root.String())
	}
	var targets []target
	if req.Scope.Path == "" {
		if targets, err = s.resolveLinkPaths(ctx, req.Root.Cid, req.Scope.Links); err != nil {
			return s.reply(st, replyBadScope, err.Error())
		}
	}
	if err := s.reply(st, replyOK, ""); err != nil {
		return err
	}
	hdr, err := encodeCarHeader(req.Root.Cid)
	if err != nil {
		return err
	}
	bw := bufio.NewWriterSize(&deadlineWriter{st: st, idle: s.cfg.IdleTimeout, now: s.cfg.Now}, 1<<20)
	if err := writeFrame(bw, hdr); err != nil {
		return err
	}
	src := newSendingGetter(s.cfg.Store, bw)
	sent = src
	defer func() {
		if err != nil {
			st.Reset() // unblocks the writer
		}
		src.stop()
	}()
	tr := newTraversal(req.Scope, src.get, func(cid.Cid, []byte) error { return nil })
	if req.Scope.Path != "" {
		if err := tr.resolvePath(ctx, req.Root.Cid, req.Scope.Path); err != nil {
			// The requester runs the same resolution on the same blocks and
			// meets the same error: end the stream after what was sent.
			log.Debug("fetch path does not resolve", "cid", req.Root.Cid, "err", err)
			return src.finish()
		}
	} else {
		tr.push(targets)
	}
	start := time.Now()
	if err := tr.run(ctx); err != nil {
		if errors.Is(err, ErrUnsupportedDAG) {
			// As for a path that does not resolve: the requester checks the
			// block just sent and meets the same error, so end the stream
			// cleanly rather than look like a failing provider.
			log.Debug("fetch DAG unsupported", "cid", req.Root.Cid, "err", err)
			return src.finish()
		}
		return fmt.Errorf("send %s: %w", req.Root.Cid, err)
	}
	if err := src.finish(); err != nil {
		return err
	}
	complete = true
	log.Info("served fetch", "cid", req.Root.Cid, "bytes", src.bytes, "blocks", src.blocks, "took", time.Since(start))
	return st.CloseWrite()
}

// acquire takes a serving slot for p, if both the node and p have one
// free.
func (s *FetchService) acquire(p peer.ID) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.busy[p] >= s.cfg.MaxPerPeer {
		return false
	}
	select {
	case s.slots <- struct{}{}:
	default:
		return false
	}
	s.busy[p]++
	return true
}

func (s *FetchService) release(p peer.ID) {
	s.mu.Lock()
	defer s.mu.Unlock()
	<-s.slots
	if s.busy[p]--; s.busy[p] == 0 {
		delete(s.busy, p)
	}
}

// check runs every test a request must pass before the store is touched,
// and returns the reason for a refusal ("" if none). Nothing here depends
// on the data, so the reply to a refused request is the same whether or
// not this node holds it.
func (s *FetchService) check(ctx context.Context, raw []byte, remote peer.ID) (*FetchRequest, string) {
	req, err := DecodeSignedRequest(raw)
	switch {
	case errors.Is(err, errBadSignature):
		return nil, "bad signature"
	case err != nil:
		return nil, "malformed request"
	case req.Network != s.cfg.Network:
		return nil, "wrong network"
	case req.RequesterID() != remote:
		return nil, "requester is not the peer on this stream"
	case req.ProviderID() != s.cfg.Host.ID():
		return nil, "request is addressed to another provider"
	}
	now := s.cfg.Now()
	if d := now.Sub(req.RequestTime()); d > s.cfg.Freshness || d < -s.cfg.Freshness {
		return nil, "stale request"
	}
	if !s.replay.add(remote, req.Nonce, req.RequestTime().Add(s.cfg.Freshness), now) {
		return nil, "replayed request"
	}
	if err := s.cfg.Authorizer.Authorize(ctx, req); err != nil {
		return nil, "not authorised: " + err.Error()
	}
	return req, ""
}

func (s *FetchService) reply(st network.Stream, code int, msg string) error {
	b, err := encodeReply(code, msg)
	if err != nil {
		return err
	}
	st.SetWriteDeadline(s.cfg.Now().Add(s.cfg.IdleTimeout))
	if err := writeFrame(st, b); err != nil {
		return err
	}
	if code != replyOK {
		return st.CloseWrite()
	}
	return nil
}

// resolveLinkPaths follows link paths from root through this node's own
// store. The blocks on the way are not sent: the requester built the paths
// from them.
func (s *FetchService) resolveLinkPaths(ctx context.Context, root cid.Cid, paths [][]int) ([]target, error) {
	if len(paths) == 0 {
		return []target{{c: root, path: []int{}}}, nil
	}
	// Consecutive paths mostly share a parent: keep the last one's links.
	var (
		lastKey   string
		lastLinks []cid.Cid
		lastSizes []uint64
		haveLast  bool
	)
	out := make([]target, 0, len(paths))
	for _, lp := range paths {
		if len(lp) == 0 {
			out = append(out, target{c: root, path: []int{}})
			continue
		}
		parentKey := fmt.Sprint(lp[:len(lp)-1])
		var links []cid.Cid
		var sizes []uint64
		if haveLast && parentKey == lastKey {
			links, sizes = lastLinks, lastSizes
		} else {
			c := root
			var err error
			for depth, i := range lp[:len(lp)-1] {
				if links, _, err = s.linksOf(ctx, c); err != nil {
					return nil, err
				}
				if i >= len(links) {
					return nil, fmt.Errorf("link path %v: no link %d at depth %d", lp, i, depth)
				}
				c = links[i]
			}
			if links, sizes, err = s.linksOf(ctx, c); err != nil {
				return nil, err
			}
			lastKey, lastLinks, lastSizes, haveLast = parentKey, links, sizes, true
		}
		i := lp[len(lp)-1]
		if i >= len(links) {
			return nil, fmt.Errorf("link path %v: no link %d", lp, i)
		}
		out = append(out, target{c: links[i], path: lp, tsize: sizes[i]})
	}
	return out, nil
}

func (s *FetchService) linksOf(ctx context.Context, c cid.Cid) ([]cid.Cid, []uint64, error) {
	b, err := s.cfg.Store.Get(ctx, c)
	if err != nil {
		return nil, nil, fmt.Errorf("read %s: %w", c, err)
	}
	return blockLinks(c, b)
}

// sendingGetter reads blocks from the store for the traversal and hands
// each to a writing goroutine, which sends it as a CAR section: reading
// and hashing the next block overlap with sending this one.
type sendingGetter struct {
	store  *storage.Store
	w      *bufio.Writer
	out    chan sendItem
	failed chan struct{} // closed when the writer fails
	done   chan struct{} // closed when the writer has returned
	err    error         // the writer's error, read after done
	closed bool
	bytes  int64
	blocks int64
}

type sendItem struct {
	c    cid.Cid
	data []byte
}

// newSendingGetter starts the writing goroutine; finish or stop ends it.
func newSendingGetter(store *storage.Store, w *bufio.Writer) *sendingGetter {
	g := &sendingGetter{store: store, w: w, out: make(chan sendItem, 8), failed: make(chan struct{}), done: make(chan struct{})}
	go g.write()
	return g
}

func (g *sendingGetter) get(ctx context.Context, c cid.Cid) ([]byte, error) {
	if b, ok := identityBlock(c); ok {
		return b, nil
	}
	b, err := g.store.Get(ctx, c)
	if err != nil {
		return nil, fmt.Errorf("read %s: %w", c, err)
	}
	select {
	case g.out <- sendItem{c, b}:
	case <-g.failed:
		// g.err was set before failed closed. Waiting for done here would
		// deadlock: the writer drains out until stop closes it.
		return nil, g.err
	case <-ctx.Done():
		return nil, ctx.Err()
	}
	g.bytes += int64(len(b))
	g.blocks++
	return b, nil
}

// write sends what get hands over, until finish or stop closes the queue.
func (g *sendingGetter) write() {
	defer close(g.done)
	for it := range g.out {
		if err := writeSection(g.w, it.c, it.data); err != nil {
			g.err = err
			close(g.failed)
			for range g.out {
			}
			return
		}
	}
	g.err = g.w.Flush()
}

// finish waits for everything handed over to be sent and flushed.
func (g *sendingGetter) finish() error {
	g.closed = true
	close(g.out)
	<-g.done
	return g.err
}

// stop ends the writer if finish was not reached; the caller has reset
// the stream, so the writer's pending writes fail fast.
func (g *sendingGetter) stop() {
	if !g.closed {
		g.closed = true
		close(g.out)
	}
	<-g.done
}

func writeSection(w *bufio.Writer, c cid.Cid, data []byte) error {
	var hdr [binary.MaxVarintLen64 + 128]byte
	cb := c.Bytes()
	h := binary.AppendUvarint(hdr[:0], uint64(len(cb)+len(data)))
	h = append(h, cb...)
	if _, err := w.Write(h); err != nil {
		return err
	}
	_, err := w.Write(data)
	return err
}

// deadlineWriter renews the stream's write deadline before every write,
// so a stalled reader costs at most one idle timeout.
type deadlineWriter struct {
	st   network.Stream
	idle time.Duration
	now  func() time.Time
}

func (d *deadlineWriter) Write(p []byte) (int, error) {
	d.st.SetWriteDeadline(d.now().Add(d.idle))
	return d.st.Write(p)
}

// replayCache remembers (peer, nonce) pairs until their request expires.
type replayCache struct {
	mu      sync.Mutex
	entries map[string]time.Time
	sweep   time.Time
}

// maxReplayEntries bounds the cache; when full, new requests are refused
// until old ones expire.
const maxReplayEntries = 1 << 20

func newReplayCache() *replayCache { return &replayCache{entries: make(map[string]time.Time)} }

// add records a nonce; false means it was seen before (or the cache is
// full).
func (r *replayCache) add(p peer.ID, nonce []byte, expires, now time.Time) bool {
	r.mu.Lock()
	defer r.mu.Unlock()
	if now.Sub(r.sweep) > time.Second || len(r.entries) >= maxReplayEntries {
		for k, exp := range r.entries {
			if now.After(exp) {
				delete(r.entries, k)
			}
		}
		r.sweep = now
	}
	key := string(p) + "\x00" + string(nonce)
	if _, seen := r.entries[key]; seen || len(r.entries) >= maxReplayEntries {
		return false
	}
	r.entries[key] = expires
	return true
}
