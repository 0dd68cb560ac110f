package wal

import (
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"sync"

	"auditnet/internal/failpoint"
)

// DefaultSegmentBytes is the size past which a segment ends.
const DefaultSegmentBytes = 64 << 20

// Config configures a WAL.
type Config struct {
	// Dir holds the segments; Open creates it if it is absent.
	Dir string
	// SegmentBytes is the size a segment may reach before the next batch
	// goes to a new one (0: DefaultSegmentBytes). A batch larger than it
	// makes a larger segment.
	SegmentBytes int64
	// Logger receives the warnings of recovery (nil: discard).
	Logger *slog.Logger

	// open opens segment files (nil: the operating system's); tests
	// inject faults through it.
	open openFunc
}

func (c *Config) validate() error {
	if c.Dir == "" {
		return errors.New("wal: config needs a directory")
	}
	if c.SegmentBytes < 0 {
		return fmt.Errorf("wal: segment size %d is negative", c.SegmentBytes)
	}
	return nil
}

func (c *Config) withDefaults() {
	if c.SegmentBytes == 0 {
		c.SegmentBytes = DefaultSegmentBytes
	}
	if c.Logger == nil {
		c.Logger = slog.New(slog.DiscardHandler)
	}
	if c.open == nil {
		c.open = openOS
	}
}

// Entry is one record of the log. Height tags it for Release: the
// height the entry is about.
type Entry struct {
	Height uint64
	Data   []byte
}

// WAL is an open write-ahead log. Its methods are safe for concurrent
// use, though the node calls them from one loop.
type WAL struct {
	mu       sync.Mutex
	dir      string
	segBytes int64
	log      *slog.Logger
	open     openFunc

	// segs are the segments on disk, oldest first; the last is the one
	// f appends to.
	segs []segment
	f    file

	// buf holds the frames appended since the last Sync: bufN of them,
	// the highest Height among them bufMax.
	buf    []byte
	bufN   int
	bufMax uint64

	err    error // sticky: the first write or fsync error
	closed bool
}

// segment is what the WAL knows of a segment on disk.
type segment struct {
	seq       uint64
	size      int64
	frames    int
	maxHeight uint64
}

// maxRetainedBuf is the buffer capacity kept between batches; a larger
// one (a batch with big blocks) is given back after its Sync.
const maxRetainedBuf = 1 << 20

// Open opens the log in cfg.Dir, creating it if needed, and returns every
// entry it holds, in order. The entries' Data belong to the caller. A
// torn tail is truncated (and logged); other damage is a *CorruptError.
func Open(cfg Config) (*WAL, []Entry, error) {
	if err := cfg.validate(); err != nil {
		return nil, nil, err
	}
	cfg.withDefaults()
	w := &WAL{dir: cfg.Dir, segBytes: cfg.SegmentBytes, log: cfg.Logger, open: cfg.open}
	entries, err := w.recover()
	if err != nil {
		return nil, nil, fmt.Errorf("open wal %s: %w", cfg.Dir, err)
	}
	w.log.Info("wal opened", "dir", w.dir, "segments", len(w.segs), "entries", len(entries), "bytes", w.size())
	return w, entries, nil
}

// Append buffers entries; Sync makes them durable. It checks every
// entry's size before buffering any.
func (w *WAL) Append(es ...Entry) error {
	w.mu.Lock()
	defer w.mu.Unlock()
	if err := w.usable(); err != nil {
		return err
	}
	for i, e := range es {
		if len(e.Data) > MaxEntrySize {
			return fmt.Errorf("append to wal: entry %d of %d bytes, at most %d", i, len(e.Data), MaxEntrySize)
		}
	}
	for _, e := range es {
		w.buf = appendFrame(w.buf, e)
		w.bufN++
		w.bufMax = max(w.bufMax, e.Height)
	}
	return nil
}

// Sync writes the buffered entries and fsyncs them: when it returns nil,
// they survive a crash. An error is sticky.
func (w *WAL) Sync() error {
	w.mu.Lock()
	defer w.mu.Unlock()
	if err := w.usable(); err != nil {
		return err
	}
	if err := w.flush(); err != nil {
		w.err = err
		return err
	}
	return nil
}

// Release ends the current segment, when it holds an entry, and deletes
// the oldest segments whose entries all have Height ≤ height, up to the
// first that has one above it. Entries appended and not yet synced go to
// the new segment. An error is sticky.
func (w *WAL) Release(height uint64) error {
	w.mu.Lock()
	defer w.mu.Unlock()
	if err := w.usable(); err != nil {
		return err
	}
	if err := w.release(height); err != nil {
		w.err = err
		return err
	}
	return nil
}

// Close syncs what is buffered, unless an error came first, and closes
// the log. It returns the sticky error, if any.
func (w *WAL) Close() error {
	w.mu.Lock()
	defer w.mu.Unlock()
	if w.closed {
		return nil
	}
	w.closed = true
	err := w.err
	if err == nil {
		if err = w.flush(); err != nil {
			w.err = err
		}
	}
	if cerr := w.f.Close(); cerr != nil && err == nil {
		err = fmt.Errorf("close wal segment %s: %w", w.path(w.cur().seq), cerr)
	}
	return err
}

// Size returns the bytes of all segments on disk.
func (w *WAL) Size() int64 {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.size()
}

