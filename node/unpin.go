package node

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"os"
	"path/filepath"

	"github.com/ipfs/go-cid"

	"auditnet/chain"
	"auditnet/chain/index"
	"auditnet/internal/dagcbor"
)

// ErrAnchoredHere is wrapped by an unpin, without force, of a dataset this
// node anchored: the chain names this node its holder, so garbage
// collection must not take it away unnoticed.
var ErrAnchoredHere = errors.New("is a dataset this node anchored on the chain, which names this node its holder (unpin it with --force, and auditors' fetches of it will fail)")

// UnpinWarning is what an unpin with force says of an anchored dataset.
func UnpinWarning(root cid.Cid) string {
	return fmt.Sprintf("warning: %s is anchored on the chain by this node; once collected, auditors' fetches of it will fail", root)
}

// PinRm unpins roots as Repo.PinRm does, but refuses, unless force, any
// root this node anchored on the chain; with force it returns a warning
// for each. Nothing is unpinned when one is refused.
func (d *Daemon) PinRm(ctx context.Context, roots []cid.Cid, force bool) ([]string, error) {
	var anchored []cid.Cid
	if d.chain != nil {
		for _, root := range roots {
			if _, err := d.chain.ownDataset(root); err == nil {
				anchored = append(anchored, root)
			}
		}
	}
	return unpinChecked(ctx, d.repo, roots, anchored, force)
}

// PinRmOffline is PinRm on a repo without its daemon: what the node
// anchored is read from its chain index (the daemon brings the index up to
// date with the chain store when it starts, so an anchor of its last
// moments before a crash may not be in it yet).
func PinRmOffline(ctx context.Context, r *Repo, roots []cid.Cid, force bool) ([]string, error) {
	anchored, err := anchoredOffline(r, roots)
	if err != nil {
		return nil, err
	}
	return unpinChecked(ctx, r, roots, anchored, force)
}

func unpinChecked(ctx context.Context, r *Repo, roots, anchored []cid.Cid, force bool) ([]string, error) {
	var warnings []string
	for _, root := range anchored {
		if !force {
			return nil, fmt.Errorf("unpin %s: %w", root, ErrAnchoredHere)
		}
		warnings = append(warnings, UnpinWarning(root))
	}
	return warnings, r.PinRm(ctx, roots)
}

// anchoredOffline lists the roots this repo's node anchored, from its
// chain index; none for a repo that runs no chain.
func anchoredOffline(r *Repo, roots []cid.Cid) ([]cid.Cid, error) {
	dir := filepath.Join(r.Dir, chainDir, indexDir)
	if _, err := os.Stat(dir); errors.Is(err, os.ErrNotExist) {
		return nil, nil
	}
	self, err := chain.ParsePeerID(r.Config.Identity.PeerID)
	if err != nil {
		return nil, err
	}
	ix, err := index.Open(dir)
	if err != nil {
		return nil, fmt.Errorf("read the chain index: %w", err)
	}
	defer ix.Close()
	var out []cid.Cid
	for _, root := range roots {
		ds := chain.Dataset{Owner: self, Root: dagcbor.Link{Cid: root}}
		evs, err := ix.Query(index.Filter{Dataset: &ds, Kinds: []index.Kind{index.KindAnchor}, Limit: 1})
		if err != nil {
			return nil, fmt.Errorf("read the chain index: %w", err)
		}
		if len(evs) > 0 {
			out = append(out, root)
		}
	}
	return out, nil
}

func (d *Daemon) apiPinRm(w http.ResponseWriter, r *http.Request) {
	roots, err := queryCids(r)
	if err != nil {
		writeError(w, statusOf(err), err)
		return
	}
	warnings, err := d.PinRm(r.Context(), roots, r.URL.Query().Get("force") == "true")
	if err != nil {
		status := statusOf(err)
		if errors.Is(err, ErrAnchoredHere) {
			status = http.StatusConflict
		}
		writeError(w, status, err)
		return
	}
	writeJSON(w, map[string]any{"Pins": roots, "Warnings": warnings})
}

// PinRm unpins DAGs; force unpins datasets the node anchored too, with a
// warning each.
func (c *Client) PinRm(ctx context.Context, roots []cid.Cid, force bool) ([]string, error) {
	q := cidQuery(roots)
	if force {
		q.Set("force", "true")
	}
	var out struct{ Warnings []string }
	return out.Warnings, c.call(ctx, http.MethodPost, "pin/rm", q, nil, &out)
}
