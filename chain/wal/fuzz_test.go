package wal

import (
	"bytes"
	"errors"
	"os"
	"path/filepath"
	"slices"
	"testing"
)

// FuzzDecodeRecord: what DecodeRecord accepts encodes back to the same
// bytes and height.
func FuzzDecodeRecord(f *testing.F) {
	for _, r := range sampleRecords(f) {
		e, err := EncodeRecord(r)
		if err != nil {
			f.Fatal(err)
		}
		f.Add(e.Height, e.Data)
	}
	f.Fuzz(func(t *testing.T, height uint64, data []byte) {
		r, err := DecodeRecord(Entry{Height: height, Data: data})
		if err != nil {
			if !errors.Is(err, ErrBadRecord) {
				t.Fatalf("error %v does not wrap ErrBadRecord", err)
			}
			return
		}
		e, err := EncodeRecord(r)
		if err != nil {
			t.Fatalf("accepted a record it cannot encode: %v", err)
		}
		if e.Height != height || !bytes.Equal(e.Data, data) {
			t.Fatalf("accepted %d %x, which encodes to %d %x", height, data, e.Height, e.Data)
		}
	})
}

// segmentBytes is a segment seq holding es.
func segmentBytes(seq uint64, es ...Entry) []byte {
	b := appendHeader(nil, seq)
	for _, e := range es {
		b = appendFrame(b, e)
	}
	return b
}

// FuzzOpen writes arbitrary bytes as a segment, alone or followed by a
// valid one, and opens the log: Open never panics; it refuses with a
// CorruptError, or it returns entries, cuts the segment to a prefix of
// the bytes (or rewrites a torn header) and the log then reopens to the
// same entries and takes appends.
func FuzzOpen(f *testing.F) {
	valid := segmentBytes(0, testEntries(0, 3)...)
	f.Add(valid, false)
	f.Add(valid, true)
	f.Add(valid[:len(valid)-5], false)
	f.Add(valid[:len(valid)-5], true)
	f.Add(append(slices.Clone(valid), make([]byte, 64)...), false)
	f.Add(valid[:headerSize], false)
	f.Add(valid[:headerSize-3], false)
	f.Add([]byte{}, false)
	f.Add(make([]byte, 100), true)
	flipped := slices.Clone(valid)
	flipped[headerSize+20] ^= 4
	f.Add(flipped, false)
	root := f.TempDir()
	f.Fuzz(func(t *testing.T, seg []byte, followed bool) {
		dir, err := os.MkdirTemp(root, "")
		if err != nil {
			t.Fatal(err)
		}
		defer os.RemoveAll(dir)
		path := filepath.Join(dir, segmentName(0))
		writeBytes(t, path, seg)
		var after []Entry
		if followed {
			after = testEntries(100, 102)
			writeBytes(t, filepath.Join(dir, segmentName(1)), segmentBytes(1, after...))
		}
		w, es, err := Open(Config{Dir: dir})
		if err != nil {
			if !errors.Is(err, ErrCorrupt) {
				t.Fatalf("Open failed with %v, not a CorruptError", err)
			}
			return
		}
		if followed && (len(es) < len(after) || !slices.EqualFunc(es[len(es)-len(after):], after, entryEqual)) {
			t.Fatal("the valid last segment is not all there")
		}
		if got := readBytes(t, path); !bytes.HasPrefix(seg, got) && !bytes.Equal(got, appendHeader(nil, 0)) {
			t.Fatalf("segment became %x, neither a prefix of %x nor a fresh header", got, seg)
		}
		es = cloneEntries(es)
		more := testEntry(7)
		appendSync(t, w, more)
		mustClose(t, w)
		w, again := mustOpen(t, Config{Dir: dir})
		mustClose(t, w)
		sameEntries(t, again, append(es, more))
	})
}

func entryEqual(a, b Entry) bool { return a.Height == b.Height && bytes.Equal(a.Data, b.Data) }

func cloneEntries(es []Entry) []Entry {
	out := make([]Entry, len(es))
	for i, e := range es {
		out[i] = Entry{Height: e.Height, Data: bytes.Clone(e.Data)}
	}
	return out
}
