package wal

import (
	"errors"
	"os"
	"path/filepath"
	"slices"
	"testing"
)

func TestAppendSyncReopen(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "repo", "chain", "wal")
	w, es := mustOpen(t, Config{Dir: dir})
	if len(es) != 0 {
		t.Fatalf("a new log returned %d entries", len(es))
	}
	if ok, err := Exists(dir); err != nil || !ok {
		t.Fatalf("Exists after Open: %v, %v", ok, err)
	}
	want := testEntries(0, 100)
	for i := 0; i < len(want); i += 7 {
		appendSync(t, w, want[i:min(i+7, len(want))]...)
	}
	if got, want := w.Size(), diskSize(t, dir); got != want {
		t.Fatalf("Size %d, files hold %d bytes", got, want)
	}
	mustClose(t, w)
	w, got := mustOpen(t, Config{Dir: dir})
	sameEntries(t, got, want)
	if got, want := w.Size(), diskSize(t, dir); got != want {
		t.Fatalf("Size after reopening %d, files hold %d bytes", got, want)
	}
	appendSync(t, w, testEntry(100))
	mustClose(t, w)
	_, got = mustOpen(t, Config{Dir: dir})
	sameEntries(t, got, testEntries(0, 101))
}

// TestSegments checks that segments end past SegmentBytes, keep each
// batch whole and are numbered consecutively.
func TestSegments(t *testing.T) {
	dir := t.TempDir()
	w, _ := mustOpen(t, Config{Dir: dir, SegmentBytes: 1500})
	want := testEntries(0, 60)
	for i := 0; i < len(want); i += 5 {
		appendSync(t, w, want[i:i+5]...)
	}
	if got, want := w.Size(), diskSize(t, dir); got != want {
		t.Fatalf("Size %d, files hold %d bytes", got, want)
	}
	mustClose(t, w)
	files := segmentFiles(t, dir)
	if len(files) < 5 {
		t.Fatalf("%d segments of at most 1500 bytes for %d bytes", len(files), diskSize(t, dir))
	}
	var all []Entry
	for i, name := range files {
		if name != segmentName(uint64(i)) {
			t.Fatalf("segment %d is named %s", i, name)
		}
		data := readBytes(t, filepath.Join(dir, name))
		es, end, bad := scanFrames(data)
		if bad != "" || end != len(data) {
			t.Fatalf("%s: %s at %d", name, bad, end)
		}
		if len(data) > 1500 && len(es) > 5 {
			t.Fatalf("%s: %d bytes, more than one batch past the limit", name, len(data))
		}
		if len(es)%5 != 0 { // batches of 5 are never split
			t.Fatalf("%s holds %d entries, not whole batches", name, len(es))
		}
		all = append(all, es...)
	}
	sameEntries(t, all, want)
}

func TestRelease(t *testing.T) {
	dir := t.TempDir()
	w, _ := mustOpen(t, Config{Dir: dir})
	e := func(h uint64, k int) Entry { x := testEntry(k); x.Height = h; return x }
	check := func(files []string, want ...Entry) {
		t.Helper()
		if got := segmentFiles(t, dir); !slices.Equal(got, files) {
			t.Fatalf("segments %v, want %v", got, files)
		}
		if got, want := w.Size(), diskSize(t, dir); got != want {
			t.Fatalf("Size %d, files hold %d bytes", got, want)
		}
		// Reopen a copy: the log stays open.
		copyDir(t, dir, dir+"-check")
		w3, got := mustOpen(t, Config{Dir: dir + "-check"})
		mustClose(t, w3)
		if err := os.RemoveAll(dir + "-check"); err != nil {
			t.Fatal(err)
		}
		sameEntries(t, got, want)
	}
	a, b, c := []Entry{e(1, 0), e(2, 1), e(3, 2)}, []Entry{e(4, 3), e(6, 4), e(5, 5)}, []Entry{e(7, 6), e(2, 7), e(9, 8)}
	appendSync(t, w, a...)
	if err := w.Release(0); err != nil { // ends segment 0 (heights 1-3), deletes nothing
		t.Fatal(err)
	}
	check(names(0, 1), a...)
	appendSync(t, w, b...)
	if err := w.Release(2); err != nil { // ends segment 1 (4-6); segment 0 has 3 > 2
		t.Fatal(err)
	}
	check(names(0, 1, 2), slices.Concat(a, b)...)
	if err := w.Release(3); err != nil { // segment 2 is empty: no new one; deletes 0
		t.Fatal(err)
	}
	check(names(1, 2), b...)
	appendSync(t, w, c...)
	if err := w.Release(8); err != nil { // ends 2 (up to 9): deletes 1 only, 2 holds 9
		t.Fatal(err)
	}
	check(names(2, 3), c...)
	appendSync(t, w, e(3, 9))
	if err := w.Release(9); err != nil { // ends 3 (3); deletes 2 and 3
		t.Fatal(err)
	}
	check(names(4))
	// A segment at or below the height behind one above it stays.
	appendSync(t, w, e(20, 10))
	if err := w.Release(0); err != nil {
		t.Fatal(err)
	}
	appendSync(t, w, e(5, 11))
	if err := w.Release(10); err != nil {
		t.Fatal(err)
	}
	check(names(4, 5, 6), e(20, 10), e(5, 11))
	mustClose(t, w)
	// Reopened, the log still releases by the heights it read back.
	w, got := mustOpen(t, Config{Dir: dir})
	sameEntries(t, got, []Entry{e(20, 10), e(5, 11)})
	if err := w.Release(20); err != nil {
		t.Fatal(err)
	}
	check(names(6))
	mustClose(t, w)
}

