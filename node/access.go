package node

import (
	"bytes"
	"context"
	"crypto/rand"
	"errors"
	"fmt"
	"log/slog"
	"slices"
	"sync"
	"time"

	"github.com/ipfs/go-cid"
	"github.com/libp2p/go-libp2p/core/peer"

	"auditnet/chain"
	"auditnet/internal/dagcbor"
	"auditnet/p2p"
)

// Access decided by the chain (DESIGN, strict mode), the holder's side:
// accessGate is the fetch service's Authorizer on a node that runs the
// chain. It serves a stream only against a committed, authorised,
// unserved, unexpired, unrevoked access request that names this node and
// the stream's peer, while its chain view is fresh; it then records the
// service on the chain (Served), with the auditor's acknowledgement when
// one comes.

// ackWait is how long after a request's last stream the holder waits for
// the auditor's acknowledgement before it records the service as
// unacknowledged; serveFor is how long after its first stream a request
// may open more (a fetch runs a few streams in parallel), after which its
// service is recorded whatever comes.
const (
	ackWait  = 10 * time.Second
	serveFor = 2 * time.Minute
)

// windowMargin is how many blocks before the end of a request's access
// window the holder stops serving it and records what it served, so that
// the Served commits within the window.
const windowMargin = 3

type accessGate struct {
	c      *chainNode
	self   []byte
	logger *slog.Logger
	// pathLinks resolves a UnixFS path under a root this node holds to its
	// link indices (unixfs.ResolveLinks over the node's store).
	pathLinks func(ctx context.Context, root cid.Cid, path string) ([]int, error)
	// stored says whether the chain store holds transaction id.
	stored func(id cid.Cid) bool

	mu       sync.Mutex
	sessions map[cid.Cid]*accessSession
	// waiting counts, per requester, the fetches waiting to see their
	// request committed (at most maxWaitingPerPeer each).
	waiting map[peer.ID]int
	// streams are the streams authorised and not yet finished, by request
	// and stream nonce; journal is the last journalSize finished ones.
	streams map[streamKey]streamStart
	journal []ServedStream
	wake    chan struct{}
	// recording counts the Served transactions being sent.
	recording sync.WaitGroup
}

// accessSession is what the holder served against one access request.
type accessSession struct {
	auditor peer.ID
	height  uint64 // the request's block
	scope   chain.Scope
	// links is the authorised path's link indices from the root, once
	// resolved (a fetch continues a path with link-path streams).
	links    []int
	resolved bool
	size     uint64 // the dataset's anchored size
	start    time.Time
	active   int
	bytes    uint64
	blocks   uint64
	lastEnd  time.Time
	// ack is the auditor's acknowledgement, checked against what was sent
	// when the service is recorded.
	ack *chain.Ack
	// settled: Served is recorded or on its way; no more streams.
	settled bool
}

// journalSize bounds the holder's journal of the streams it served.
const journalSize = 4096

// ServedStream is one stream a holder authorised under an access request,
// and what it sent on it (nothing, when the stream failed before a
// block): the holder's own account, for its operators and for checking it
// against the chain (GET /api/v0/served).
type ServedStream struct {
	Request string `json:"Request"`
	Auditor string `json:"Auditor"`
	Root    string `json:"Root"`
	// ViewHeight is the holder's chain height when it authorised the
	// stream; RequestHeight the request's block.
	ViewHeight    uint64    `json:"ViewHeight"`
	RequestHeight uint64    `json:"RequestHeight"`
	Started       time.Time `json:"Started"`
	Ended         time.Time `json:"Ended"`
	Bytes         uint64    `json:"Bytes"`
	Blocks        uint64    `json:"Blocks"`
}

type streamKey struct {
	request cid.Cid
	nonce   string
}

type streamStart struct {
	at         time.Time
	viewHeight uint64
}

func newAccessGate(c *chainNode, pathLinks func(context.Context, cid.Cid, string) ([]int, error), logger *slog.Logger) *accessGate {
	stored := func(id cid.Cid) bool {
		_, _, err := c.store.Tx(id)
		return err == nil
	}
	return &accessGate{c: c, self: c.opts.Signer.ID(), logger: logger, pathLinks: pathLinks, stored: stored,
		sessions: map[cid.Cid]*accessSession{}, streams: map[streamKey]streamStart{}, waiting: map[peer.ID]int{}, wake: make(chan struct{}, 1)}
}

