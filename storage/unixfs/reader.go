package unixfs

import (
	"context"
	"errors"
	"fmt"
	"io"
	"runtime"
	"sync"

	"github.com/ipfs/go-cid"
	"golang.org/x/sync/errgroup"
)

// maxFileDepth bounds how deep a file DAG may be (kubo's balanced layout
// reaches depth 5 only past 10^15 bytes).
const maxFileDepth = 32

// FileReader streams a UnixFS file's bytes in order while fetching its
// leaves ahead on several goroutines. Every block comes from a Getter that
// has checked it against its CID; the reader also checks that each node's
// declared sizes add up, so a malformed DAG fails loudly instead of giving
// short or padded output. Close must be called to stop the goroutines.
type FileReader struct {
	size    uint64
	cancel  context.CancelFunc
	g       *errgroup.Group
	ordered chan *readTask
	cur     []byte
	curTask *readTask // owner of cur's buffer, recycled once cur is used
	err     error
	closed  sync.Once
}

// bufferGetter is a Getter that can read a block into a caller's buffer
// (storage.Store can), so the reader recycles its block buffers instead of
// making the garbage collector free 256 KiB per block.
type bufferGetter interface {
	GetInto(ctx context.Context, c cid.Cid, buf []byte) ([]byte, error)
}

// leafBuffers recycles leaf-sized buffers between readers.
var leafBuffers = sync.Pool{New: func() any {
	b := make([]byte, DefaultChunkSize)
	return &b
}}

// readTask is one piece of file content, in file order: a leaf to fetch or
// bytes already known (the data inside a dag-pb file node).
type readTask struct {
	c      cid.Cid
	want   uint64 // the size the parent declared for it
	data   []byte
	err    error
	done   chan struct{}
	fetch  bool
	pooled *[]byte // the buffer data lives in, if it came from leafBuffers
}

// recycle returns the task's buffer to the pool once its data is used.
func (t *readTask) recycle() {
	if t != nil && t.pooled != nil {
		leafBuffers.Put(t.pooled)
		t.pooled, t.data = nil, nil
	}
}

// NewFileReader opens the file node n for reading. workers is how many
// leaves are fetched at once (0: GOMAXPROCS).
func NewFileReader(ctx context.Context, g Getter, n *Node, workers int) (*FileReader, error) {
	if n.Kind != KindFile {
		return nil, fmt.Errorf("%w: %s is a %s, not a file", ErrNotUnixFS, n.Cid, n.Kind)
	}
	if workers <= 0 {
		workers = runtime.GOMAXPROCS(0)
	}
	ctx, cancel := context.WithCancel(ctx)
	eg, ctx := errgroup.WithContext(ctx)
	r := &FileReader{size: n.Size, cancel: cancel, g: eg, ordered: make(chan *readTask, 4*workers)}
	work := make(chan *readTask, 4*workers)
	eg.Go(func() error {
		defer close(r.ordered)
		defer close(work)
		w := &fileWalker{ctx: ctx, g: g, ordered: r.ordered, work: work}
		return w.walk(n, n.Size, 0)
	})
	bg, canRecycle := g.(bufferGetter)
	for range workers {
		eg.Go(func() error {
			for t := range work {
				if canRecycle && t.want <= DefaultChunkSize {
					buf := leafBuffers.Get().(*[]byte)
					t.data, t.err = bg.GetInto(ctx, t.c, (*buf)[:cap(*buf)])
					if t.err == nil && len(t.data) > 0 && &t.data[0] == &(*buf)[:1][0] {
						t.pooled = buf
					} else {
						leafBuffers.Put(buf)
					}
				} else {
					t.data, t.err = g.Get(ctx, t.c)
				}
				close(t.done)
			}
			return nil
		})
	}
	return r, nil
}

// Size is the file size the root declares.
func (r *FileReader) Size() uint64 { return r.size }

type fileWalker struct {
	ctx     context.Context
	g       Getter
	ordered chan<- *readTask
	work    chan<- *readTask
}

