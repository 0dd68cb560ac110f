package unixfs

import (
	"context"
	"crypto/sha256"
	"errors"
	"fmt"
	"io"
	"runtime"
	"sync"

	"github.com/ipfs/go-cid"
	mh "github.com/multiformats/go-multihash"
	"golang.org/x/sync/errgroup"

	"auditnet/storage/dagpb"
)

// Defaults of kubo's `ipfs add --cid-version=1` (import profile "default").
const (
	DefaultChunkSize     = 256 << 10
	DefaultMaxLinks      = 174
	DefaultHAMTThreshold = 256 << 10
	DefaultHAMTFanout    = 256
)

// Params shape the DAG an import builds. A zero field means kubo's default,
// so the zero Params give the CIDs of `ipfs add --cid-version=1`.
type Params struct {
	// ChunkSize is the size of each leaf; the last one may be shorter.
	ChunkSize int
	// MaxLinks is the most children a file node has.
	MaxLinks int
	// HAMTThreshold: a directory whose link names and CIDs add up to more
	// than this many bytes is stored as a HAMT-sharded directory.
	HAMTThreshold int
	// HAMTFanout is the width of each HAMT shard (a power of two, 8 to 1024).
	HAMTFanout int
	// Workers is how many goroutines hash leaves (default GOMAXPROCS).
	Workers int
}

func (p Params) withDefaults() (Params, error) {
	if p.ChunkSize == 0 {
		p.ChunkSize = DefaultChunkSize
	}
	if p.MaxLinks == 0 {
		p.MaxLinks = DefaultMaxLinks
	}
	if p.HAMTThreshold == 0 {
		p.HAMTThreshold = DefaultHAMTThreshold
	}
	if p.HAMTFanout == 0 {
		p.HAMTFanout = DefaultHAMTFanout
	}
	if p.Workers == 0 {
		p.Workers = runtime.GOMAXPROCS(0)
	}
	switch {
	case p.ChunkSize < 1 || p.ChunkSize > MaxBlockSize:
		return p, fmt.Errorf("unixfs: chunk size %d out of range 1..%d", p.ChunkSize, MaxBlockSize)
	case p.MaxLinks < 2:
		return p, fmt.Errorf("unixfs: max links %d below 2", p.MaxLinks)
	case p.HAMTFanout < 8 || p.HAMTFanout > 1024 || p.HAMTFanout&(p.HAMTFanout-1) != 0:
		return p, fmt.Errorf("unixfs: HAMT fanout %d is not a power of two in 8..1024", p.HAMTFanout)
	case p.Workers < 1:
		return p, fmt.Errorf("unixfs: %d workers", p.Workers)
	}
	return p, nil
}

// MaxBlockSize is the largest block auditnet writes or accepts (2 MiB, the
// limit IPFS implementations share).
const MaxBlockSize = 2 << 20

// BlockSink receives the blocks an import makes, children before parents.
// Put must not keep data after it returns: the importer reuses the buffer.
// The CID was computed by the importer from data.
type BlockSink interface {
	Put(c cid.Cid, data []byte) error
}

// Entry is the root of an imported DAG.
type Entry struct {
	Cid cid.Cid
	// Size is the number of content bytes (the file size; 0 for a
	// directory).
	Size uint64
	// Tsize is the size of the whole serialised DAG, as written into the
	// parent's link.
	Tsize uint64
}

// Importer turns files and directories into UnixFS DAGs.
type Importer struct {
	p        Params
	sink     BlockSink
	progress func(n int)
	chunks   sync.Pool // of *[]byte with cap p.ChunkSize
}

// NewImporter returns an importer that sends its blocks to sink; a nil sink
// only computes CIDs (`add --only-hash`). progress, if not nil, is called
// with the number of file bytes each time a chunk is done.
func NewImporter(p Params, sink BlockSink, progress func(n int)) (*Importer, error) {
	p, err := p.withDefaults()
	if err != nil {
		return nil, err
	}
	return &Importer{p: p, sink: sink, progress: progress}, nil
}

