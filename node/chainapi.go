package node

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/http/pprof"
	"os"
	"strconv"
	"time"

	"github.com/ipfs/go-cid"
	"github.com/libp2p/go-libp2p/core/peer"
	"github.com/prometheus/client_golang/prometheus/promhttp"

	"auditnet/chain"
	"auditnet/chain/pbft"
	"auditnet/chain/store"
	"auditnet/p2p"
)

// The chain's endpoints, under /api/v0/chain/, and /metrics.

// ErrNoChain is returned by chain endpoints of a node without a genesis.
var ErrNoChain = errors.New("this node runs no chain (its repo has no genesis.json)")

// testHooksEnv enables the test-only endpoints (partitions) of a daemon.
const testHooksEnv = "AUDITNET_TEST_HOOKS"

func (d *Daemon) chainRoutes(mux *http.ServeMux) {
	mux.HandleFunc("GET /api/v0/chain/status", d.withChain(d.apiChainStatus))
	mux.HandleFunc("GET /api/v0/chain/block", d.withChain(d.apiChainBlock))
	mux.HandleFunc("GET /api/v0/chain/tx", d.withChain(d.apiChainTx))
	mux.HandleFunc("GET /api/v0/chain/proof", d.withChain(d.apiChainProof))
	mux.HandleFunc("POST /api/v0/chain/submit", d.withChain(d.apiChainSubmit))
	mux.HandleFunc("GET /api/v0/chain/follow", d.withChain(d.apiChainFollow))
	mux.HandleFunc("POST /api/v0/grant", d.withChain(d.apiGrant))
	mux.HandleFunc("POST /api/v0/revoke", d.withChain(d.apiRevoke))
	mux.HandleFunc("GET /api/v0/log", d.withChain(d.apiLog))
	mux.HandleFunc("GET /api/v0/members", d.withChain(d.apiMembers))
	mux.HandleFunc("GET /api/v0/datasets", d.withChain(d.apiDatasets))
	mux.HandleFunc("GET /api/v0/verify", d.withChain(d.apiVerify))
	mux.HandleFunc("GET /api/v0/served", d.withChain(d.apiServed))
	mux.HandleFunc("GET /metrics", d.withChain(d.apiMetrics))
	// Profiles, as kubo serves them, behind the API token.
	mux.HandleFunc("GET /debug/pprof/", pprof.Index)
	mux.HandleFunc("GET /debug/pprof/profile", pprof.Profile)
	mux.HandleFunc("GET /debug/pprof/trace", pprof.Trace)
	if os.Getenv(testHooksEnv) == "1" {
		mux.HandleFunc("POST /api/v0/test/partition", d.withChain(d.apiTestPartition))
	}
}

func (d *Daemon) withChain(h http.HandlerFunc) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		if d.chain == nil {
			writeError(w, http.StatusNotFound, ErrNoChain)
			return
		}
		h(w, r)
	}
}

func (d *Daemon) apiChainStatus(w http.ResponseWriter, _ *http.Request) {
	writeJSON(w, d.chain.Status())
}

func (d *Daemon) apiMetrics(w http.ResponseWriter, r *http.Request) {
	promhttp.HandlerFor(d.chain.metrics.registry, promhttp.HandlerOpts{}).ServeHTTP(w, r)
}

// BlockInfo is a committed block as the API shows it.
type BlockInfo struct {
	Height   uint64           `json:"Height"`
	CID      string           `json:"CID"`
	Header   chain.Header     `json:"Header"`
	Txs      []TxInfo         `json:"Txs"`
	Cert     chain.CommitCert `json:"Cert"`
	Outcomes []chain.Outcome  `json:"Outcomes"`
}

// TxInfo is a transaction with its ID.
type TxInfo struct {
	ID string   `json:"ID"`
	Tx chain.Tx `json:"Tx"`
}

func (d *Daemon) apiChainBlock(w http.ResponseWriter, r *http.Request) {
	h, err := strconv.ParseUint(r.URL.Query().Get("height"), 10, 64)
	if err != nil || h == 0 {
		writeError(w, http.StatusBadRequest, errors.New("want ?height=N with N ≥ 1"))
		return
	}
	d.chain.waitStored(r.Context(), h)
	cb, err := d.chain.store.Committed(h)
	if err != nil {
		writeError(w, chainStatusOf(err), err)
		return
	}
	id, err := cb.Block.CID()
	if err != nil {
		writeError(w, http.StatusInternalServerError, err)
		return
	}
	info := BlockInfo{Height: h, CID: id.String(), Header: cb.Block.Header, Cert: *cb.Cert, Outcomes: cb.Outcomes}
	for i := range cb.Block.Txs {
		tid, _ := cb.Block.Txs[i].ID()
		info.Txs = append(info.Txs, TxInfo{ID: tid.String(), Tx: cb.Block.Txs[i]})
	}
	writeJSON(w, info)
}

