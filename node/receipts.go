package node

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"

	"github.com/ipfs/go-cid"

	"auditnet/chain"
	"auditnet/chain/index"
	"auditnet/chain/pbft"
)

// VerifyReport is what `verify CID` checked of a dataset this node holds.
type VerifyReport struct {
	Root string `json:"Root"`
	// Blocks and Bytes are the DAG's blocks, each read and re-hashed.
	Blocks  int              `json:"Blocks"`
	Bytes   int64            `json:"Bytes"`
	Anchors []VerifiedAnchor `json:"Anchors"`
}

// VerifiedAnchor is one anchor of the dataset, its receipt checked
// against the genesis.
type VerifiedAnchor struct {
	Tx     string       `json:"Tx"`
	Height uint64       `json:"Height"`
	Owner  string       `json:"Owner"`
	Name   string       `json:"Name"`
	Size   uint64       `json:"Size"`
	Policy chain.Policy `json:"Policy"`
	// Signers is how many validators' commit signatures the receipt
	// carries, of the quorum Quorum.
	Signers int `json:"Signers"`
}

// ErrVerify is wrapped by every failure of VerifyDataset.
var ErrVerify = errors.New("verification failed")

// VerifyDataset checks a dataset end to end: every block of root's DAG
// read from the store and re-hashed; the dataset anchored on the chain,
// each anchor's receipt (inclusion, header, commit certificate, epoch
// changes) verified against this node's genesis; the DAG within the
// anchored size.
func (d *Daemon) VerifyDataset(ctx context.Context, root cid.Cid) (VerifyReport, error) {
	rep := VerifyReport{Root: root.String()}
	check, err := d.repo.Store.CheckDAG(ctx, root)
	if err != nil {
		return rep, fmt.Errorf("%w: %v", ErrVerify, err)
	}
	rep.Blocks, rep.Bytes = check.Blocks, check.Bytes
	evs, err := d.chain.anchorsOf(ctx, root)
	if err != nil {
		return rep, err
	}
	anchor, err := chain.AnchorFromGenesis(d.chain.genesis)
	if err != nil {
		return rep, err
	}
	for _, ev := range evs {
		if ev.Code != chain.OutcomeOK {
			continue
		}
		rc, err := d.chain.receipt(ev.Tx.Cid)
		if err != nil {
			return rep, err
		}
		proven, err := chain.VerifyReceipt(rc, anchor)
		if err != nil {
			return rep, fmt.Errorf("%w: the receipt of anchor %s: %v", ErrVerify, ev.Tx.Cid, err)
		}
		a := proven.Anchor
		if a == nil || !a.Root.Cid.Equals(root) {
			return rep, fmt.Errorf("%w: receipt %s does not anchor %s", ErrVerify, ev.Tx.Cid, root)
		}
		if uint64(check.Bytes) > a.Size {
			return rep, fmt.Errorf("%w: the DAG holds %d bytes, the anchor declares %d", ErrVerify, check.Bytes, a.Size)
		}
		rep.Anchors = append(rep.Anchors, VerifiedAnchor{Tx: proven.Tx.String(), Height: proven.Height, Owner: peerString(proven.Sender),
			Name: a.Name, Size: a.Size, Policy: a.Policy, Signers: len(rc.Cert.Votes)})
	}
	if len(rep.Anchors) == 0 {
		return rep, fmt.Errorf("%w: %s %v", ErrVerify, root, ErrNotAnchored)
	}
	return rep, nil
}

// receipt makes the receipt of the committed transaction id.
func (c *chainNode) receipt(id cid.Cid) (*chain.Receipt, error) {
	h, i, err := c.store.Tx(id)
	if err != nil {
		return nil, err
	}
	cb, err := c.store.Committed(h)
	if err != nil {
		return nil, err
	}
	return c.receiptAt(cb, i)
}

// receiptAt makes the receipt of transaction i of the committed block cb.
func (c *chainNode) receiptAt(cb pbft.Committed, i int) (*chain.Receipt, error) {
	epochs, err := c.store.EpochChanges(cb.Block.Header.Epoch)
	if err != nil {
		return nil, err
	}
	return chain.NewReceipt(cb.Block, cb.Outcomes, i, *cb.Cert, epochs)
}

// anchorsOf lists the anchor events of root, under any owner, once the
// index holds what the status shows committed.
func (c *chainNode) anchorsOf(ctx context.Context, root cid.Cid) ([]index.Event, error) {
	if err := c.waitIndexed(ctx); err != nil {
		return nil, err
	}
	return c.index.Query(index.Filter{Root: root, Kinds: []index.Kind{index.KindAnchor}})
}

func (d *Daemon) apiVerify(w http.ResponseWriter, r *http.Request) {
	root, err := cid.Decode(r.URL.Query().Get("arg"))
	if err != nil {
		writeError(w, http.StatusBadRequest, fmt.Errorf("%w: %v", ErrBadRef, err))
		return
	}
	rep, err := d.VerifyDataset(r.Context(), root)
	if err != nil {
		status := http.StatusUnprocessableEntity
		if !errors.Is(err, ErrVerify) {
			status = statusOf(err)
		}
		writeError(w, status, err)
		return
	}
	writeJSON(w, rep)
}

// VerifyDataset asks the daemon to verify a dataset it holds.
func (c *Client) VerifyDataset(ctx context.Context, root string) (VerifyReport, error) {
	var out VerifyReport
	return out, c.call(ctx, http.MethodGet, "verify", url.Values{"arg": {root}}, nil, &out)
}

// Proof returns the receipt of committed transaction tx as JSON.
func (c *Client) Proof(ctx context.Context, tx string) ([]byte, error) {
	resp, err := c.request(ctx, http.MethodGet, "chain/proof", url.Values{"tx": {tx}}, nil)
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	raw, err := io.ReadAll(io.LimitReader(resp.Body, 16<<20))
	if err != nil {
		return nil, fmt.Errorf("daemon API chain/proof: %w", err)
	}
	if !json.Valid(raw) {
		return nil, errors.New("daemon API chain/proof: not JSON")
	}
	return raw, nil
}