func (im *Importer) put(c cid.Cid, data []byte) error {
	if im.sink == nil {
		return nil
	}
	if err := im.sink.Put(c, data); err != nil {
		return fmt.Errorf("put %s: %w", c, err)
	}
	return nil
}

// File imports the bytes of r as a UnixFS file with raw leaves and the
// balanced layout. Memory use is bounded by a few chunks per worker,
// whatever the size of r.
func (im *Importer) File(ctx context.Context, r io.Reader) (Entry, error) {
	first := im.getChunk()
	defer im.putChunk(first)
	n, err := io.ReadFull(r, first)
	switch {
	case errors.Is(err, io.EOF) || errors.Is(err, io.ErrUnexpectedEOF):
		// A file of at most one chunk is a single raw leaf.
		leaf, err := im.leaf(first[:n])
		if err != nil {
			return Entry{}, err
		}
		return Entry{Cid: leaf.c, Size: leaf.size, Tsize: leaf.tsize}, nil
	case err != nil:
		return Entry{}, fmt.Errorf("read: %w", err)
	}
	b := fileBuilder{im: im}
	if err := im.pipeline(ctx, r, first, &b); err != nil {
		return Entry{}, err
	}
	root, err := b.finish()
	if err != nil {
		return Entry{}, err
	}
	return Entry{Cid: root.c, Size: root.size, Tsize: root.tsize}, nil
}

func (im *Importer) getChunk() []byte {
	if p, ok := im.chunks.Get().(*[]byte); ok {
		return *p
	}
	return make([]byte, im.p.ChunkSize)
}

func (im *Importer) putChunk(b []byte) {
	b = b[:cap(b)]
	im.chunks.Put(&b)
}

// leaf hashes and stores one raw leaf.
func (im *Importer) leaf(data []byte) (child, error) {
	c := rawCid(data)
	if err := im.put(c, data); err != nil {
		return child{}, err
	}
	if im.progress != nil {
		im.progress(len(data))
	}
	return child{c: c, size: uint64(len(data)), tsize: uint64(len(data))}, nil
}

type leafJob struct {
	buf  []byte
	c    cid.Cid
	done chan struct{}
}

// pipeline reads chunks on one goroutine, hashes them on im.p.Workers
// goroutines and hands them, in order, to the builder on the calling
// goroutine, which stores them. first is the chunk already read.
func (im *Importer) pipeline(ctx context.Context, r io.Reader, first []byte, b *fileBuilder) error {
	depth := 4 * im.p.Workers
	free := make(chan []byte, depth)
	free <- first // taken first, so the reader knows it holds data
	for range depth - 1 {
		buf := im.getChunk()
		defer im.putChunk(buf)
		free <- buf
	}
	work := make(chan *leafJob, depth)
	ordered := make(chan *leafJob, depth)

	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	g, gctx := errgroup.WithContext(ctx)
	g.Go(func() error {
		defer close(work)
		defer close(ordered)
		firstChunk := true
		for {
			var buf []byte
			select {
			case buf = <-free:
			case <-gctx.Done():
				return gctx.Err()
			}
			var n int
			var err error
			if firstChunk {
				n, firstChunk = len(buf), false
			} else {
				n, err = io.ReadFull(r, buf)
			}
			done := errors.Is(err, io.EOF) || errors.Is(err, io.ErrUnexpectedEOF)
			if err != nil && !done {
				return fmt.Errorf("read: %w", err)
			}
			if n > 0 {
				job := &leafJob{buf: buf[:n], done: make(chan struct{})}
				select {
				case work <- job:
				case <-gctx.Done():
					return gctx.Err()
				}
				select {
				case ordered <- job:
				case <-gctx.Done():
					return gctx.Err()
				}
			}
			if done {
				return nil
			}
		}
	})
	for range im.p.Workers {
		g.Go(func() error {
			for job := range work {
				job.c = rawCid(job.buf)
				close(job.done)
			}
			return nil
		})
	}
	consumeErr := func() error {
		for job := range ordered {
			select {
			case <-job.done:
			case <-gctx.Done():
				return gctx.Err()
			}
			if err := im.put(job.c, job.buf); err != nil {
				return err
			}
			if err := b.add(child{c: job.c, size: uint64(len(job.buf)), tsize: uint64(len(job.buf))}); err != nil {
				return err
			}
			if im.progress != nil {
				im.progress(len(job.buf))
			}
			free <- job.buf[:cap(job.buf)]
		}
		return nil
	}()
	if consumeErr != nil {
		cancel()
	}
	if err := g.Wait(); err != nil && consumeErr == nil {
		return err
	}
	return consumeErr
}

