package wal

import (
	"bytes"
	"encoding/binary"
	"encoding/json"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"slices"
	"sync"
	"testing"
)

// testEntry is the k-th entry of the deterministic sequences the tests
// write: its index first, then filler of a length that varies with k; four
// entries per height.
func testEntry(k int) Entry {
	n := 8 + (k*53)%400
	data := make([]byte, n)
	binary.LittleEndian.PutUint64(data, uint64(k))
	for i := 8; i < n; i++ {
		data[i] = byte(k*31 + i*7)
	}
	return Entry{Height: uint64(k/4 + 1), Data: data}
}

// testEntries returns entries [from, to).
func testEntries(from, to int) []Entry {
	var es []Entry
	for k := from; k < to; k++ {
		es = append(es, testEntry(k))
	}
	return es
}

// entryIndex is the index a test entry carries.
func entryIndex(t testing.TB, e Entry) int {
	t.Helper()
	if len(e.Data) < 8 {
		t.Fatalf("entry of %d bytes is not a test entry", len(e.Data))
	}
	return int(binary.LittleEndian.Uint64(e.Data))
}

func sameEntries(t testing.TB, got, want []Entry) {
	t.Helper()
	if len(got) != len(want) {
		t.Fatalf("got %d entries, want %d", len(got), len(want))
	}
	for i := range got {
		if got[i].Height != want[i].Height || !bytes.Equal(got[i].Data, want[i].Data) {
			t.Fatalf("entry %d: got height %d, %d bytes; want height %d, %d bytes", i, got[i].Height, len(got[i].Data), want[i].Height, len(want[i].Data))
		}
	}
}

func mustOpen(t testing.TB, cfg Config) (*WAL, []Entry) {
	t.Helper()
	w, es, err := Open(cfg)
	if err != nil {
		t.Fatal(err)
	}
	return w, es
}

func mustClose(t testing.TB, w *WAL) {
	t.Helper()
	if err := w.Close(); err != nil {
		t.Fatal(err)
	}
}

// appendSync appends entries and syncs them.
func appendSync(t testing.TB, w *WAL, es ...Entry) {
	t.Helper()
	if err := w.Append(es...); err != nil {
		t.Fatal(err)
	}
	if err := w.Sync(); err != nil {
		t.Fatal(err)
	}
}

// segmentFiles lists the segment file names in dir.
func segmentFiles(t testing.TB, dir string) []string {
	t.Helper()
	des, err := os.ReadDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	var names []string
	for _, de := range des {
		names = append(names, de.Name())
	}
	slices.Sort(names)
	return names
}

func names(seqs ...uint64) []string {
	var out []string
	for _, s := range seqs {
		out = append(out, segmentName(s))
	}
	return out
}

// diskSize is the bytes of the files in dir.
func diskSize(t testing.TB, dir string) int64 {
	t.Helper()
	var n int64
	for _, name := range segmentFiles(t, dir) {
		fi, err := os.Stat(filepath.Join(dir, name))
		if err != nil {
			t.Fatal(err)
		}
		n += fi.Size()
	}
	return n
}

// logRecords captures what a WAL logs, as decoded JSON records.
type logRecords struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (l *logRecords) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.buf.Write(p)
}

func (l *logRecords) logger() *slog.Logger {
	return slog.New(slog.NewJSONHandler(l, &slog.HandlerOptions{Level: slog.LevelDebug}))
}

// warnings returns the records logged at level WARN.
func (l *logRecords) warnings(t testing.TB) []map[string]any {
	t.Helper()
	l.mu.Lock()
	defer l.mu.Unlock()
	var out []map[string]any
	for _, line := range bytes.Split(bytes.TrimSpace(l.buf.Bytes()), []byte("\n")) {
		if len(line) == 0 {
			continue
		}
		var rec map[string]any
		if err := json.Unmarshal(line, &rec); err != nil {
			t.Fatalf("log line %q: %v", line, err)
		}
		if rec["level"] == "WARN" {
			out = append(out, rec)
		}
	}
	return out
}

// oneWarning checks that exactly one warning was logged, about segment
// at offset, dropping dropped bytes.
func (l *logRecords) oneWarning(t testing.TB, segment string, offset, dropped int) {
	t.Helper()
	ws := l.warnings(t)
	if len(ws) != 1 {
		t.Fatalf("%d warnings, want 1: %v", len(ws), ws)
	}
	w := ws[0]
	got := fmt.Sprint(w["segment"], " ", w["offset"], " ", w["dropped"])
	want := fmt.Sprint(segment, " ", offset, " ", dropped)
	if got != want {
		t.Fatalf("warning names segment, offset, dropped %q, want %q (%v)", got, want, w)
	}
}

// frameOffsets returns the offsets of the frames in a segment's bytes.
func frameOffsets(t testing.TB, b []byte) []int {
	t.Helper()
	var offs []int
	for off := headerSize; off < len(b); {
		_, size, why := readFrame(b, off)
		if why != "" {
			t.Fatalf("frame at %d: %s", off, why)
		}
		offs = append(offs, off)
		off += size
	}
	return offs
}

func readBytes(t testing.TB, path string) []byte {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func writeBytes(t testing.TB, path string, b []byte) {
	t.Helper()
	if err := os.WriteFile(path, b, 0o600); err != nil {
		t.Fatal(err)
	}
}
