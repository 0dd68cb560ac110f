package p2p

import (
	"context"
	"errors"
	"fmt"
	"slices"

	"github.com/ipfs/go-cid"
	mh "github.com/multiformats/go-multihash"

	"auditnet/storage"
	"auditnet/storage/dagpb"
	"auditnet/storage/unixfs"
)

// Limits on any DAG that crosses the wire. Our importer never builds a
// node with more than 174 file links, a HAMT shard holds at most 256, and a
// basic directory switches to a HAMT before ~7,100 entries; a DAG whose
// nodes break these is refused by both ends.
const (
	maxBlockSize = storage.MaxBlockSize
	maxLinks     = 8192
	maxDAGDepth  = 64
)

// ErrProtocol is wrapped by errors about a peer that broke the fetch
// protocol: a wrong, unexpected, oversized or excess block. Such a provider
// is dropped for the rest of the fetch.
var ErrProtocol = errors.New("p2p: protocol violation")

// ErrUnsupportedDAG is wrapped by errors about a verified block that no
// auditnet DAG holds (too many links, too deep, a foreign codec): every
// provider would send the same, so the fetch stops.
var ErrUnsupportedDAG = errors.New("p2p: unsupported DAG")

func protocolError(format string, args ...any) error {
	return fmt.Errorf("%w: %s", ErrProtocol, fmt.Sprintf(format, args...))
}

// target is a DAG to send or receive: its root, its link path from the
// request's root, and the cumulative size its parent declares (0 when it
// has no parent the requester holds).
type target struct {
	c     cid.Cid
	path  []int
	tsize uint64
}

// frame is a pending block of a traversal.
type frame struct {
	target
	depth int
	block []byte // already read (the node a path resolved to)
}

// traversal runs one scope of one request. The provider and the requester
// both run it, with different sources of blocks: the provider reads its
// store and writes each block to the stream, the requester reads the next
// block from the stream and accepts it only if it is the one this same
// code asks for next. Both therefore agree, block by block, on what comes
// next, and nothing outside the scope can be sent or accepted.
type traversal struct {
	get   func(ctx context.Context, c cid.Cid) ([]byte, error)
	visit func(c cid.Cid, block []byte) error
	depth int // Scope.Depth
	dedup bool
	seen  map[string]struct{}
	stack []frame
}

func newTraversal(s Scope, get func(context.Context, cid.Cid) ([]byte, error), visit func(cid.Cid, []byte) error) *traversal {
	t := &traversal{get: get, visit: visit, depth: s.Depth, dedup: s.Dedup}
	if t.dedup {
		t.seen = make(map[string]struct{})
	}
	return t
}

// resolvePath resolves a UnixFS path from root through get (so the
// resolving blocks go over the wire) and queues the node it names.
func (t *traversal) resolvePath(ctx context.Context, root cid.Cid, path string) error {
	n, indices, err := unixfs.ResolveLinks(ctx, getterFunc(t.get), root, path)
	if err != nil {
		return err
	}
	t.stack = append(t.stack, frame{target: target{c: n.Cid, path: indices}, block: n.Block()})
	return nil
}

// push queues targets, to be sent in the order given.
func (t *traversal) push(ts []target) {
	for i := len(ts) - 1; i >= 0; i-- {
		t.stack = append(t.stack, frame{target: ts[i]})
	}
}

