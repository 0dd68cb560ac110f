package node

import (
	"context"
	"crypto/rand"
	"encoding/binary"
	"errors"
	"fmt"
	"time"
	"unicode/utf8"

	"github.com/ipfs/go-cid"

	"auditnet/chain"
	"auditnet/chain/index"
	"auditnet/chain/pbft"
	"auditnet/internal/dagcbor"
)

// Anchored is where a dataset's anchor is on the chain.
type Anchored struct {
	// Tx is the Anchor transaction's ID; Height the block that committed
	// it.
	Tx     string       `json:"Tx"`
	Height uint64       `json:"Height"`
	Policy chain.Policy `json:"Policy"`
	// Existing says the dataset was anchored before this add, which
	// anchored nothing.
	Existing bool `json:"Existing,omitempty"`
}

// ParsePolicy parses a dataset policy; the empty string is restricted,
// the default.
func ParsePolicy(s string) (chain.Policy, error) {
	switch p := chain.Policy(s); p {
	case "":
		return chain.PolicyRestricted, nil
	case chain.PolicyOpen, chain.PolicyRestricted:
		return p, nil
	}
	return "", fmt.Errorf("unknown policy %q (want open or restricted)", s)
}

// txTimeout bounds how long a node's own transaction (an anchor, a
// grant) is waited for.
const txTimeout = time.Minute

// ErrNoQuorum is wrapped by a chain operation that timed out waiting for
// a commit: the validators are down or cut off.
var ErrNoQuorum = errors.New("the chain did not commit in time (no quorum of validators reachable?)")

// anchor puts this node's dataset root on the chain, with its encoded
// size, name and policy, and returns once the anchor has committed. A
// dataset this node anchored before is not anchored again: the anchor on
// the chain is returned, whatever policy was asked for now.
func (c *chainNode) anchor(ctx context.Context, root cid.Cid, size uint64, name string, policy chain.Policy) (Anchored, error) {
	self := c.opts.Signer.ID()
	ds := chain.Dataset{Owner: self, Root: dagcbor.Link{Cid: root}}
	if a, ok, err := c.anchored(ds); err != nil || ok {
		return a, err
	}
	done, err := c.sendOwn(ctx, chain.TxBody{Kind: chain.KindAnchor,
		Anchor: &chain.Anchor{Root: dagcbor.Link{Cid: root}, Size: size, Name: truncateName(name), Policy: policy}})
	if err != nil {
		return Anchored{}, fmt.Errorf("anchor %s: %w", root, err)
	}
	if done.Outcome == chain.OutcomeNoop {
		// Anchored meanwhile by another add of the same bytes.
		if a, ok, err := c.anchored(ds); err != nil || ok {
			return a, err
		}
	}
	return Anchored{Tx: done.Tx, Height: done.Height, Policy: policy}, nil
}

// TxDone is a transaction this node sent, committed.
type TxDone struct {
	Tx      string `json:"Tx"`
	Height  uint64 `json:"Height"`
	Outcome string `json:"Outcome"`
	Reason  string `json:"Reason,omitempty"`
}

// sendOwn sends a transaction of this node's (body's chain, sender,
// expiry and nonce are filled in), signed with its key, and waits until
// it commits.
func (c *chainNode) sendOwn(ctx context.Context, body chain.TxBody) (TxDone, error) {
	box := c.state.Load()
	if box == nil {
		return TxDone{}, errors.New("the chain has not started")
	}
	params, err := chain.LookupParams(box.s)
	if err != nil {
		return TxDone{}, err
	}
	var nonce [8]byte
	rand.Read(nonce[:])
	body.Chain, body.Sender = c.genesis.ChainID, c.opts.Signer.ID()
	body.Expires, body.Nonce = c.Status().Height+params.ReplayWindow, binary.BigEndian.Uint64(nonce[:])
	tx := &chain.Tx{Body: body}
	if err := tx.Sign(c.opts.Signer); err != nil {
		return TxDone{}, fmt.Errorf("sign: %w", err)
	}
	raw, err := chain.EncodeTx(tx)
	if err != nil {
		return TxDone{}, err
	}
	tc, id, err := c.submitAndWait(ctx, raw, txTimeout)
	if err != nil {
		return TxDone{}, err
	}
	done := TxDone{Tx: id, Height: tc.Height}
	if tc.Outcome != nil {
		done.Outcome, done.Reason = tc.Outcome.Code, tc.Outcome.Reason
	}
	return done, nil
}

// anchored returns the anchor of ds if the committed state has one.
func (c *chainNode) anchored(ds chain.Dataset) (Anchored, bool, error) {
	box := c.state.Load()
	if box == nil {
		return Anchored{}, false, nil
	}
	rec, ok, err := chain.LookupDataset(box.s, ds)
	if err != nil || !ok {
		return Anchored{}, false, err
	}
	a := Anchored{Height: rec.Height, Policy: rec.Policy, Existing: true}
	// The index names the transaction; it may lag the state by a block.
	c.waitStored(context.Background(), rec.Height)
	evs, err := c.index.Query(index.Filter{Dataset: &ds, Kinds: []index.Kind{index.KindAnchor}, Limit: 1})
	if err != nil {
		return Anchored{}, false, fmt.Errorf("anchor: look up %s: %w", ds.Root.Cid, err)
	}
	if len(evs) > 0 {
		a.Tx = evs[0].Tx.Cid.String()
	}
	return a, true, nil
}

// isOpenDataset reports whether this node anchored root as open: only
// those are announced in the DHT.
func (c *chainNode) isOpenDataset(root cid.Cid) bool {
	box := c.state.Load()
	if box == nil {
		return false
	}
	rec, ok, err := chain.LookupDataset(box.s, chain.Dataset{Owner: c.opts.Signer.ID(), Root: dagcbor.Link{Cid: root}})
	return err == nil && ok && rec.Policy == chain.PolicyOpen
}

// submitAndWait submits one encoded transaction of this node and waits
// for its commit, trying again while the mempool is full.
func (c *chainNode) submitAndWait(ctx context.Context, raw []byte, timeout time.Duration) (TxCommit, string, error) {
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	backoff := 50 * time.Millisecond
	for {
		left := time.Until(deadlineOf(ctx))
		res, err := c.submitEncoded(ctx, [][]byte{raw}, true, left)
		switch {
		case errors.Is(err, context.DeadlineExceeded):
			return TxCommit{}, "", ErrNoQuorum
		case err != nil:
			return TxCommit{}, "", err
		case res[0].Busy:
			t := time.NewTimer(backoff)
			select {
			case <-ctx.Done():
				t.Stop()
				return TxCommit{}, "", fmt.Errorf("%w (every try found the mempool full)", pbft.ErrBusy)
			case <-t.C:
			}
			backoff = min(2*backoff, time.Second)
			continue
		case res[0].Error != "":
			return TxCommit{}, "", errors.New(res[0].Error)
		case res[0].Commit == nil:
			return TxCommit{}, res[0].ID, ErrNoQuorum
		}
		return *res[0].Commit, res[0].ID, nil
	}
}

// truncateName cuts a dataset name to what the chain takes, on a
// character boundary.
func truncateName(name string) string {
	if len(name) <= chain.MaxNameLength {
		return name
	}
	name = name[:chain.MaxNameLength]
	for !utf8.ValidString(name) {
		name = name[:len(name)-1]
	}
	return name
}

// deadlineOf is ctx's deadline (every caller sets one).
func deadlineOf(ctx context.Context) time.Time {
	d, _ := ctx.Deadline()
	return d
}
