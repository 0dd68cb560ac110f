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
	"auditnet/internal/dagcbor"
)

// ErrNotAllowed is wrapped by a chain operation the chain would refuse:
// a grant on a dataset this node did not anchor, a revoke of a grant it
// did not make. It is checked against the committed state before
// anything is sent.
var ErrNotAllowed = errors.New("not allowed")

// GrantRequest is the body of POST /api/v0/grant and /api/v0/revoke: a
// dataset this node anchored and an auditor. Expires (grant only) is the
// block time the grant ends at, ms since 1970 UTC; 0 never.
type GrantRequest struct {
	Dataset string `json:"Dataset"`
	Auditor string `json:"Auditor"`
	Expires int64  `json:"Expires,omitempty"`
}

// grant lets auditor read this node's dataset root until expires (block
// time, ms; 0: no end) and returns once the grant has committed.
func (c *chainNode) grant(ctx context.Context, root cid.Cid, auditor []byte, expires int64) (TxDone, error) {
	ds, err := c.ownDataset(root)
	if err != nil {
		return TxDone{}, err
	}
	box := c.state.Load()
	rec, ok, err := chain.LookupMember(box.s, auditor)
	switch {
	case err != nil:
		return TxDone{}, err
	case !ok:
		return TxDone{}, fmt.Errorf("grant: %s is not a member: %w", chain.PeerIDString(auditor), ErrNotAllowed)
	case rec.Role != string(RoleAuditor):
		return TxDone{}, fmt.Errorf("grant: %s is a %s, not an auditor: %w", chain.PeerIDString(auditor), rec.Role, ErrNotAllowed)
	case expires < 0:
		return TxDone{}, fmt.Errorf("grant: expiry %d before 1970: %w", expires, ErrNotAllowed)
	}
	done, err := c.sendOwn(ctx, chain.TxBody{Kind: chain.KindGrant, Grant: &chain.Grant{Dataset: ds, Auditor: auditor, Expires: expires}})
	if err != nil {
		return TxDone{}, fmt.Errorf("grant: %w", err)
	}
	return done, nil
}

// revoke withdraws the grant this node made on its dataset root to
// auditor and returns once the revocation has committed.
func (c *chainNode) revoke(ctx context.Context, root cid.Cid, auditor []byte) (TxDone, error) {
	ds, err := c.ownDataset(root)
	if err != nil {
		return TxDone{}, err
	}
	g, ok, err := chain.LookupGrant(c.state.Load().s, ds, auditor)
	switch {
	case err != nil:
		return TxDone{}, err
	case !ok || g.Revoked:
		return TxDone{}, fmt.Errorf("revoke: %s holds no grant in force on %s: %w", chain.PeerIDString(auditor), root, ErrNotAllowed)
	case string(g.Grantor) != string(c.opts.Signer.ID()):
		return TxDone{}, fmt.Errorf("revoke: the grant on %s was made by the admins; only they revoke it: %w", root, ErrNotAllowed)
	}
	done, err := c.sendOwn(ctx, chain.TxBody{Kind: chain.KindRevoke, Revoke: &chain.Revoke{Dataset: ds, Auditor: auditor}})
	if err != nil {
		return TxDone{}, fmt.Errorf("revoke: %w", err)
	}
	return done, nil
}

// ownDataset is the dataset this node anchored with root; an error if it
// anchored none.
func (c *chainNode) ownDataset(root cid.Cid) (chain.Dataset, error) {
	ds := chain.Dataset{Owner: c.opts.Signer.ID(), Root: dagcbor.Link{Cid: root}}
	box := c.state.Load()
	if box == nil {
		return ds, errors.New("the chain has not started")
	}
	if _, ok, err := chain.LookupDataset(box.s, ds); err != nil || !ok {
		if err != nil {
			return ds, err
		}
		return ds, fmt.Errorf("%s is not a dataset this node anchored: %w", root, ErrNotAllowed)
	}
	return ds, nil
}

func (d *Daemon) apiGrant(w http.ResponseWriter, r *http.Request)  { d.grantChange(w, r, true) }
func (d *Daemon) apiRevoke(w http.ResponseWriter, r *http.Request) { d.grantChange(w, r, false) }

func (d *Daemon) grantChange(w http.ResponseWriter, r *http.Request, grant bool) {
	var req GrantRequest
	if err := json.NewDecoder(io.LimitReader(r.Body, 1<<16)).Decode(&req); err != nil {
		writeError(w, http.StatusBadRequest, fmt.Errorf("grant request: %w", err))
		return
	}
	root, err := cid.Decode(req.Dataset)
	if err != nil {
		writeError(w, http.StatusBadRequest, fmt.Errorf("%w: dataset %q: %v", ErrBadRef, req.Dataset, err))
		return
	}
	auditor, err := chain.ParsePeerID(req.Auditor)
	if err != nil {
		writeError(w, http.StatusBadRequest, fmt.Errorf("auditor %q: %w", req.Auditor, err))
		return
	}
	var done TxDone
	if grant {
		done, err = d.chain.grant(r.Context(), root, auditor, req.Expires)
	} else {
		done, err = d.chain.revoke(r.Context(), root, auditor)
	}
	if err != nil {
		writeError(w, txStatusOf(err), err)
		return
	}
	writeJSON(w, done)
}

// txStatusOf is the HTTP status of a node's own transaction's error.
func txStatusOf(err error) int {
	switch {
	case errors.Is(err, ErrNotAllowed):
		return http.StatusConflict
	case errors.Is(err, ErrNoQuorum):
		return http.StatusServiceUnavailable
	}
	return statusOf(err)
}

// Grant lets auditor read the node's dataset root (see GrantRequest).
func (c *Client) Grant(ctx context.Context, req GrantRequest) (TxDone, error) {
	var out TxDone
	return out, c.call(ctx, http.MethodPost, "grant", url.Values{}, req, &out)
}

// Revoke withdraws the node's grant on its dataset to an auditor.
func (c *Client) Revoke(ctx context.Context, req GrantRequest) (TxDone, error) {
	var out TxDone
	return out, c.call(ctx, http.MethodPost, "revoke", url.Values{}, req, &out)
}