// served returns the holder's journal of the streams it served, oldest
// first.
func (g *accessGate) served() []ServedStream {
	g.mu.Lock()
	defer g.mu.Unlock()
	return slices.Clone(g.journal)
}

// Authorize implements p2p.Authorizer. Its refusals say why, and none
// depends on whether this node holds the data.
func (g *accessGate) Authorize(ctx context.Context, req *p2p.FetchRequest) error {
	if req.Auth == nil || !req.Auth.Cid.Defined() {
		return errors.New("no access request named (request access on the chain first)")
	}
	id := req.Auth.Cid
	if st := g.c.Status(); !st.HasQuorum || st.Lag > 0 {
		return errFreshness
	}
	// A peer's fetches that wait for their request to commit are capped:
	// one member cannot hold the holder's goroutines with requests that
	// never come.
	who := req.RequesterID()
	g.mu.Lock()
	if g.waiting[who] >= maxWaitingPerPeer {
		g.mu.Unlock()
		return fmt.Errorf("too many fetches from %s wait for their access requests to commit (at most %d)", who, maxWaitingPerPeer)
	}
	g.waiting[who]++
	g.mu.Unlock()
	box, rec, ok, settled, err := g.lookup(ctx, id)
	g.mu.Lock()
	if g.waiting[who]--; g.waiting[who] == 0 {
		delete(g.waiting, who)
	}
	g.mu.Unlock()
	// Fresh again after the lookup, which may wait for the request to
	// commit here: the view that serves is the one that holds it.
	st := g.c.Status()
	if !st.HasQuorum || st.Lag > 0 {
		return errFreshness
	}
	switch {
	case err != nil:
		return fmt.Errorf("access request %s: %w", id, err)
	case settled:
		return fmt.Errorf("access request %s is settled on the chain (denied, served already, or past its access window)", id)
	case !ok:
		return fmt.Errorf("no committed access request %s", id)
	case !bytes.Equal(rec.Provider, g.self):
		return fmt.Errorf("access request %s names another provider", id)
	case !bytes.Equal(rec.Auditor, req.Requester):
		return fmt.Errorf("access request %s was made by another auditor", id)
	case !rec.Dataset.Root.Cid.Equals(req.Root.Cid):
		return fmt.Errorf("access request %s is for another dataset", id)
	}
	params, err := chain.LookupParams(box.s)
	if err != nil {
		return err
	}
	// The view that holds the request may be a block ahead of the status.
	view := max(st.Height, box.height)
	if view+windowMargin >= rec.Height+params.AccessWindow {
		return fmt.Errorf("access request %s is too old: its access window ends at height %d", id, rec.Height+params.AccessWindow)
	}
	if _, ok, err := chain.LookupMember(box.s, rec.Auditor); err != nil || !ok {
		return errors.New("the auditor is no longer a member")
	}
	ds, ok, err := chain.LookupDataset(box.s, rec.Dataset)
	if err != nil || !ok {
		return errors.New("the dataset is no longer anchored")
	}
	if ds.Policy == chain.PolicyRestricted {
		gr, ok, err := chain.LookupGrant(box.s, rec.Dataset, rec.Auditor)
		if err != nil || !ok || gr.Revoked {
			return errors.New("the auditor's grant has been revoked")
		}
		if gr.Height > rec.Height {
			// Revoked and granted again since the request: a revocation
			// committed after it still stops it.
			return errors.New("the auditor's grant changed after the request")
		}
		if gr.Expires != 0 && gr.Expires <= time.Now().UnixMilli() {
			return errors.New("the auditor's grant has expired")
		}
	}
	g.mu.Lock()
	s := g.sessions[id]
	g.mu.Unlock()
	if s == nil {
		scope, err := g.c.requestScope(ctx, id)
		if err != nil {
			return err
		}
		s = &accessSession{auditor: req.RequesterID(), height: rec.Height, scope: scope, size: ds.Size, start: time.Now()}
	}
	if !g.within(ctx, req, s) {
		return fmt.Errorf("the scope asked for is not within access request %s's", id)
	}
	g.mu.Lock()
	defer g.mu.Unlock()
	if cur := g.sessions[id]; cur != nil {
		s = cur
	} else {
		g.sessions[id] = s
	}
	switch {
	case s.settled:
		return fmt.Errorf("access request %s has been served", id)
	case s.bytes >= s.size:
		return fmt.Errorf("access request %s has been served its dataset's whole size", id)
	case time.Since(s.start) > serveFor:
		return fmt.Errorf("access request %s was served more than %s ago", id, serveFor)
	}
	s.active++
	g.streams[streamKey{id, string(req.Nonce)}] = streamStart{at: time.Now(), viewHeight: view}
	return nil
}