func (w *WAL) size() int64 {
	var n int64
	for _, s := range w.segs {
		n += s.size
	}
	return n
}

// Exists reports whether a WAL was ever created in dir: whether it holds
// a segment. Open never leaves a log without one, and Release keeps the
// current one.
func Exists(dir string) (bool, error) {
	des, err := os.ReadDir(dir)
	if errors.Is(err, os.ErrNotExist) {
		return false, nil
	}
	if err != nil {
		return false, fmt.Errorf("look for wal in %s: %w", dir, err)
	}
	for _, de := range des {
		if _, ok := parseSegmentName(de.Name()); ok {
			return true, nil
		}
	}
	return false, nil
}

func (w *WAL) usable() error {
	if w.closed {
		return ErrClosed
	}
	return w.err
}

func (w *WAL) cur() *segment { return &w.segs[len(w.segs)-1] }

func (w *WAL) path(seq uint64) string { return filepath.Join(w.dir, segmentName(seq)) }

// flush writes the buffer to the current segment, or to a new one if it
// would grow the current one past segBytes, and fsyncs it. The write is
// split in two halves so that a crash test can stop between them.
func (w *WAL) flush() error {
	if len(w.buf) == 0 {
		return nil
	}
	if c := w.cur(); c.frames > 0 && c.size+int64(len(w.buf)) > w.segBytes {
		if err := w.rotate(); err != nil {
			return err
		}
	}
	c := w.cur()
	path := w.path(c.seq)
	failpoint.Hit("wal/before-write")
	half := len(w.buf) / 2
	if err := writeAll(w.f, w.buf[:half]); err != nil {
		return fmt.Errorf("write wal segment %s at offset %d: %w", path, c.size, err)
	}
	failpoint.Hit("wal/mid-frame")
	if err := writeAll(w.f, w.buf[half:]); err != nil {
		return fmt.Errorf("write wal segment %s at offset %d: %w", path, c.size+int64(half), err)
	}
	failpoint.Hit("wal/after-write")
	if err := w.f.Sync(); err != nil {
		return fmt.Errorf("fsync wal segment %s: %w", path, err)
	}
	failpoint.Hit("wal/after-sync")
	c.size += int64(len(w.buf))
	c.frames += w.bufN
	c.maxHeight = max(c.maxHeight, w.bufMax)
	w.buf, w.bufN, w.bufMax = w.buf[:0], 0, 0
	if cap(w.buf) > maxRetainedBuf {
		w.buf = nil
	}
	return nil
}

// rotate ends the current segment, whose writes are all fsynced, and
// starts the next.
func (w *WAL) rotate() error {
	old := w.cur()
	seq := old.seq + 1
	f, err := w.createSegment(seq)
	if err != nil {
		return err
	}
	prev := w.f
	w.f = f
	w.segs = append(w.segs, segment{seq: seq, size: headerSize})
	if err := prev.Close(); err != nil {
		return fmt.Errorf("close wal segment %s: %w", w.path(seq-1), err)
	}
	w.log.Debug("wal segment started", "segment", w.path(seq))
	return nil
}

// createSegment writes segment seq's header to a temporary file, fsyncs
// it, renames it into place and fsyncs the directory. The file stays
// open for appending.
func (w *WAL) createSegment(seq uint64) (file, error) {
	path := w.path(seq)
	tmp := path + tmpExt
	f, err := w.open(tmp, os.O_WRONLY|os.O_CREATE|os.O_TRUNC|os.O_APPEND)
	if err != nil {
		return nil, fmt.Errorf("create wal segment %s: %w", tmp, err)
	}
	fail := func(err error) (file, error) {
		_ = f.Close()
		_ = os.Remove(tmp)
		return nil, err
	}
	if err := writeAll(f, appendHeader(nil, seq)); err != nil {
		return fail(fmt.Errorf("write wal segment header %s: %w", tmp, err))
	}
	if err := f.Sync(); err != nil {
		return fail(fmt.Errorf("fsync wal segment %s: %w", tmp, err))
	}
	failpoint.Hit("wal/segment-before-rename")
	if err := os.Rename(tmp, path); err != nil {
		return fail(fmt.Errorf("rename wal segment %s: %w", tmp, err))
	}
	if err := syncDir(w.dir); err != nil {
		_ = f.Close()
		return nil, err
	}
	return f, nil
}

func (w *WAL) release(height uint64) error {
	if w.cur().frames > 0 {
		if err := w.rotate(); err != nil {
			return err
		}
		failpoint.Hit("wal/release-after-new-segment")
	}
	removed := 0
	for len(w.segs) > 1 && w.segs[0].maxHeight <= height {
		failpoint.Hit("wal/release-before-delete")
		path := w.path(w.segs[0].seq)
		if err := os.Remove(path); err != nil {
			return fmt.Errorf("remove wal segment %s: %w", path, err)
		}
		w.segs = w.segs[1:]
		removed++
		// One directory fsync per removal: whatever a power cut keeps of
		// the removals is the oldest ones, so the numbers stay consecutive.
		failpoint.Hit("wal/release-after-delete")
		if err := syncDir(w.dir); err != nil {
			return err
		}
	}
	w.log.Debug("wal released", "height", height, "segments", removed)
	return nil
}
