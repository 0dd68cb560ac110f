package node

import (
	"bufio"
	"context"
	"crypto/sha256"
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"maps"
	mrand "math/rand/v2"
	"net/http"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"github.com/ipfs/go-cid"
	"github.com/multiformats/go-multihash"

	"auditnet/chain"
	"auditnet/internal/dagcbor"
)

// Bench mixes.
const (
	// MixAnchor is single-signature Anchor transactions only.
	MixAnchor = "anchor"
	// MixAudit is the realistic mix: a third each of Anchor, Grant and
	// AccessRequest.
	MixAudit = "mix"
	// MixAccess is access events: AccessRequests at the rate, and for
	// each one that commits, its holder's Served carrying the auditor's
	// acknowledgement, as a holder and an auditor send them.
	MixAccess = "access"
)

// BenchOptions configure RunBench.
type BenchOptions struct {
	// Testnet is the directory `auditnet testnet` wrote; its validators
	// must be running.
	Testnet  string
	Rate     int
	Duration time.Duration
	Mix      string
	// Validators limits the validators submitted to (0: all).
	Validators int
	Logger     *slog.Logger
}

// BenchResult is what a bench run measured.
type BenchResult struct {
	Mix         string  `json:"Mix"`
	Rate        int     `json:"Rate"`
	Seconds     float64 `json:"Seconds"`
	Submitted   int64   `json:"Submitted"`
	Accepted    int64   `json:"Accepted"`
	Busy        int64   `json:"Busy"`
	Refused     int64   `json:"Refused"`
	Committed   int64   `json:"Committed"`
	TxsPerSec   float64 `json:"TxsPerSec"`
	Blocks      int     `json:"Blocks"`
	LatencyP50  float64 `json:"LatencyP50Ms"`
	LatencyP99  float64 `json:"LatencyP99Ms"`
	LatencyMax  float64 `json:"LatencyMaxMs"`
	FirstRefuse string  `json:"FirstRefusal,omitempty"`
	// Served counts the access events completed (mix access): requests
	// whose Served committed.
	Served int64 `json:"Served,omitempty"`
}

// benchTick is how often the bench sends a batch to each validator.
const benchTick = 20 * time.Millisecond

// RunBench submits signed transactions to a running testnet at a target
// rate for a duration and measures what commits: committed txs/s over
// the run (from the first submission to the last commit seen within the
// run plus a drain of a few seconds) and the commit latency of each
// transaction (submission by the bench to the block that holds it being
// reported by the first validator's block feed).
func RunBench(ctx context.Context, o BenchOptions) (BenchResult, error) {
	res := BenchResult{Mix: o.Mix, Rate: o.Rate}
	if o.Rate <= 0 || o.Duration <= 0 {
		return res, errors.New("bench: --rate and --duration must be positive")
	}
	if o.Mix == "" {
		o.Mix, res.Mix = MixAnchor, MixAnchor
	}
	if o.Mix != MixAnchor && o.Mix != MixAudit && o.Mix != MixAccess {
		return res, fmt.Errorf("bench: --mix %q: want %s, %s or %s", o.Mix, MixAnchor, MixAudit, MixAccess)
	}
	tn, err := ReadTestnet(o.Testnet)
	if err != nil {
		return res, err
	}
	keys, err := ReadBenchKeys(tn.Bench)
	if err != nil {
		return res, err
	}
	var clients []*Client
	for _, n := range tn.Nodes {
		if !n.Validator {
			continue
		}
		c, err := DialDaemon(ctx, n.Dir)
		if err != nil {
			return res, fmt.Errorf("bench: validator %s: %w", n.Name, err)
		}
		if c == nil {
			continue // not running: the others take its share
		}
		clients = append(clients, c)
		if o.Validators > 0 && len(clients) == o.Validators {
			break
		}
	}
	if len(clients) == 0 {
		return res, errors.New("bench: no validator of the testnet is running")
	}
	g, err := newTxGen(ctx, tn.ChainID, keys, clients[0])
	if err != nil {
		return res, err
	}
	feed, err := clients[0].follow(ctx)
	if err != nil {
		return res, err
	}
	b := &benchRun{gen: g, sent: map[cid.Cid]time.Time{}, requests: map[cid.Cid]benchAccess{}, serving: map[cid.Cid]bool{}}
	watched := make(chan struct{})
	go func() {
		defer close(watched)
		b.watch(feed)
	}()
	defer func() {
		feed.Close()
		<-watched
	}()
	if o.Mix != MixAnchor {
		if err := b.setup(ctx, clients[0]); err != nil {
			return res, err
		}
	}
	start := time.Now()
	end := start.Add(o.Duration)
	var wg sync.WaitGroup
	perClient := float64(o.Rate) / float64(len(clients))
	for _, c := range clients {
		wg.Add(1)
		go func() {
			defer wg.Done()
			b.submitLoop(ctx, c, o.Mix, perClient, start, end)
		}()
	}
	wg.Wait()
	if o.Mix == MixAccess {
		b.finishAccess(ctx, clients[0], 10*time.Second)
	}
	// Let what was accepted commit (or not) for a few seconds.
	b.drain(ctx, 5*time.Second)
	b.mu.Lock()
	defer b.mu.Unlock()
	res.Submitted, res.Accepted, res.Busy, res.Refused = b.submitted.Load(), b.accepted.Load(), b.busy.Load(), b.refused.Load()
	res.Committed, res.Blocks, res.Served = int64(len(b.latencies)), b.blocks, b.served
	if res.Committed > 0 {
		span := b.lastCommit.Sub(start).Seconds()
		res.Seconds = span
		res.TxsPerSec = float64(res.Committed) / span
		slices.Sort(b.latencies)
		pick := func(q float64) float64 {
			return float64(b.latencies[min(len(b.latencies)-1, int(q*float64(len(b.latencies))))].Microseconds()) / 1000
		}
		res.LatencyP50, res.LatencyP99, res.LatencyMax = pick(0.50), pick(0.99), pick(1)
	}
	if e := b.firstRefusal.Load(); e != nil {
		res.FirstRefuse = *e
	}
	if b.feedErr != nil {
		return res, fmt.Errorf("bench: block feed: %w", b.feedErr)
	}
	return res, nil
}