func chainStatusOf(err error) int {
	if errors.Is(err, store.ErrNotFound) {
		return http.StatusNotFound
	}
	return http.StatusInternalServerError
}

// TxLookup is a committed transaction and where it is.
type TxLookup struct {
	ID      string         `json:"ID"`
	Height  uint64         `json:"Height"`
	Index   int            `json:"Index"`
	Tx      chain.Tx       `json:"Tx"`
	Outcome *chain.Outcome `json:"Outcome,omitempty"`
}

func (d *Daemon) lookupTx(r *http.Request, param string) (cid.Cid, pbft.Committed, int, error) {
	id, err := cid.Decode(r.URL.Query().Get(param))
	if err != nil {
		return cid.Undef, pbft.Committed{}, 0, fmt.Errorf("%w: ?%s: %v", ErrBadRef, param, err)
	}
	cb, i, err := d.chain.txBlock(r.Context(), id)
	return id, cb, i, err
}

func (d *Daemon) apiChainTx(w http.ResponseWriter, r *http.Request) {
	id, cb, i, err := d.lookupTx(r, "id")
	if err != nil {
		writeError(w, txErrStatus(err), err)
		return
	}
	out := TxLookup{ID: id.String(), Height: cb.Block.Header.Height, Index: i, Tx: cb.Block.Txs[i]}
	for k := range cb.Outcomes {
		if cb.Outcomes[k].Tx.Cid.Equals(id) {
			out.Outcome = &cb.Outcomes[k]
		}
	}
	writeJSON(w, out)
}

func txErrStatus(err error) int {
	if errors.Is(err, ErrBadRef) {
		return http.StatusBadRequest
	}
	return chainStatusOf(err)
}

// apiChainProof returns the receipt of a committed transaction: the
// transaction, its inclusion paths, the header, the commit certificate
// and every validator-set change since genesis (chain.VerifyReceipt checks
// it against genesis.json offline).
func (d *Daemon) apiChainProof(w http.ResponseWriter, r *http.Request) {
	_, cb, i, err := d.lookupTx(r, "tx")
	if err != nil {
		writeError(w, txErrStatus(err), err)
		return
	}
	rc, err := d.chain.receiptAt(cb, i)
	if err != nil {
		writeError(w, http.StatusInternalServerError, err)
		return
	}
	writeJSON(w, rc)
}

// SubmitRequest carries encoded transactions (canonical DAG-CBOR, as
// chain.EncodeTx writes them; base64 in JSON).
type SubmitRequest struct {
	Txs [][]byte `json:"Txs"`
	// Wait, if set, makes the call return once every accepted transaction
	// has committed (or WaitTimeout passed).
	Wait        bool   `json:"Wait,omitempty"`
	WaitTimeout string `json:"WaitTimeout,omitempty"`
}

// SubmitResult is one transaction's fate.
type SubmitResult struct {
	ID string `json:"ID,omitempty"`
	// Error is why it was refused; Busy says the refusal is a full mempool
	// (try again later).
	Error  string    `json:"Error,omitempty"`
	Busy   bool      `json:"Busy,omitempty"`
	Commit *TxCommit `json:"Commit,omitempty"`
}

// maxSubmitBatch bounds one submit call.
const maxSubmitBatch = 4096

func (d *Daemon) apiChainSubmit(w http.ResponseWriter, r *http.Request) {
	var req SubmitRequest
	body := http.MaxBytesReader(w, r.Body, maxSubmitBatch*chain.MaxTxSize/8)
	if err := json.NewDecoder(body).Decode(&req); err != nil {
		writeError(w, http.StatusBadRequest, fmt.Errorf("submit: %w", err))
		return
	}
	if len(req.Txs) == 0 || len(req.Txs) > maxSubmitBatch {
		writeError(w, http.StatusBadRequest, fmt.Errorf("submit: want 1 to %d transactions", maxSubmitBatch))
		return
	}
	timeout, err := parseDuration(req.WaitTimeout, 30*time.Second)
	if err != nil {
		writeError(w, http.StatusBadRequest, fmt.Errorf("submit: WaitTimeout: %w", err))
		return
	}
	res, err := d.chain.submitEncoded(r.Context(), req.Txs, req.Wait, timeout)
	if err != nil {
		writeError(w, http.StatusServiceUnavailable, err)
		return
	}
	writeJSON(w, res)
}