// child is a node as its parent sees it.
type child struct {
	c     cid.Cid
	size  uint64 // file bytes below it
	tsize uint64 // serialised DAG bytes below and including it
}

// fileBuilder builds kubo's balanced layout bottom-up as leaves stream in:
// levels[d] holds the children gathered so far for the node being filled at
// depth d+1. A node at depth d has up to MaxLinks children of depth d-1, full
// from the left; the root is the lowest node covering every leaf.
type fileBuilder struct {
	im     *Importer
	levels [][]child
}

func (b *fileBuilder) add(c child) error {
	return b.push(0, c)
}

func (b *fileBuilder) push(level int, c child) error {
	if level == len(b.levels) {
		b.levels = append(b.levels, make([]child, 0, b.im.p.MaxLinks))
	}
	b.levels[level] = append(b.levels[level], c)
	if len(b.levels[level]) < b.im.p.MaxLinks {
		return nil
	}
	node, err := b.im.fileNode(b.levels[level])
	if err != nil {
		return err
	}
	b.levels[level] = b.levels[level][:0]
	return b.push(level+1, node)
}

// finish closes the partly filled nodes from the bottom up and returns the
// root.
func (b *fileBuilder) finish() (child, error) {
	for level := 0; level < len(b.levels); level++ {
		top := len(b.levels) - 1
		for top > level && len(b.levels[top]) == 0 {
			top--
		}
		pending := b.levels[level]
		switch {
		case len(pending) == 0:
			continue
		case level == top && len(pending) == 1:
			return pending[0], nil
		}
		node, err := b.im.fileNode(pending)
		if err != nil {
			return child{}, err
		}
		b.levels[level] = b.levels[level][:0]
		if level+1 == len(b.levels) {
			b.levels = append(b.levels, nil)
		}
		b.levels[level+1] = append(b.levels[level+1], node)
	}
	return child{}, errors.New("unixfs: file without leaves")
}

// fileNode makes the dag-pb node of a file over children.
func (im *Importer) fileNode(children []child) (child, error) {
	links := make([]dagpb.Link, len(children))
	sizes := make([]uint64, len(children))
	var size, tsize uint64
	for i, ch := range children {
		links[i] = dagpb.NewLink(ch.c, "", ch.tsize)
		sizes[i] = ch.size
		size += ch.size
		tsize += ch.tsize
	}
	data := Data{Type: TypeFile, FileSize: size, HasFileSize: true, BlockSizes: sizes}
	node := dagpb.Node{Links: links, Data: data.Marshal()}
	block := node.Marshal()
	c := dagpbCid(block)
	if err := im.put(c, block); err != nil {
		return child{}, err
	}
	return child{c: c, size: size, tsize: tsize + uint64(len(block))}, nil
}

// rawCid is the CIDv1 of a raw block (sha2-256).
func rawCid(data []byte) cid.Cid {
	return cid.NewCidV1(cid.Raw, sha256Multihash(data))
}

// dagpbCid is the CIDv1 of a dag-pb block (sha2-256).
func dagpbCid(block []byte) cid.Cid {
	return cid.NewCidV1(cid.DagProtobuf, sha256Multihash(block))
}

func sha256Multihash(data []byte) mh.Multihash {
	sum := sha256.Sum256(data)
	buf := make([]byte, 2+sha256.Size)
	buf[0], buf[1] = mh.SHA2_256, sha256.Size
	copy(buf[2:], sum[:])
	return buf
}