type benchRun struct {
	gen                                *txGen
	submitted, accepted, busy, refused atomic.Int64
	firstRefusal                       atomic.Pointer[string]

	mu   sync.Mutex
	sent map[cid.Cid]time.Time
	// requests are the access requests sent (mix access) until they
	// commit; then they wait in due for their Served to be sent, and
	// serving holds the Served sent, each to its request.
	requests   map[cid.Cid]benchAccess
	due        []benchDue
	serving    map[cid.Cid]bool
	served     int64
	latencies  []time.Duration
	blocks     int
	lastCommit time.Time
	feedErr    error
}

// watch reads the block feed: each committed transaction the bench sent
// gets its latency.
func (b *benchRun) watch(feed io.Reader) {
	sc := bufio.NewScanner(feed)
	sc.Buffer(make([]byte, 1<<20), 64<<20)
	for sc.Scan() {
		var ev BlockEvent
		if err := json.Unmarshal(sc.Bytes(), &ev); err != nil {
			b.mu.Lock()
			b.feedErr = err
			b.mu.Unlock()
			return
		}
		now := time.Now()
		b.gen.setHeight(ev.Height)
		b.mu.Lock()
		b.blocks++
		for _, id := range ev.Txs {
			if t, ok := b.sent[id]; ok {
				b.latencies = append(b.latencies, now.Sub(t))
				delete(b.sent, id)
				b.lastCommit = now
			}
			if a, ok := b.requests[id]; ok {
				delete(b.requests, id)
				b.due = append(b.due, benchDue{request: id, benchAccess: a})
			}
			if b.serving[id] {
				delete(b.serving, id)
				b.served++
			}
		}
		b.mu.Unlock()
	}
}

// finishAccess sends the Served of the requests that commit after the
// run, for up to d, so that every access event the run began completes.
func (b *benchRun) finishAccess(ctx context.Context, c *Client, d time.Duration) {
	deadline := time.Now().Add(d)
	t := time.NewTicker(benchTick)
	defer t.Stop()
	for time.Now().Before(deadline) {
		b.mu.Lock()
		left := len(b.requests) + len(b.due)
		b.mu.Unlock()
		if left == 0 {
			return
		}
		b.submitBatch(ctx, c, MixAccess, 0)
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
	}
}

// drain waits until every accepted transaction committed, or d passed.
func (b *benchRun) drain(ctx context.Context, d time.Duration) {
	deadline := time.Now().Add(d)
	t := time.NewTicker(50 * time.Millisecond)
	defer t.Stop()
	for time.Now().Before(deadline) {
		b.mu.Lock()
		left := len(b.sent)
		b.mu.Unlock()
		if left == 0 {
			return
		}
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
	}
}