// submitEncoded decodes, submits and, when asked, waits for commits.
func (c *chainNode) submitEncoded(ctx context.Context, raw [][]byte, wait bool, timeout time.Duration) ([]SubmitResult, error) {
	res := make([]SubmitResult, len(raw))
	if c.mempoolFull() {
		for i := range res {
			res[i].Error, res[i].Busy = pbft.ErrBusy.Error(), true
		}
		return res, nil
	}
	var txs []*chain.Tx
	var at []int
	var ids []cid.Cid
	for i, b := range raw {
		tx, err := chain.DecodeTx(b)
		if err != nil {
			res[i].Error = err.Error()
			continue
		}
		id, err := tx.ID()
		if err != nil {
			res[i].Error = err.Error()
			continue
		}
		res[i].ID = id.String()
		txs, at, ids = append(txs, tx), append(at, i), append(ids, id)
	}
	if len(txs) == 0 {
		return res, nil
	}
	var chans []chan TxCommit
	if wait {
		for _, id := range ids {
			ch, cancel, err := c.waiters.wait(id)
			if err != nil {
				return nil, err
			}
			defer cancel()
			chans = append(chans, ch)
		}
	}
	errs, err := c.Submit(ctx, txs)
	if err != nil {
		return nil, err
	}
	for k, i := range at {
		if errs[k] != nil {
			res[i].Error, res[i].Busy = errs[k].Error(), errors.Is(errs[k], pbft.ErrBusy)
		}
	}
	if !wait {
		return res, nil
	}
	deadline := time.NewTimer(timeout)
	defer deadline.Stop()
	seen := map[uint64]map[cid.Cid]*chain.Outcome{}
	for k, i := range at {
		if res[i].Error != "" {
			continue
		}
		// It may have committed before this call registered (a resubmit).
		if tc, ok := c.committedTx(ids[k], seen); ok {
			res[i].Commit = &tc
			continue
		}
		select {
		case tc, ok := <-chans[k]:
			if ok {
				res[i].Commit = &tc
			}
		case <-deadline.C:
			return res, nil
		case <-ctx.Done():
			return nil, ctx.Err()
		}
	}
	return res, nil
}

// apiChainFollow streams committed blocks as JSON lines (BlockEvent),
// from now on, until the client leaves or falls too far behind.
func (d *Daemon) apiChainFollow(w http.ResponseWriter, r *http.Request) {
	ch, cancel := d.chain.blocks.subscribe()
	defer cancel()
	w.Header().Set("Content-Type", "application/x-ndjson")
	w.WriteHeader(http.StatusOK)
	bw := bufio.NewWriter(w)
	enc := json.NewEncoder(bw)
	flusher, _ := w.(http.Flusher)
	flush := func() {
		bw.Flush()
		if flusher != nil {
			flusher.Flush()
		}
	}
	flush()
	for {
		select {
		case ev, ok := <-ch:
			if !ok {
				return
			}
			if err := enc.Encode(ev); err != nil {
				return
			}
			if len(ch) == 0 {
				flush()
			}
		case <-r.Context().Done():
			return
		}
	}
}

// PartitionRequest is the test-only partition switch: cut this node off
// from Peers (Direction "both": no connections at all; "out" or "in":
// consensus frames to or from them are dropped, a one-way link; "heal":
// undo every cut).
type PartitionRequest struct {
	Peers     []string `json:"Peers"`
	Direction string   `json:"Direction"`
}

func (d *Daemon) apiTestPartition(w http.ResponseWriter, r *http.Request) {
	var req PartitionRequest
	if err := json.NewDecoder(io.LimitReader(r.Body, 1<<20)).Decode(&req); err != nil {
		writeError(w, http.StatusBadRequest, err)
		return
	}
	var ids []peer.ID
	for _, s := range req.Peers {
		id, err := peer.Decode(s)
		if err != nil {
			writeError(w, http.StatusBadRequest, err)
			return
		}
		ids = append(ids, id)
	}
	switch req.Direction {
	case "both":
		d.host.Gater.Partition(ids...)
		d.host.Enforce()
	case "out", "in":
		dir := p2p.Outbound
		if req.Direction == "in" {
			dir = p2p.Inbound
		}
		for _, id := range ids {
			d.chain.net.Cut(id, dir)
		}
	case "heal":
		d.host.Gater.Heal()
		for _, v := range d.chain.genesis.Validators {
			if id, err := peer.Decode(v.PeerID); err == nil {
				d.chain.net.Cut(id, p2p.Heal)
			}
		}
		for _, id := range ids {
			d.chain.net.Cut(id, p2p.Heal)
		}
	default:
		writeError(w, http.StatusBadRequest, fmt.Errorf("direction %q: want both, out, in or heal", req.Direction))
		return
	}
	writeJSON(w, struct{}{})
}

// committedTx looks a transaction up in the store, with its outcome.
// seen keeps the outcomes of the blocks read, by height, for
// the next lookups of one call: a batch of 4,096 transactions committed in
// two blocks reads two blocks' outcomes, not 4,096.
func (c *chainNode) committedTx(id cid.Cid, seen map[uint64]map[cid.Cid]*chain.Outcome) (TxCommit, bool) {
	h, idx, err := c.store.Tx(id)
	if err != nil {
		return TxCommit{}, false
	}
	tc := TxCommit{Height: h, Index: idx}
	byTx, ok := seen[h]
	if !ok {
		outcomes, err := c.store.Outcomes(h)
		if err != nil {
			return tc, true
		}
		byTx = outcomesByTx(outcomes)
		seen[h] = byTx
	}
	tc.Outcome = byTx[id]
	return tc, true
}