// maxWaitingPerPeer bounds the fetches of one peer waiting, each up to
// requestLag, for their access request to commit here.
const maxWaitingPerPeer = 8

var errFreshness = errors.New("this holder's view of the chain is not fresh (no quorum of validators heard from, or behind)")

// requestLag bounds how long the holder waits for a request it does not
// see committed yet: the auditor fetches as soon as its own node sees the
// commit, and the holder's (a follower's, say) may apply the block a
// moment later.
const requestLag = 3 * time.Second

// lookup reads access request id's open record from the committed
// state, waiting up to requestLag for it to appear. A request the store
// holds but the state does not is settled (denied, served, or past its
// window): lookup says so at once rather than waiting.
func (g *accessGate) lookup(ctx context.Context, id cid.Cid) (box *stateBox, rec chain.AccessRecord, ok, settled bool, err error) {
	deadline := time.Now().Add(requestLag)
	for {
		box = g.c.state.Load()
		rec, ok, err = chain.LookupAccess(box.s, id)
		if ok || err != nil {
			return box, rec, ok, false, err
		}
		if g.stored(id) {
			// The store writes after the state is published, so the state
			// as it is now holds the request's block: look again there,
			// since box may predate it.
			box = g.c.state.Load()
			rec, ok, err = chain.LookupAccess(box.s, id)
			return box, rec, ok, !ok && err == nil, err
		}
		if time.Now().After(deadline) {
			return box, rec, false, false, nil
		}
		t := time.NewTimer(25 * time.Millisecond)
		select {
		case <-ctx.Done():
			t.Stop()
			return box, rec, false, false, ctx.Err()
		case <-t.C:
		}
	}
}

// within says whether a stream's scope lies within the authorised one:
// anything within the whole DAG; else the very path authorised, or link
// paths that all pass through the node that path names (a fetch asks for
// the rest of a path's subtree that way). A path that does not resolve
// here gives the same refusal as a scope outside.
func (g *accessGate) within(ctx context.Context, req *p2p.FetchRequest, s *accessSession) bool {
	asked, authorised := req.Scope, s.scope
	switch {
	case authorised.Path == "" && len(authorised.Links) == 0:
		return true
	case len(authorised.Links) > 0:
		return false // requests name whole datasets or paths; nothing asks for links
	case len(asked.Links) == 0:
		return asked.Path == authorised.Path
	case asked.Path != "":
		return false
	}
	g.mu.Lock()
	links, resolved := s.links, s.resolved
	g.mu.Unlock()
	if !resolved {
		var err error
		if links, err = g.pathLinks(ctx, req.Root.Cid, authorised.Path); err != nil {
			return false
		}
		g.mu.Lock()
		s.links, s.resolved = links, true
		g.mu.Unlock()
	}
	for _, p := range asked.Links {
		if len(p) < len(links) || !slices.Equal(p[:len(links)], links) {
			return false
		}
	}
	return true
}

// finished is the fetch service's Finished hook.
func (g *accessGate) finished(req *p2p.FetchRequest, sent, blocks uint64, _ bool) {
	g.mu.Lock()
	defer g.mu.Unlock()
	s := g.sessions[req.Auth.Cid]
	if s == nil {
		return
	}
	key := streamKey{req.Auth.Cid, string(req.Nonce)}
	start := g.streams[key]
	delete(g.streams, key)
	if len(g.journal) == journalSize {
		g.journal = g.journal[1:]
	}
	g.journal = append(g.journal, ServedStream{
		Request: req.Auth.Cid.String(), Auditor: s.auditor.String(), Root: req.Root.Cid.String(),
		ViewHeight: start.viewHeight, RequestHeight: s.height, Started: start.at, Ended: time.Now(), Bytes: sent, Blocks: blocks,
	})
	s.active--
	s.bytes += sent
	s.blocks += blocks
	s.lastEnd = time.Now()
	g.poke()
}

func (g *accessGate) poke() {
	select {
	case g.wake <- struct{}{}:
	default:
	}
}

