package wal

import (
	"encoding/binary"
	"errors"
	"fmt"
	"hash/crc32"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
)

// writeLog writes entries to a new log in dir, one Sync per batch of
// batch entries, and returns the paths of its segments.
func writeLog(t testing.TB, dir string, segBytes int64, batch int, es []Entry) []string {
	t.Helper()
	w, _ := mustOpen(t, Config{Dir: dir, SegmentBytes: segBytes})
	for i := 0; i < len(es); i += batch {
		appendSync(t, w, es[i:min(i+batch, len(es))]...)
	}
	mustClose(t, w)
	var paths []string
	for _, name := range segmentFiles(t, dir) {
		paths = append(paths, filepath.Join(dir, name))
	}
	return paths
}

// reopenWarns opens dir, checks it holds want and that it logged one
// warning naming segment, offset and dropped bytes (none if dropped < 0),
// then checks that appends go on after the repair.
func reopenWarns(t *testing.T, dir, segment string, offset, dropped int, want []Entry) {
	t.Helper()
	var logs logRecords
	w, got := mustOpen(t, Config{Dir: dir, Logger: logs.logger()})
	sameEntries(t, got, want)
	if dropped < 0 {
		if ws := logs.warnings(t); len(ws) != 0 {
			t.Fatalf("warnings on a clean log: %v", ws)
		}
	} else {
		logs.oneWarning(t, segment, offset, dropped)
	}
	more := testEntry(1000)
	appendSync(t, w, more)
	mustClose(t, w)
	var again logRecords
	w, got = mustOpen(t, Config{Dir: dir, Logger: again.logger()})
	mustClose(t, w)
	sameEntries(t, got, append(slices.Clone(want), more))
	if ws := again.warnings(t); len(ws) != 0 {
		t.Fatalf("warnings after the repair: %v", ws)
	}
}

// TestTornTailEveryLength cuts the last frame of a log at every length
// and checks that it is dropped, with a warning, and the rest kept.
func TestTornTailEveryLength(t *testing.T) {
	src := t.TempDir()
	es := testEntries(0, 6)
	seg := writeLog(t, src, 0, 2, es)[0]
	b := readBytes(t, seg)
	offs := frameOffsets(t, b)
	last := offs[len(offs)-1]
	for cut := last; cut < len(b); cut++ {
		dir := t.TempDir()
		path := filepath.Join(dir, filepath.Base(seg))
		writeBytes(t, path, b[:cut])
		dropped := cut - last
		if cut == last {
			dropped = -1 // a clean end
		}
		reopenWarns(t, dir, path, last, dropped, es[:len(es)-1])
	}
}

// TestTornHeader: a last segment with part of a header, or zeros, holds
// nothing and gets a fresh header.
func TestTornHeader(t *testing.T) {
	src := t.TempDir()
	es := testEntries(0, 6)
	paths := writeLog(t, src, 300, 2, es)
	if len(paths) < 2 {
		t.Fatalf("%d segments", len(paths))
	}
	lastSeg := readBytes(t, paths[len(paths)-1])
	kept := len(es) - len(frameOffsets(t, lastSeg))
	for _, tail := range [][]byte{nil, lastSeg[:1], lastSeg[:headerSize-1], make([]byte, headerSize), make([]byte, 4096)} {
		dir := t.TempDir()
		copyDir(t, src, dir)
		path := filepath.Join(dir, filepath.Base(paths[len(paths)-1]))
		writeBytes(t, path, tail)
		reopenWarns(t, dir, path, 0, len(tail), es[:kept])
	}
}

func TestZeroFilledTail(t *testing.T) {
	src := t.TempDir()
	es := testEntries(0, 6)
	seg := writeLog(t, src, 0, 3, es)[0]
	b := readBytes(t, seg)
	last := frameOffsets(t, b)[len(es)-1]
	cases := []struct {
		name    string
		data    []byte
		at      int
		dropped int
		want    []Entry
	}{
		{"zeros after the log", append(slices.Clone(b), make([]byte, 4096)...), len(b), 4096, es},
		{"last frame zeroed", append(slices.Clone(b[:last]), make([]byte, len(b)-last)...), last, len(b) - last, es[:5]},
		{"last frame zeroed and more", append(slices.Clone(b[:last]), make([]byte, 8192)...), last, 8192, es[:5]},
		{"a frame header of zeros", append(slices.Clone(b), make([]byte, frameHeaderSize)...), len(b), frameHeaderSize, es},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			dir := t.TempDir()
			path := filepath.Join(dir, filepath.Base(seg))
			writeBytes(t, path, tc.data)
			reopenWarns(t, dir, path, tc.at, tc.dropped, tc.want)
		})
	}
}

// fields names the byte offsets of a frame's fields, relative to it.
var fields = []struct {
	name string
	at   func(size int) int
}{
	{"length low", func(int) int { return 0 }},
	{"length high", func(int) int { return 3 }},
	{"checksum", func(int) int { return 5 }},
	{"height", func(int) int { return 8 }},
	{"payload start", func(int) int { return frameHeaderSize }},
	{"payload end", func(size int) int { return size - 1 }},
}