func (w *fileWalker) emit(t *readTask) error {
	if t.fetch {
		select {
		case w.work <- t:
		case <-w.ctx.Done():
			return w.ctx.Err()
		}
	}
	select {
	case w.ordered <- t:
		return nil
	case <-w.ctx.Done():
		return w.ctx.Err()
	}
}

// walk emits the content of node n, whose parent declared want bytes.
func (w *fileWalker) walk(n *Node, want uint64, depth int) error {
	if depth > maxFileDepth {
		return fmt.Errorf("%w: file DAG deeper than %d at %s", ErrNotUnixFS, maxFileDepth, n.Cid)
	}
	if n.Kind != KindFile {
		return fmt.Errorf("%w: %s inside a file is a %s", ErrNotUnixFS, n.Cid, n.Kind)
	}
	if !n.isPB {
		return w.emit(&readTask{data: n.raw, want: want, done: closedChan})
	}
	d := n.data
	if len(d.BlockSizes) != len(n.pb.Links) {
		return fmt.Errorf("%w: file node %s has %d links and %d block sizes", ErrNotUnixFS, n.Cid, len(n.pb.Links), len(d.BlockSizes))
	}
	total := uint64(len(d.Data))
	for _, s := range d.BlockSizes {
		total += s
		if total < s {
			return fmt.Errorf("%w: file node %s sizes overflow", ErrNotUnixFS, n.Cid)
		}
	}
	if total != want || (d.HasFileSize && d.FileSize != total) {
		return fmt.Errorf("%w: file node %s holds %d bytes, %d declared", ErrNotUnixFS, n.Cid, total, want)
	}
	if len(d.Data) > 0 {
		if err := w.emit(&readTask{data: d.Data, want: uint64(len(d.Data)), done: closedChan}); err != nil {
			return err
		}
	}
	for i, l := range n.pb.Links {
		if l.Hash.Type() == cid.Raw {
			if err := w.emit(&readTask{c: l.Hash, want: d.BlockSizes[i], done: make(chan struct{}), fetch: true}); err != nil {
				return err
			}
			continue
		}
		child, err := Load(w.ctx, w.g, l.Hash)
		if err != nil {
			return err
		}
		if err := w.walk(child, d.BlockSizes[i], depth+1); err != nil {
			return err
		}
	}
	return nil
}

var closedChan = func() chan struct{} { c := make(chan struct{}); close(c); return c }()

// next returns the next piece of content, or io.EOF, recycling the
// buffer of the previous one.
func (r *FileReader) next() ([]byte, error) {
	r.curTask.recycle()
	r.curTask = nil
	t, ok := <-r.ordered
	if !ok {
		if err := r.g.Wait(); err != nil {
			return nil, err
		}
		return nil, io.EOF
	}
	<-t.done
	r.curTask = t
	if t.err != nil {
		return nil, t.err
	}
	if uint64(len(t.data)) != t.want {
		return nil, fmt.Errorf("%w: block %s holds %d bytes, its parent declared %d", ErrNotUnixFS, t.c, len(t.data), t.want)
	}
	return t.data, nil
}

// Read implements io.Reader.
func (r *FileReader) Read(p []byte) (int, error) {
	for len(r.cur) == 0 {
		if r.err != nil {
			return 0, r.err
		}
		r.cur, r.err = r.next()
	}
	n := copy(p, r.cur)
	r.cur = r.cur[n:]
	return n, nil
}

// WriteTo implements io.WriterTo, writing each block without copying.
func (r *FileReader) WriteTo(w io.Writer) (int64, error) {
	var total int64
	for {
		if len(r.cur) == 0 {
			if r.err != nil {
				if errors.Is(r.err, io.EOF) {
					return total, nil
				}
				return total, r.err
			}
			r.cur, r.err = r.next()
			continue
		}
		n, err := w.Write(r.cur)
		total += int64(n)
		r.cur = r.cur[n:]
		if err != nil {
			return total, err
		}
	}
}

// Close stops the reader's goroutines and waits for them.
func (r *FileReader) Close() error {
	r.closed.Do(func() {
		r.cancel()
		r.curTask.recycle()
		r.cur = nil
		for t := range r.ordered {
			<-t.done
			t.recycle()
		}
		_ = r.g.Wait()
	})
	return nil
}