// acknowledge takes an auditor's acknowledgement of a request this node
// served to it (the /auditnet/ack/1 handler).
func (g *accessGate) acknowledge(_ context.Context, from peer.ID, raw []byte) error {
	decoded, err := chain.DecodeAck(raw)
	if err != nil {
		return errors.New("malformed acknowledgement")
	}
	ack := *decoded
	if ack.Chain != g.c.genesis.ChainID || !ack.Request.Cid.Defined() {
		return errors.New("acknowledgement for another chain")
	}
	g.mu.Lock()
	defer g.mu.Unlock()
	s := g.sessions[ack.Request.Cid]
	switch {
	case s == nil || s.auditor != from:
		return errors.New("no access of yours served under that request")
	case s.settled || s.ack != nil:
		return errors.New("that access is already acknowledged")
	case ack.Bytes > s.size:
		return fmt.Errorf("acknowledges %d bytes of a dataset of %d", ack.Bytes, s.size)
	}
	if err := chain.VerifyAck(&ack, []byte(from)); err != nil {
		return fmt.Errorf("acknowledgement: %w", err)
	}
	// Its counts are checked against what was sent once every stream has
	// ended (the last may end just after the auditor sent this).
	s.ack = &ack
	g.poke()
	return nil
}

// run records services on the chain: a request acknowledged at once, one
// served and not acknowledged ackWait after its last stream as
// unacknowledged; and forgets requests past the access window.
func (g *accessGate) run(ctx context.Context) error {
	tick := time.NewTicker(time.Second)
	defer tick.Stop()
	defer g.recording.Wait()
	for {
		select {
		case <-ctx.Done():
			return nil
		case <-g.wake:
		case <-tick.C:
		}
		for _, s := range g.due() {
			g.recording.Add(1)
			go func() {
				defer g.recording.Done()
				g.record(ctx, s.id, s.ack)
			}()
		}
	}
}

type dueService struct {
	id  cid.Cid
	ack *chain.Ack
}

// due settles the sessions whose Served is to be sent now.
func (g *accessGate) due() []dueService {
	box := g.c.state.Load()
	var window uint64 = 100
	if box != nil {
		if p, err := chain.LookupParams(box.s); err == nil {
			window = p.AccessWindow
		}
	}
	height := g.c.Status().Height
	g.mu.Lock()
	defer g.mu.Unlock()
	var out []dueService
	for id, s := range g.sessions {
		closing := height+windowMargin >= s.height+window
		switch {
		case s.height+window < height && s.active == 0:
			delete(g.sessions, id) // the chain has settled it
		case s.settled || s.active > 0 && !closing:
		case s.bytes == 0 && s.active == 0:
			if closing {
				s.settled = true // nothing was sent: a non-service it is
			}
		case s.ack != nil || closing || time.Since(s.lastEnd) >= ackWait || time.Since(s.start) >= serveFor+ackWait:
			s.settled = true
			ack := s.ack
			if ack != nil && (ack.Bytes > s.bytes || ack.Blocks > s.blocks) {
				g.logger.Warn("an acknowledgement claims more than was sent; recording the service unacknowledged",
					"request", id, "acked", ack.Bytes, "sent", s.bytes)
				ack = nil
			}
			out = append(out, dueService{id, ack})
		}
	}
	return out
}

// record sends the Served of request id.
func (g *accessGate) record(ctx context.Context, id cid.Cid, ack *chain.Ack) {
	done, err := g.c.sendOwn(ctx, chain.TxBody{Kind: chain.KindServed, Served: &chain.Served{Request: dagcbor.Link{Cid: id}, Ack: ack}})
	if err != nil && ack != nil && errors.Is(err, ErrRefused) {
		g.logger.Warn("the chain refused the acknowledged service; recording it unacknowledged", "request", id, "err", err)
		ack = nil
		done, err = g.c.sendOwn(ctx, chain.TxBody{Kind: chain.KindServed, Served: &chain.Served{Request: dagcbor.Link{Cid: id}}})
	}
	if err != nil {
		if ctx.Err() == nil {
			g.logger.Error("could not record a service on the chain; it will stand as a non-service", "request", id, "err", err)
		}
		return
	}
	g.logger.Info("service recorded", "request", id, "acknowledged", ack != nil, "outcome", done.Outcome, "height", done.Height)
}