// submitLoop sends to c, every benchTick until end, what its share of the
// rate owes since start: a slow answer delays a batch but loses none, so
// the rate holds as long as the node answers.
func (b *benchRun) submitLoop(ctx context.Context, c *Client, mix string, perSecond float64, start, end time.Time) {
	t := time.NewTicker(benchTick)
	defer t.Stop()
	sent := 0
	for now := start; now.Before(end); {
		owed := int(perSecond*now.Sub(start).Seconds()) - sent
		if owed > 0 {
			n := min(owed, maxSubmitBatch)
			b.submitBatch(ctx, c, mix, n)
			sent += n
		}
		select {
		case <-ctx.Done():
			return
		case now = <-t.C:
		}
	}
}

func (b *benchRun) submitBatch(ctx context.Context, c *Client, mix string, n int) {
	raw := make([][]byte, 0, n)
	ids := make([]cid.Cid, 0, n)
	var requests map[cid.Cid]benchAccess
	var served map[cid.Cid]benchDue
	add := func(tx *chain.Tx) (cid.Cid, bool) {
		r, err := chain.EncodeTx(tx)
		if err != nil {
			b.refuse(err.Error())
			return cid.Undef, false
		}
		id, _ := tx.ID()
		raw, ids = append(raw, r), append(ids, id)
		return id, true
	}
	if mix == MixAccess {
		// The Served of the requests that committed go first, as holders
		// send them, and take up to half a batch; then the new requests.
		requests, served = map[cid.Cid]benchAccess{}, map[cid.Cid]benchDue{}
		b.mu.Lock()
		due := b.due[:min(len(b.due), maxSubmitBatch/2)]
		b.due = b.due[len(due):]
		b.mu.Unlock()
		n = min(n, maxSubmitBatch-len(due))
		for _, d := range due {
			tx, err := b.gen.served(d)
			if err != nil {
				b.refuse(err.Error())
				return
			}
			id, ok := add(tx)
			if !ok {
				return
			}
			served[id] = d
		}
		for range n {
			tx, a, err := b.gen.accessEvent()
			if err != nil {
				b.refuse(err.Error())
				return
			}
			id, ok := add(tx)
			if !ok {
				return
			}
			requests[id] = a
		}
	} else {
		for range n {
			tx, err := b.gen.next(mix)
			if err != nil {
				b.refuse(err.Error())
				return
			}
			if _, ok := add(tx); !ok {
				return
			}
		}
	}
	n = len(raw)
	if n == 0 {
		return
	}
	now := time.Now()
	b.mu.Lock()
	for _, id := range ids {
		b.sent[id] = now
	}
	maps.Copy(b.requests, requests)
	for id := range served {
		b.serving[id] = true
	}
	b.mu.Unlock()
	b.submitted.Add(int64(n))
	res, err := c.Submit(ctx, SubmitRequest{Txs: raw})
	if err != nil {
		b.forget(ids, served)
		b.refused.Add(int64(n))
		b.refuse(err.Error())
		return
	}
	var gone []cid.Cid
	for i, r := range res {
		switch {
		case r.Error == "":
			b.accepted.Add(1)
			continue
		case r.Busy:
			b.busy.Add(1)
		default:
			b.refused.Add(1)
			b.refuse(r.Error)
		}
		gone = append(gone, ids[i])
	}
	b.forget(gone, served)
}

// forget drops the transactions no validator took. A Served among them
// (served maps each sent to its request) goes back in line, up to
// maxServedTries times: a validator that lags refuses it.
func (b *benchRun) forget(ids []cid.Cid, served map[cid.Cid]benchDue) {
	b.mu.Lock()
	defer b.mu.Unlock()
	for _, id := range ids {
		delete(b.sent, id)
		delete(b.requests, id)
		delete(b.serving, id)
		if d, ok := served[id]; ok && d.tries+1 < maxServedTries {
			d.tries++
			b.due = append(b.due, d)
		}
	}
}

// maxServedTries bounds how often the bench sends one request's Served.
const maxServedTries = 5

func (b *benchRun) refuse(reason string) {
	b.firstRefusal.CompareAndSwap(nil, &reason)
}

