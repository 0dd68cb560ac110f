package wal

import (
	"errors"
	"fmt"
	"io"
	"os"
	"strings"
	"sync"
	"syscall"
	"testing"
)

// faults makes the segment files a WAL opens fail on a chosen call.
type faults struct {
	mu     sync.Mutex
	writes int // writes so far, counting every file
	syncs  int
	// failWrite is the write (1-based) that fails: it writes half of its
	// bytes when short, none otherwise, and returns writeErr.
	failWrite int
	short     bool
	writeErr  error
	failSync  int
	syncErr   error
}

func (fs *faults) open(path string, flag int) (file, error) {
	f, err := openOS(path, flag)
	if err != nil {
		return nil, err
	}
	return &faultyFile{file: f, fs: fs}, nil
}

type faultyFile struct {
	file
	fs *faults
}

func (f *faultyFile) Write(p []byte) (int, error) {
	f.fs.mu.Lock()
	f.fs.writes++
	fail := f.fs.writes == f.fs.failWrite
	f.fs.mu.Unlock()
	if !fail {
		return f.file.Write(p)
	}
	if !f.fs.short {
		return 0, f.fs.writeErr
	}
	n, err := f.file.Write(p[:len(p)/2])
	if err != nil {
		return n, err
	}
	return n, f.fs.writeErr
}

func (f *faultyFile) Sync() error {
	f.fs.mu.Lock()
	f.fs.syncs++
	fail := f.fs.syncs == f.fs.failSync
	f.fs.mu.Unlock()
	if fail {
		return f.fs.syncErr
	}
	return f.file.Sync()
}

// TestFaults injects a write error, a short write, a full disk and an
// fsync error at every write and fsync of a run that starts segments:
// the error comes back wrapped, with the segment named, and sticks; what
// was synced before is all there on reopening, anything after is whole
// entries, and the log then takes appends again.
func TestFaults(t *testing.T) {
	kinds := []struct {
		name string
		set  func(fs *faults, n int)
		want error
	}{
		{"write EIO", func(fs *faults, n int) { fs.failWrite, fs.writeErr = n, syscall.EIO }, syscall.EIO},
		{"short write", func(fs *faults, n int) { fs.failWrite, fs.short = n, true }, io.ErrShortWrite},
		{"ENOSPC", func(fs *faults, n int) { fs.failWrite, fs.short, fs.writeErr = n, true, syscall.ENOSPC }, syscall.ENOSPC},
		{"fsync EIO", func(fs *faults, n int) { fs.failSync, fs.syncErr = n, syscall.EIO }, syscall.EIO},
	}
	const batches, batch = 12, 3
	for _, k := range kinds {
		for n := 1; ; n++ {
			dir := t.TempDir()
			fs := &faults{}
			w, _ := mustOpen(t, Config{Dir: dir, SegmentBytes: 2000, open: fs.open})
			fs.writes, fs.syncs = 0, 0 // count from here: Open wrote a header
			k.set(fs, n)
			synced, released, failed := 0, uint64(0), error(nil)
			for b := 0; b < batches && failed == nil; b++ {
				if err := w.Append(testEntries(b*batch, (b+1)*batch)...); err != nil {
					t.Fatal(err)
				}
				if b%5 == 4 {
					released = uint64(b * batch / 4)
					failed = w.Release(released)
				}
				if failed == nil {
					failed = w.Sync()
				}
				if failed == nil {
					synced = (b + 1) * batch
				}
			}
			if failed == nil {
				if n == 1 {
					t.Fatalf("%s: no call failed", k.name)
				}
				mustClose(t, w)
				break // every call of the run has failed once
			}
			name := fmt.Sprintf("%s at call %d", k.name, n)
			checkFault(t, name, w, failed, k.want)
			checkReopen(t, name, dir, synced, released)
		}
	}
}

// checkFault checks a failed WAL: the error wraps want, names a segment,
// and every later call returns it.
func checkFault(t *testing.T, name string, w *WAL, err, want error) {
	t.Helper()
	if !errors.Is(err, want) || !strings.Contains(err.Error(), "wal segment") {
		t.Fatalf("%s: error %q, want one wrapping %v and naming the segment", name, err, want)
	}
	for call, got := range map[string]error{
		"Append": w.Append(testEntry(999)), "Sync": w.Sync(), "Release": w.Release(1 << 40),
	} {
		if got != err {
			t.Fatalf("%s: %s after the failure returned %v, want the sticky %v", name, call, got, err)
		}
	}
	if got := w.Close(); got != err {
		t.Fatalf("%s: Close returned %v, want %v", name, got, err)
	}
}

// checkReopen reopens dir after a failure and checks that the entries
// are a run of testEntries holding every synced one not released, that
// only released ones are missing before it, and that appends go on.
func checkReopen(t *testing.T, name, dir string, synced int, released uint64) {
	t.Helper()
	w, es := mustOpen(t, Config{Dir: dir})
	first, end := synced, synced
	if len(es) > 0 {
		first = entryIndex(t, es[0])
		end = first + len(es)
	}
	sameEntries(t, es, testEntries(first, end))
	if end < synced {
		t.Fatalf("%s: %d entries synced, the log holds up to %d", name, synced, end)
	}
	if first > 0 && testEntry(first-1).Height > released {
		t.Fatalf("%s: entry %d (height %d) is missing, released up to height %d", name, first-1, testEntry(first-1).Height, released)
	}
	appendSync(t, w, testEntry(end))
	mustClose(t, w)
	_, again := mustOpen(t, Config{Dir: dir})
	sameEntries(t, again, testEntries(first, end+1))
}

// TestReleaseFailureSticks: a directory that is gone fails Release, and
// the failure sticks.
func TestReleaseFailureSticks(t *testing.T) {
	dir := t.TempDir()
	w, _ := mustOpen(t, Config{Dir: dir})
	appendSync(t, w, testEntries(0, 4)...)
	if err := os.RemoveAll(dir); err != nil {
		t.Fatal(err)
	}
	err := w.Release(10)
	if err == nil {
		t.Fatal("Release in a removed directory: no error")
	}
	if got := w.Sync(); got != err {
		t.Fatalf("Sync after a failed Release: %v, want %v", got, err)
	}
}
