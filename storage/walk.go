package storage

import (
	"context"
	"fmt"

	"github.com/ipfs/go-cid"
	mh "github.com/multiformats/go-multihash"
)

// walk visits the DAG under root depth first, each distinct block once, in
// link order (the order of `ipfs dag export`). visit returns the children
// to descend into, or nil to stop there. An identity CID holds its block in
// the CID itself: it is not visited (nothing is stored for it), but its
// links are followed, since an inlined node (`ipfs add --inline`) can link
// to stored blocks. seen, if not nil, is shared between walks: a block one
// walk visited is not visited by the next (GC's mark phase walks every pin
// with one set).
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
		if _, ok := seen[key]; ok {
			continue
		}
		seen[key] = struct{}{}
		var links []cid.Cid
		var err error
		if isIdentity(c) {
			links, err = identityLinks(c)
		} else {
			links, err = visit(c)
		}
		if err != nil {
			return err
		}
		for i := len(links) - 1; i >= 0; i-- {
			stack = append(stack, links[i])
		}
	}
	return nil
}

// identityLinks returns the links of the block inlined in an identity CID.
func identityLinks(c cid.Cid) ([]cid.Cid, error) {
	d, err := mh.Decode(c.Hash())
	if err != nil {
		return nil, fmt.Errorf("identity CID %s: %w", c, err)
	}
	return Links(c, d.Digest)
}