// setup anchors the datasets the mix grants and requests access to, and
// grants each bench auditor every one of them, before the clock starts.
func (b *benchRun) setup(ctx context.Context, c *Client) error {
	var txs [][]byte
	for _, ag := range b.gen.agencies {
		for range benchDatasetsPerAgency {
			tx, ds, err := b.gen.anchor(ag)
			if err != nil {
				return err
			}
			raw, _ := chain.EncodeTx(tx)
			txs = append(txs, raw)
			b.gen.datasets = append(b.gen.datasets, ds)
		}
	}
	if err := submitAndWait(ctx, c, txs); err != nil {
		return fmt.Errorf("bench setup: anchors: %w", err)
	}
	txs = txs[:0]
	for _, ds := range b.gen.datasets {
		for _, au := range b.gen.auditors {
			tx, err := b.gen.grant(ds, au)
			if err != nil {
				return err
			}
			raw, _ := chain.EncodeTx(tx)
			txs = append(txs, raw)
		}
	}
	if err := submitAndWait(ctx, c, txs); err != nil {
		return fmt.Errorf("bench setup: grants: %w", err)
	}
	return nil
}

const benchDatasetsPerAgency = 4

// benchDatasetSize is the size the bench's anchors declare.
const benchDatasetSize = 1 << 20

func submitAndWait(ctx context.Context, c *Client, txs [][]byte) error {
	for len(txs) > 0 {
		n := min(len(txs), maxSubmitBatch)
		res, err := c.Submit(ctx, SubmitRequest{Txs: txs[:n], Wait: true, WaitTimeout: "60s"})
		if err != nil {
			return err
		}
		for _, r := range res {
			if r.Error != "" {
				return errors.New(r.Error)
			}
			if r.Commit == nil {
				return fmt.Errorf("tx %s did not commit within 60 s", r.ID)
			}
		}
		txs = txs[n:]
	}
	return nil
}

// txGen makes valid signed transactions for the bench's senders.
type txGen struct {
	chainID  string
	window   uint64
	height   atomic.Uint64
	nonce    atomic.Uint64
	agencies []benchSigner
	auditors []benchSigner
	mu       sync.Mutex
	rng      *mrand.Rand
	datasets []benchDataset
}

type benchSigner struct {
	id     []byte
	signer chain.Signer
}

type benchDataset struct {
	owner benchSigner
	root  cid.Cid
}

func newTxGen(ctx context.Context, chainID string, keys []BenchKey, c *Client) (*txGen, error) {
	st, err := c.ChainStatus(ctx)
	if err != nil {
		return nil, err
	}
	g := &txGen{chainID: chainID, window: chain.DefaultParams().ReplayWindow, rng: mrand.New(mrand.NewPCG(uint64(time.Now().UnixNano()), 7))}
	g.height.Store(st.Height)
	g.nonce.Store(uint64(time.Now().UnixNano()))
	for _, k := range keys {
		s, err := chain.ParseHexKey(k.Key)
		if err != nil {
			return nil, fmt.Errorf("bench key %s: %w", k.PeerID, err)
		}
		bs := benchSigner{id: s.ID(), signer: s}
		switch Role(k.Role) {
		case RoleAgency:
			g.agencies = append(g.agencies, bs)
		case RoleAuditor:
			g.auditors = append(g.auditors, bs)
		}
	}
	if len(g.agencies) == 0 || len(g.auditors) == 0 {
		return nil, errors.New("bench: the testnet has no bench agency or auditor keys")
	}
	return g, nil
}

func (g *txGen) setHeight(h uint64) {
	for {
		old := g.height.Load()
		if h <= old || g.height.CompareAndSwap(old, h) {
			return
		}
	}
}

// body starts a transaction body that expires half a replay window from
// the last height seen.
func (g *txGen) body(kind chain.Kind, sender []byte) chain.TxBody {
	return chain.TxBody{Chain: g.chainID, Kind: kind, Sender: sender, Expires: g.height.Load() + g.window/2, Nonce: g.nonce.Add(1)}
}

func (g *txGen) signed(b chain.TxBody, s chain.Signer) (*chain.Tx, error) {
	tx := &chain.Tx{Body: b}
	if err := tx.Sign(s); err != nil {
		return nil, err
	}
	return tx, nil
}

func (g *txGen) pick(n int) int {
	g.mu.Lock()
	defer g.mu.Unlock()
	return g.rng.IntN(n)
}