// requestScope reads the scope of the committed access request id.
func (c *chainNode) requestScope(ctx context.Context, id cid.Cid) (chain.Scope, error) {
	body, err := c.requestBody(ctx, id)
	if err != nil {
		return chain.Scope{}, err
	}
	return body.Access.Scope, nil
}

var errNotAccessRequest = errors.New("is not an access request")

// requestBody reads committed transaction id, which must be an access
// request, from its block.
func (c *chainNode) requestBody(ctx context.Context, id cid.Cid) (chain.TxBody, error) {
	cb, i, err := c.txBlock(ctx, id)
	if err != nil {
		return chain.TxBody{}, fmt.Errorf("access request %s: %w", id, err)
	}
	body := cb.Block.Txs[i].Body
	if body.Access == nil {
		return chain.TxBody{}, fmt.Errorf("%s %w", id, errNotAccessRequest)
	}
	return body, nil
}

// requestMismatch says why request id, made by auditor for a dataset
// rooted at dataset, cannot serve this node a fetch of root; nil if it can.
func (c *chainNode) requestMismatch(id cid.Cid, auditor []byte, dataset, root cid.Cid) error {
	switch {
	case !bytes.Equal(auditor, c.opts.Signer.ID()):
		return fmt.Errorf("access request %s is another auditor's", id)
	case !dataset.Equals(root):
		return fmt.Errorf("access request %s is for %s, not %s", id, dataset, root)
	}
	return nil
}

// Access decided by the chain, the auditor's side.

// AccessOptions say why an auditor reads a dataset; they go on the chain.
type AccessOptions struct {
	Purpose string
	Case    string
	// Request, if set, is an access request of this node's the chain
	// already authorised: the fetch is made under it (to finish one that
	// failed, say) and no new request goes on the chain.
	Request string
}

// AccessDeniedError is the chain's refusal of an access request.
type AccessDeniedError struct {
	Dataset cid.Cid
	Reason  string
	Tx      string
	Height  uint64
}

func (e *AccessDeniedError) Error() string {
	return fmt.Sprintf("access to %s denied by the chain: %s (request %s at height %d)", e.Dataset, e.Reason, e.Tx, e.Height)
}

// ErrNotAnchored is returned for a fetch of a root no agency anchored.
var ErrNotAnchored = errors.New("is not anchored on the chain")

// access is an authorised access request and its holder.
type access struct {
	tx      cid.Cid
	height  uint64
	holder  peer.ID
	dataset chain.Dataset
	size    uint64
}

// requestAccess asks the chain for access to path under root from its
// holder, and returns once the request is authorised; a denial is an
// *AccessDeniedError.
func (d *Daemon) requestAccess(ctx context.Context, root cid.Cid, path string, o AccessOptions) (access, error) {
	c := d.chain
	if o.Request != "" {
		return d.existingAccess(ctx, root, o.Request)
	}
	evs, err := c.anchorsOf(ctx, root)
	if err != nil {
		return access{}, err
	}
	box := c.state.Load()
	var a access
	for _, ev := range evs {
		if ev.Code != chain.OutcomeOK || ev.Dataset == nil {
			continue
		}
		rec, ok, err := chain.LookupDataset(box.s, *ev.Dataset)
		if err != nil || !ok {
			continue
		}
		holder, err := peer.IDFromBytes(ev.Dataset.Owner)
		if err != nil {
			continue
		}
		a = access{holder: holder, dataset: *ev.Dataset, size: rec.Size}
		break
	}
	if a.holder == "" {
		return access{}, fmt.Errorf("%s %w", root, ErrNotAnchored)
	}
	nonce := make([]byte, 16)
	rand.Read(nonce)
	done, err := c.sendOwn(ctx, chain.TxBody{Kind: chain.KindAccess, Access: &chain.AccessRequest{
		Dataset: a.dataset, Scope: chain.Scope{Path: path}, Provider: a.dataset.Owner,
		Nonce: nonce, Purpose: o.Purpose, Case: o.Case,
	}})
	if err != nil {
		return access{}, fmt.Errorf("access request for %s: %w", root, err)
	}
	if done.Outcome != chain.OutcomeAuthorised {
		return access{}, &AccessDeniedError{Dataset: root, Reason: done.Reason, Tx: done.Tx, Height: done.Height}
	}
	if a.tx, err = cid.Decode(done.Tx); err != nil {
		return access{}, err
	}
	a.height = done.Height
	d.logger.Info("access authorised by the chain", "dataset", root, "request", done.Tx, "height", done.Height, "holder", a.holder)
	return a, nil
}