// run sends or receives every queued DAG, depth first in link order.
func (t *traversal) run(ctx context.Context) error {
	for len(t.stack) > 0 {
		if err := ctx.Err(); err != nil {
			return err
		}
		f := t.stack[len(t.stack)-1]
		if t.dedup {
			if _, ok := t.seen[f.c.KeyString()]; ok {
				t.stack = t.stack[:len(t.stack)-1]
				continue
			}
		}
		block := f.block
		if block == nil {
			var err error
			if block, err = t.get(ctx, f.c); err != nil {
				return err
			}
			// Keep it: if what follows fails, the block is still to do.
			t.stack[len(t.stack)-1].block = block
		}
		links, tsizes, err := blockLinks(f.c, block)
		if err != nil {
			return err
		}
		if len(links) > 0 && (t.depth == 0 || f.depth+1 < t.depth) && f.depth+1 > maxDAGDepth {
			return fmt.Errorf("%w: DAG deeper than %d levels below %s", ErrUnsupportedDAG, maxDAGDepth, f.c)
		}
		if err := t.visit(f.c, block); err != nil {
			return err
		}
		t.stack = t.stack[:len(t.stack)-1]
		if t.dedup {
			t.seen[f.c.KeyString()] = struct{}{}
		}
		if len(links) == 0 || (t.depth > 0 && f.depth+1 >= t.depth) {
			continue
		}
		for i := len(links) - 1; i >= 0; i-- {
			path := append(slices.Clip(f.path), i)
			t.stack = append(t.stack, frame{target: target{c: links[i], path: path, tsize: tsizes[i]}, depth: f.depth + 1})
		}
	}
	return nil
}

// remaining returns the DAGs not yet (completely) transferred, in order,
// for another provider to send.
func (t *traversal) remaining() []target {
	out := make([]target, 0, len(t.stack))
	for i := len(t.stack) - 1; i >= 0; i-- {
		if t.dedup {
			if _, ok := t.seen[t.stack[i].c.KeyString()]; ok {
				continue
			}
		}
		out = append(out, t.stack[i].target)
	}
	return out
}

// blockLinks returns a block's links and their declared cumulative sizes,
// refusing blocks no auditnet DAG holds.
func blockLinks(c cid.Cid, block []byte) ([]cid.Cid, []uint64, error) {
	if len(block) > maxBlockSize {
		return nil, nil, fmt.Errorf("%w: block %s of %d bytes", ErrUnsupportedDAG, c, len(block))
	}
	if c.Type() != cid.DagProtobuf {
		if c.Type() == cid.Raw {
			return nil, nil, nil
		}
		return nil, nil, fmt.Errorf("%w: block %s has codec 0x%x, not raw or dag-pb", ErrUnsupportedDAG, c, c.Type())
	}
	n, err := dagpb.Decode(block)
	if err != nil {
		return nil, nil, fmt.Errorf("%w: decode %s: %v", ErrUnsupportedDAG, c, err)
	}
	if len(n.Links) > maxLinks {
		return nil, nil, fmt.Errorf("%w: node %s has %d links, at most %d", ErrUnsupportedDAG, c, len(n.Links), maxLinks)
	}
	links := make([]cid.Cid, len(n.Links))
	sizes := make([]uint64, len(n.Links))
	for i, l := range n.Links {
		links[i], sizes[i] = l.Hash, l.Tsize
	}
	return links, sizes, nil
}

// cumulativeSize is what a node declares its DAG to weigh: its own bytes
// and its links' sizes.
func cumulativeSize(c cid.Cid, block []byte) (uint64, error) {
	_, sizes, err := blockLinks(c, block)
	if err != nil {
		return 0, err
	}
	total := uint64(len(block))
	for _, s := range sizes {
		total += s
		if total < s {
			return 0, fmt.Errorf("%w: node %s declares sizes that overflow", ErrUnsupportedDAG, c)
		}
	}
	return total, nil
}

// checkBlock checks that block hashes to c.
func checkBlock(c cid.Cid, block []byte) error {
	if err := storage.VerifyBlock(c, block); err != nil {
		return protocolError("block %s does not hash to its CID", c)
	}
	return nil
}

// identityBlock returns the bytes an identity CID carries; ok is false for
// any other CID. Such blocks never cross the wire: both ends read them from
// the CID.
func identityBlock(c cid.Cid) ([]byte, bool) {
	if c.Prefix().MhType != mh.IDENTITY {
		return nil, false
	}
	dh, err := mh.Decode(c.Hash())
	if err != nil {
		return nil, false
	}
	return dh.Digest, true
}

type getterFunc func(ctx context.Context, c cid.Cid) ([]byte, error)

func (f getterFunc) Get(ctx context.Context, c cid.Cid) ([]byte, error) { return f(ctx, c) }

var _ unixfs.Getter = getterFunc(nil)