// anchor makes an Anchor of a fresh root by agency ag.
func (g *txGen) anchor(ag benchSigner) (*chain.Tx, benchDataset, error) {
	n := g.nonce.Add(1)
	var seed [8]byte
	binary.BigEndian.PutUint64(seed[:], n)
	sum := sha256.Sum256(append([]byte("auditnet bench dataset "), seed[:]...))
	mh, err := multihash.Encode(sum[:], multihash.SHA2_256)
	if err != nil {
		return nil, benchDataset{}, err
	}
	root := cid.NewCidV1(cid.Raw, mh)
	b := g.body(chain.KindAnchor, ag.id)
	b.Anchor = &chain.Anchor{Root: dagcbor.Link{Cid: root}, Size: benchDatasetSize, Name: "bench", Policy: chain.PolicyRestricted}
	tx, err := g.signed(b, ag.signer)
	return tx, benchDataset{owner: ag, root: root}, err
}

func (g *txGen) grant(ds benchDataset, au benchSigner) (*chain.Tx, error) {
	b := g.body(chain.KindGrant, ds.owner.id)
	b.Grant = &chain.Grant{
		Dataset: chain.Dataset{Owner: ds.owner.id, Root: dagcbor.Link{Cid: ds.root}},
		Auditor: au.id, Expires: time.Now().Add(365 * 24 * time.Hour).UnixMilli(),
	}
	return g.signed(b, ds.owner.signer)
}

func (g *txGen) access(ds benchDataset, au benchSigner) (*chain.Tx, error) {
	b := g.body(chain.KindAccess, au.id)
	nonce := make([]byte, 16)
	binary.BigEndian.PutUint64(nonce, g.nonce.Add(1))
	b.Access = &chain.AccessRequest{
		Dataset:  chain.Dataset{Owner: ds.owner.id, Root: dagcbor.Link{Cid: ds.root}},
		Provider: ds.owner.id, Nonce: nonce, Purpose: "bench", Case: "bench",
	}
	return g.signed(b, au.signer)
}

// benchAccess is an access request's dataset and auditor, for its Served.
type benchAccess struct {
	ds benchDataset
	au benchSigner
}

// benchDue is a committed access request waiting for its Served; tries
// counts the Served sent for it that no validator took.
type benchDue struct {
	request cid.Cid
	benchAccess
	tries int
}

// accessEvent makes an access request of a random auditor for a random
// dataset, both remembered for its Served.
func (g *txGen) accessEvent() (*chain.Tx, benchAccess, error) {
	a := benchAccess{ds: g.datasets[g.pick(len(g.datasets))], au: g.auditors[g.pick(len(g.auditors))]}
	tx, err := g.access(a.ds, a.au)
	return tx, a, err
}

// served makes the Served of a committed request: sent by the dataset's
// owner (its holder), carrying the auditor's acknowledgement of the whole
// dataset.
func (g *txGen) served(d benchDue) (*chain.Tx, error) {
	ack := &chain.Ack{Chain: g.chainID, Request: dagcbor.Link{Cid: d.request}, Bytes: benchDatasetSize, Blocks: benchDatasetSize / (256 << 10)}
	if err := chain.SignAck(ack, d.au.signer); err != nil {
		return nil, err
	}
	b := g.body(chain.KindServed, d.ds.owner.id)
	b.Served = &chain.Served{Request: dagcbor.Link{Cid: d.request}, Ack: ack}
	return g.signed(b, d.ds.owner.signer)
}

// next makes the next transaction of the mix.
func (g *txGen) next(mix string) (*chain.Tx, error) {
	if mix == MixAnchor {
		tx, _, err := g.anchor(g.agencies[g.pick(len(g.agencies))])
		return tx, err
	}
	ds := g.datasets[g.pick(len(g.datasets))]
	au := g.auditors[g.pick(len(g.auditors))]
	switch g.pick(3) {
	case 0:
		tx, _, err := g.anchor(g.agencies[g.pick(len(g.agencies))])
		return tx, err
	case 1:
		return g.grant(ds, au)
	}
	return g.access(ds, au)
}

// follow opens the node's block feed.
func (c *Client) follow(ctx context.Context) (io.ReadCloser, error) {
	resp, err := c.request(ctx, http.MethodGet, "chain/follow", nil, nil)
	if err != nil {
		return nil, err
	}
	return resp.Body, nil
}
