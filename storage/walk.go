package storage

import (
	"context"

	"github.com/ipfs/go-cid"
)

// walk visits the DAG under root depth first, each distinct block once, in
// link order (the order of `ipfs dag export`). visit returns the children
// to descend into, or nil to stop there. Identity CIDs hold their data in
// the CID and are not visited. seen, if not nil, is shared between walks:
// a block one walk visited is not visited by the next (GC's mark phase
// walks every pin with one set).
func walk(ctx context.Context, root cid.Cid, seen map[string]struct{}, visit func(c cid.Cid) ([]cid.Cid, error)) error {
	if seen == nil {
		seen = make(map[string]struct{})
	}
	stack := []cid.Cid{root}
	for len(stack) > 0 {
		if err := ctx.Err(); err != nil {
			return err
		}
		c := stack[len(stack)-1]
		stack = stack[:len(stack)-1]
		key := string(c.Hash())
		if _, ok := seen[key]; ok || isIdentity(c) {
			continue
		}
		seen[key] = struct{}{}
		links, err := visit(c)
		if err != nil {
			return err
		}
		for i := len(links) - 1; i >= 0; i-- {
			stack = append(stack, links[i])
		}
	}
	return nil
}