// copyDir copies the files of src into a new directory dst.
func copyDir(t testing.TB, src, dst string) {
	t.Helper()
	if err := os.MkdirAll(dst, 0o700); err != nil {
		t.Fatal(err)
	}
	for _, name := range segmentFiles(t, src) {
		writeBytes(t, filepath.Join(dst, name), readBytes(t, filepath.Join(src, name)))
	}
}

// TestReleaseKeepsUnsynced: entries appended before a Release and synced
// after it land in the new segment and survive it.
func TestReleaseKeepsUnsynced(t *testing.T) {
	dir := t.TempDir()
	w, _ := mustOpen(t, Config{Dir: dir})
	appendSync(t, w, testEntries(0, 4)...) // heights 1
	if err := w.Append(testEntries(4, 8)...); err != nil {
		t.Fatal(err)
	}
	if err := w.Release(1); err != nil {
		t.Fatal(err)
	}
	if err := w.Sync(); err != nil {
		t.Fatal(err)
	}
	mustClose(t, w)
	if got, want := segmentFiles(t, dir), names(1); !slices.Equal(got, want) {
		t.Fatalf("segments %v, want %v", got, want)
	}
	_, got := mustOpen(t, Config{Dir: dir})
	sameEntries(t, got, testEntries(4, 8))
}

func TestExists(t *testing.T) {
	base := t.TempDir()
	dir := filepath.Join(base, "wal")
	exists := func(want bool) {
		t.Helper()
		got, err := Exists(dir)
		if err != nil || got != want {
			t.Fatalf("Exists: %v, %v; want %v", got, err, want)
		}
	}
	exists(false)
	if err := os.Mkdir(dir, 0o700); err != nil {
		t.Fatal(err)
	}
	exists(false)
	writeBytes(t, filepath.Join(dir, "notes.txt"), []byte("x"))
	writeBytes(t, filepath.Join(dir, segmentName(0)+tmpExt), nil)
	exists(false)
	w, _ := mustOpen(t, Config{Dir: dir})
	exists(true)
	if got := segmentFiles(t, dir); !slices.Equal(got, []string{segmentName(0), "notes.txt"}) {
		t.Fatalf("files after Open: %v (the unfinished segment stays?)", got)
	}
	appendSync(t, w, testEntries(0, 8)...)
	if err := w.Release(100); err != nil {
		t.Fatal(err)
	}
	exists(true)
	mustClose(t, w)
	if _, err := Exists(filepath.Join(dir, "notes.txt")); err == nil {
		t.Fatal("Exists of a regular file: no error")
	}
}

func TestClose(t *testing.T) {
	dir := t.TempDir()
	w, _ := mustOpen(t, Config{Dir: dir})
	if err := w.Append(testEntries(0, 3)...); err != nil {
		t.Fatal(err)
	}
	mustClose(t, w) // syncs what is buffered
	for name, err := range map[string]error{"Append": w.Append(testEntry(3)), "Sync": w.Sync(), "Release": w.Release(1)} {
		if !errors.Is(err, ErrClosed) {
			t.Fatalf("%s after Close: %v", name, err)
		}
	}
	if err := w.Close(); err != nil {
		t.Fatalf("second Close: %v", err)
	}
	_, got := mustOpen(t, Config{Dir: dir})
	sameEntries(t, got, testEntries(0, 3))
}

// TestAppendTooLarge: an oversized entry is refused before anything is
// buffered, and the log goes on.
func TestAppendTooLarge(t *testing.T) {
	dir := t.TempDir()
	w, _ := mustOpen(t, Config{Dir: dir})
	big := Entry{Height: 1, Data: make([]byte, MaxEntrySize+1)}
	if err := w.Append(testEntry(0), big); err == nil {
		t.Fatal("appended an entry over MaxEntrySize")
	}
	appendSync(t, w, testEntry(1))
	mustClose(t, w)
	_, got := mustOpen(t, Config{Dir: dir})
	sameEntries(t, got, []Entry{testEntry(1)})
}

func TestConfig(t *testing.T) {
	for _, cfg := range []Config{{}, {Dir: t.TempDir(), SegmentBytes: -1}} {
		if _, _, err := Open(cfg); err == nil {
			t.Fatalf("Open(%+v): no error", cfg)
		}
	}
}