// TestFlippedBit flips bits in every field of a frame: in the middle of
// the log it is corruption, in the last frame a torn tail.
func TestFlippedBit(t *testing.T) {
	src := t.TempDir()
	es := testEntries(0, 8)
	seg := writeLog(t, src, 0, 3, es)[0]
	b := readBytes(t, seg)
	offs := append(frameOffsets(t, b), len(b))
	for _, frame := range []int{0, 3, 6, 7} {
		start, size := offs[frame], offs[frame+1]-offs[frame]
		for _, f := range fields {
			for _, bit := range []uint{0, 7} {
				name := fmt.Sprintf("frame %d %s bit %d", frame, f.name, bit)
				t.Run(name, func(t *testing.T) {
					dir := t.TempDir()
					path := filepath.Join(dir, filepath.Base(seg))
					data := slices.Clone(b)
					data[start+f.at(size)] ^= 1 << bit
					writeBytes(t, path, data)
					if frame == len(es)-1 {
						reopenWarns(t, dir, path, start, size, es[:frame])
						return
					}
					wantCorrupt(t, dir, path, start)
					if got := readBytes(t, path); !slices.Equal(got, data) {
						t.Fatal("Open changed a corrupt segment")
					}
				})
			}
		}
	}
}

// wantCorrupt checks that Open refuses dir with a CorruptError about
// segment at offset.
func wantCorrupt(t *testing.T, dir, segment string, offset int) error {
	t.Helper()
	w, es, err := Open(Config{Dir: dir})
	if err == nil {
		mustClose(t, w)
		t.Fatalf("opened a corrupt log, %d entries", len(es))
	}
	var ce *CorruptError
	if !errors.Is(err, ErrCorrupt) || !errors.As(err, &ce) {
		t.Fatalf("error %v is not a CorruptError", err)
	}
	if ce.Segment != segment || ce.Offset != int64(offset) {
		t.Fatalf("corruption reported in %s at %d, want %s at %d: %v", ce.Segment, ce.Offset, segment, offset, err)
	}
	return err
}

// TestCorruptSegments: damage anywhere but the end of the last segment,
// a gap in the numbers and bad headers stop Open.
func TestCorruptSegments(t *testing.T) {
	src := t.TempDir()
	es := testEntries(0, 24)
	paths := writeLog(t, src, 1000, 3, es)
	if len(paths) < 4 {
		t.Fatalf("%d segments", len(paths))
	}
	first := readBytes(t, paths[0])
	firstOffs := frameOffsets(t, first)
	lastFrame := firstOffs[len(firstOffs)-1]
	cases := []struct {
		name    string
		damage  func(dir string)
		segment int
		offset  int
	}{
		{"first segment cut short", func(dir string) {
			writeBytes(t, filepath.Join(dir, segmentName(0)), first[:len(first)-1])
		}, 0, lastFrame},
		{"last frame of the first segment flipped", func(dir string) {
			data := slices.Clone(first)
			data[len(data)-1] ^= 1
			writeBytes(t, filepath.Join(dir, segmentName(0)), data)
		}, 0, lastFrame},
		{"zeros after the first segment", func(dir string) {
			writeBytes(t, filepath.Join(dir, segmentName(0)), append(slices.Clone(first), 0, 0, 0))
		}, 0, len(first)},
		{"a segment missing", func(dir string) {
			if err := os.Remove(filepath.Join(dir, segmentName(1))); err != nil {
				t.Fatal(err)
			}
		}, 2, 0},
		{"bad magic", func(dir string) {
			data := slices.Clone(first)
			data[0] ^= 0x20
			writeBytes(t, filepath.Join(dir, segmentName(0)), data)
		}, 0, 0},
		{"header names another segment", func(dir string) {
			writeBytes(t, filepath.Join(dir, segmentName(0)), slices.Concat(appendHeader(nil, 7), first[headerSize:]))
		}, 0, 0},
		{"header checksum", func(dir string) {
			data := slices.Clone(first)
			data[headerSize-1] ^= 1
			writeBytes(t, filepath.Join(dir, segmentName(0)), data)
		}, 0, 0},
		{"last segment's header garbled", func(dir string) {
			last := len(paths) - 1
			data := readBytes(t, paths[last])
			data[2] ^= 1
			writeBytes(t, filepath.Join(dir, segmentName(uint64(last))), data)
		}, len(paths) - 1, 0},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			dir := t.TempDir()
			copyDir(t, src, dir)
			tc.damage(dir)
			wantCorrupt(t, dir, filepath.Join(dir, segmentName(uint64(tc.segment))), tc.offset)
		})
	}
	// Without its first segments (Release deletes them), the log opens.
	dir := t.TempDir()
	copyDir(t, src, dir)
	for _, seq := range []uint64{0, 1} {
		if err := os.Remove(filepath.Join(dir, segmentName(seq))); err != nil {
			t.Fatal(err)
		}
	}
	skipped := len(frameOffsets(t, first)) + len(frameOffsets(t, readBytes(t, paths[1])))
	reopenWarns(t, dir, "", 0, -1, es[skipped:])
}

// TestCorruptVersion: a segment of a later format is refused, not
// truncated, even as the last one.
func TestCorruptVersion(t *testing.T) {
	dir := t.TempDir()
	seg := writeLog(t, dir, 0, 1, testEntries(0, 2))[0]
	data := readBytes(t, seg)
	data[8] = 2
	binary.LittleEndian.PutUint32(data[20:], crc32.Checksum(data[:20], castagnoli))
	writeBytes(t, seg, data)
	err := wantCorrupt(t, dir, seg, 0)
	if !strings.Contains(err.Error(), "version 2") {
		t.Fatalf("error %q does not name the version", err)
	}
}
