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

// ErrNoQuorum is wrapped by a chain operation that cannot commit: too few
// validators are heard from, or the commit did not come in time.
var ErrNoQuorum = errors.New("no quorum: the chain cannot commit (too few validators reachable)")

// anchor puts this node's dataset root on the chain, with its encoded
// size, name and policy, and returns once the anchor has committed. A
// dataset this node anchored before is not anchored again: the anchor on
// the chain is returned, whatever policy was asked for now.
func (c *chainNode) anchor(ctx context.Context, root cid.Cid, size uint64, name string, policy chain.Policy) (Anchored, error) {
	self := c.opts.Signer.ID()
	ds := chain.Dataset{Owner: self, Root: dagcbor.Link{Cid: root}}
	if a, ok, err := c.anchored(ctx, ds); err != nil || ok {
		return a, err
	}
	done, err := c.sendOwn(ctx, chain.TxBody{Kind: chain.KindAnchor,
		Anchor: &chain.Anchor{Root: dagcbor.Link{Cid: root}, Size: size, Name: truncateName(name), Policy: policy}})
	if err != nil {
		return Anchored{}, fmt.Errorf("anchor %s: %w", root, err)
	}
	if done.Outcome == chain.OutcomeNoop {
		// Anchored meanwhile by another add of the same bytes.
		if a, ok, err := c.anchored(ctx, ds); err != nil || ok {
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
	if err := c.awaitQuorum(ctx, quorumGrace); err != nil {
		return TxDone{}, err
	}
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
	id, err := tx.ID()
	if err != nil {
		return TxDone{}, err
	}
	tc, err := c.submitAndWait(ctx, raw, id, txTimeout)
	if err != nil {
		return TxDone{}, err
	}
	done := TxDone{Tx: id.String(), Height: tc.Height}
	if tc.Outcome != nil {
		done.Outcome, done.Reason = tc.Outcome.Code, tc.Outcome.Reason
	}
	return done, nil
}

// anchored returns the anchor of ds if the committed state has one.
func (c *chainNode) anchored(ctx context.Context, ds chain.Dataset) (Anchored, bool, error) {
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
	c.waitStored(ctx, rec.Height)
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

// quorumGrace is how long a node's own transaction waits for a quorum of
// validators to be heard from before it fails: long enough for a node
// that just started to hear their heartbeats.
const quorumGrace = 5 * time.Second

// awaitQuorum returns once this node has heard from a quorum of
// validators lately, or ErrNoQuorum after grace: with no quorum nothing
// can commit, so fetches and anchors fail closed at once rather than
// wait out a commit timeout.
func (c *chainNode) awaitQuorum(ctx context.Context, grace time.Duration) error {
	deadline := time.NewTimer(grace)
	defer deadline.Stop()
	tick := time.NewTicker(100 * time.Millisecond)
	defer tick.Stop()
	for {
		st := c.Status()
		if st.HasQuorum {
			return nil
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-deadline.C:
			return fmt.Errorf("%w: %d of the %d validators needed are live", ErrNoQuorum, st.Live, st.Quorum)
		case <-tick.C:
		}
	}
}

// submitAndWait submits one encoded transaction of this node, id, and waits
// for its commit, trying again while the mempool is full. It gives up
// with ErrNoQuorum when the quorum has been lost for quorumGrace, or at
// the timeout.
func (c *chainNode) submitAndWait(ctx context.Context, raw []byte, id cid.Cid, timeout time.Duration) (TxCommit, error) {
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	ch, stopWaiting, err := c.waiters.wait(id)
	if err != nil {
		return TxCommit{}, err
	}
	defer stopWaiting()
	backoff := 50 * time.Millisecond
	for {
		res, err := c.submitEncoded(ctx, [][]byte{raw}, false, 0)
		switch {
		case errors.Is(err, context.DeadlineExceeded):
			return TxCommit{}, ErrNoQuorum
		case err != nil:
			return TxCommit{}, err
		case res[0].Busy:
			t := time.NewTimer(backoff)
			select {
			case <-ctx.Done():
				t.Stop()
				return TxCommit{}, fmt.Errorf("%w (every try found the mempool full)", pbft.ErrBusy)
			case <-t.C:
			}
			backoff = min(2*backoff, time.Second)
			continue
		case res[0].Error != "":
			return TxCommit{}, fmt.Errorf("%w: %s", ErrRefused, res[0].Error)
		}
		break
	}
	tick := time.NewTicker(250 * time.Millisecond)
	defer tick.Stop()
	var lost time.Time
	for {
		select {
		case tc, ok := <-ch:
			if !ok {
				return TxCommit{}, errors.New("the node is stopping")
			}
			return tc, nil
		case <-ctx.Done():
			if errors.Is(ctx.Err(), context.Canceled) {
				return TxCommit{}, ctx.Err() // the caller gave up
			}
			return TxCommit{}, ErrNoQuorum
		case <-tick.C:
		}
		// It may have committed before the waiter was registered.
		if tc, ok := c.committedTx(id, map[uint64]map[cid.Cid]*chain.Outcome{}); ok {
			return tc, nil
		}
		switch st := c.Status(); {
		case st.HasQuorum:
			lost = time.Time{}
		case lost.IsZero():
			lost = time.Now()
		case time.Since(lost) >= quorumGrace:
			return TxCommit{}, fmt.Errorf("%w: %d of the %d validators needed are live", ErrNoQuorum, st.Live, st.Quorum)
		}
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
