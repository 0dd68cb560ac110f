package wal

import (
	"fmt"
	"os"
	"path/filepath"
	"slices"
)

// recover reads the segments in w.dir, repairs a torn tail and leaves the
// last segment open for appending; with no segment it creates the first.
func (w *WAL) recover() ([]Entry, error) {
	if err := ensureDir(w.dir); err != nil {
		return nil, fmt.Errorf("create directory: %w", err)
	}
	seqs, err := w.listSegments()
	if err != nil {
		return nil, err
	}
	if len(seqs) == 0 {
		f, err := w.createSegment(0)
		if err != nil {
			return nil, err
		}
		w.f, w.segs = f, []segment{{seq: 0, size: headerSize}}
		return nil, nil
	}
	var entries []Entry
	for i, seq := range seqs {
		es, err := w.readSegment(seq, i == len(seqs)-1)
		if err != nil {
			if w.f != nil {
				_ = w.f.Close()
			}
			return nil, err
		}
		entries = append(entries, es...)
	}
	return entries, nil
}

// listSegments returns the segment numbers in w.dir, in order, after
// removing the temporary files of segments whose creation a crash
// interrupted. The numbers must be consecutive.
func (w *WAL) listSegments() ([]uint64, error) {
	des, err := os.ReadDir(w.dir)
	if err != nil {
		return nil, fmt.Errorf("list segments: %w", err)
	}
	var seqs []uint64
	removed := false
	for _, de := range des {
		name := de.Name()
		if isTempName(name) {
			if err := os.Remove(filepath.Join(w.dir, name)); err != nil {
				return nil, fmt.Errorf("remove unfinished segment: %w", err)
			}
			removed = true
			continue
		}
		seq, ok := parseSegmentName(name)
		if !ok {
			continue
		}
		if !de.Type().IsRegular() {
			return nil, &CorruptError{Segment: w.path(seq), Reason: "not a regular file"}
		}
		seqs = append(seqs, seq)
	}
	if removed {
		if err := syncDir(w.dir); err != nil {
			return nil, err
		}
	}
	slices.Sort(seqs)
	for i := 1; i < len(seqs); i++ {
		if prev := seqs[i-1]; seqs[i] != prev+1 {
			return nil, &CorruptError{Segment: w.path(seqs[i]), Reason: fmt.Sprintf("segments %d to %d are missing before it", prev+1, seqs[i]-1)}
		}
	}
	return seqs, nil
}

// readSegment reads segment seq and appends it to w.segs. The last
// segment is opened for appending, after its torn tail, if any, is cut
// off.
func (w *WAL) readSegment(seq uint64, last bool) ([]Entry, error) {
	path := w.path(seq)
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("read segment: %w", err)
	}
	if err := checkHeader(b, seq); err != nil {
		if last && tornHeader(b, seq) {
			return nil, w.resetLast(seq, len(b))
		}
		return nil, &CorruptError{Segment: path, Reason: "bad header: " + err.Error()}
	}
	es, end, bad := scanFrames(b)
	if bad != "" {
		if !last {
			return nil, &CorruptError{Segment: path, Offset: int64(end), Reason: bad + " in a segment that is not the last"}
		}
		if p, found, exhausted := validFrameAfter(b, end+1); found {
			return nil, &CorruptError{Segment: path, Offset: int64(end), Reason: fmt.Sprintf("%s, and a valid frame follows at offset %d", bad, p)}
		} else if exhausted {
			return nil, &CorruptError{Segment: path, Offset: int64(end), Reason: fmt.Sprintf("%s, and the search for a valid frame after it gave up at offset %d", bad, p)}
		}
	}
	s := segment{seq: seq, size: int64(end), frames: len(es)}
	for _, e := range es {
		s.maxHeight = max(s.maxHeight, e.Height)
	}
	w.segs = append(w.segs, s)
	if !last {
		return es, nil
	}
	f, err := w.open(path, os.O_WRONLY|os.O_APPEND)
	if err != nil {
		return nil, fmt.Errorf("open segment for appending: %w", err)
	}
	w.f = f
	if bad == "" {
		return es, nil
	}
	if err := f.Truncate(int64(end)); err != nil {
		return nil, fmt.Errorf("truncate torn tail of %s at offset %d: %w", path, end, err)
	}
	if err := f.Sync(); err != nil {
		return nil, fmt.Errorf("fsync %s after truncating its torn tail: %w", path, err)
	}
	w.log.Warn("wal torn tail truncated", "segment", path, "offset", end, "dropped", len(b)-end, "reason", bad)
	return es, nil
}

// resetLast rewrites the last segment, whose header a crash left
// incomplete (size bytes of it), with a fresh header.
func (w *WAL) resetLast(seq uint64, size int) error {
	path := w.path(seq)
	f, err := w.open(path, os.O_WRONLY|os.O_APPEND)
	if err != nil {
		return fmt.Errorf("open segment for appending: %w", err)
	}
	w.f = f
	if err := f.Truncate(0); err != nil {
		return fmt.Errorf("truncate torn header of %s: %w", path, err)
	}
	if err := writeAll(f, appendHeader(nil, seq)); err != nil {
		return fmt.Errorf("rewrite header of %s: %w", path, err)
	}
	if err := f.Sync(); err != nil {
		return fmt.Errorf("fsync %s after rewriting its header: %w", path, err)
	}
	w.segs = append(w.segs, segment{seq: seq, size: headerSize})
	w.log.Warn("wal torn segment header rewritten", "segment", path, "offset", 0, "dropped", size)
	return nil
}