// existingAccess is the access of an earlier request of this node's for
// root. Whether it may still be served is the holder's to decide, from
// its own view of the chain.
func (d *Daemon) existingAccess(ctx context.Context, root cid.Cid, request string) (access, error) {
	id, err := cid.Decode(request)
	if err != nil {
		return access{}, fmt.Errorf("%w: request %q: %v", ErrBadRef, request, err)
	}
	box := d.chain.state.Load()
	rec, ok, err := chain.LookupAccess(box.s, id)
	switch {
	case err != nil:
		return access{}, err
	case !ok:
		return access{}, d.chain.closedRequest(ctx, id, root)
	}
	if err := d.chain.requestMismatch(id, rec.Auditor, rec.Dataset.Root.Cid, root); err != nil {
		return access{}, err
	}
	holder, err := peer.IDFromBytes(rec.Provider)
	if err != nil {
		return access{}, err
	}
	ds, _, err := chain.LookupDataset(box.s, rec.Dataset)
	if err != nil {
		return access{}, err
	}
	return access{tx: id, height: rec.Height, holder: holder, dataset: rec.Dataset, size: ds.Size}, nil
}

// closedRequest explains why request id, which the state no longer (or
// never) held open, cannot be fetched under: a request whose service the
// chain recorded leaves the state, but its block still says whose it was
// and for which dataset, and those are the clearer reasons.
func (c *chainNode) closedRequest(ctx context.Context, id, root cid.Cid) error {
	closed := fmt.Errorf("no open access request %s on the chain (never authorised, served already, or past its access window)", id)
	body, err := c.requestBody(ctx, id)
	switch {
	case errors.Is(err, errNotAccessRequest):
		return err
	case err != nil:
		return closed
	}
	if err := c.requestMismatch(id, body.Sender, body.Access.Dataset.Root.Cid, root); err != nil {
		return err
	}
	return closed
}

// accessFetchOptions are the fetch options of an authorised access: its
// holder, found in the DHT if the host has no address for it.
func (d *Daemon) accessFetchOptions(ctx context.Context, a access, purpose string) (p2p.FetchOptions, error) {
	if len(d.host.Peerstore().Addrs(a.holder)) == 0 {
		fctx, cancel := context.WithTimeout(ctx, 30*time.Second)
		defer cancel()
		if _, err := d.dht.FindPeer(fctx, a.holder); err != nil {
			return p2p.FetchOptions{}, fmt.Errorf("the holder %s of %s cannot be reached: %w", a.holder, a.dataset.Root.Cid, err)
		}
	}
	return p2p.FetchOptions{Providers: []peer.ID{a.holder}, Auth: a.tx, Purpose: purpose, MaxBytes: a.size}, nil
}

// holderFailed explains a fetch that the holder did not complete: the
// chain authorised it, but the one holder it records did not serve it.
func holderFailed(a access, err error) error {
	if errors.Is(err, p2p.ErrNoProvider) {
		return fmt.Errorf("the holder %s did not serve %s under access request %s (is it down? a dataset has one holder until replication): %w",
			a.holder, a.dataset.Root.Cid, a.tx, err)
	}
	return err
}

// acknowledge signs what was received under a and gives it to the holder,
// who records it on the chain. The data is here either way: a failure is
// logged, and the holder records the service as unacknowledged.
func (d *Daemon) acknowledge(ctx context.Context, a access, bytes, blocks int64) {
	ack := chain.Ack{Chain: d.chain.genesis.ChainID, Request: dagcbor.Link{Cid: a.tx}, Bytes: uint64(bytes), Blocks: uint64(blocks)}
	if err := chain.SignAck(&ack, d.chain.opts.Signer); err != nil {
		d.logger.Error("sign acknowledgement", "err", err)
		return
	}
	raw, err := dagcbor.Marshal(&ack)
	if err == nil {
		err = p2p.SendAck(ctx, d.host, a.holder, raw)
	}
	if err != nil {
		d.logger.Warn("acknowledgement not delivered; the holder records the service unacknowledged", "request", a.tx, "err", err)
	}
}

// waitIndexed waits until the index holds what the status shows
// committed (the store and index write behind the core).
func (c *chainNode) waitIndexed(ctx context.Context) error {
	if st := c.status.Load(); st != nil {
		c.waitStored(ctx, st.Height)
	}
	return ctx.Err()
}
