package crashfs

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"slices"
	"sync"
	"syscall"
	"testing"
)

var errInjected = errors.New("injected fault")

// mustWriteFile creates name with data, optionally syncing the file and
// its directory.
func mustWriteFile(t *testing.T, f *FS, name, data string, syncFile, syncDir bool) {
	t.Helper()
	h, err := f.OpenFile(name, os.O_WRONLY|os.O_CREATE|os.O_TRUNC, 0o644)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := h.Write([]byte(data)); err != nil {
		t.Fatal(err)
	}
	if syncFile {
		if err := h.Sync(); err != nil {
			t.Fatal(err)
		}
	}
	if err := h.Close(); err != nil {
		t.Fatal(err)
	}
	if syncDir {
		if err := f.SyncDir("d"); err != nil {
			t.Fatal(err)
		}
	}
}

// readAll returns name's content, or the open error.
func readAll(f *FS, name string) (string, error) {
	h, err := f.OpenFile(name, os.O_RDONLY, 0)
	if err != nil {
		return "", err
	}
	defer h.Close()
	b, err := io.ReadAll(h)
	return string(b), err
}

func newTestFS(t *testing.T) *FS {
	t.Helper()
	f := New()
	if err := f.MkdirAll("d", 0o755); err != nil {
		t.Fatal(err)
	}
	return f
}

func TestCrashDurability(t *testing.T) {
	tests := []struct {
		name     string
		syncFile bool
		syncDir  bool
		wantErr  error
		want     string
	}{
		{name: "nothing synced", wantErr: fs.ErrNotExist},
		{name: "file synced, dir not", syncFile: true, wantErr: fs.ErrNotExist},
		{name: "dir synced, file not", syncDir: true, want: ""},
		{name: "both synced", syncFile: true, syncDir: true, want: "hello"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			f := newTestFS(t)
			mustWriteFile(t, f, "d/a", "hello", tc.syncFile, tc.syncDir)
			f.Crash()
			got, err := readAll(f, "d/a")
			if !errors.Is(err, tc.wantErr) {
				t.Fatalf("read after crash: err = %v, want %v", err, tc.wantErr)
			}
			if got != tc.want {
				t.Errorf("content after crash = %q, want %q", got, tc.want)
			}
		})
	}
}

func TestCrashForgetsUnsyncedTail(t *testing.T) {
	f := newTestFS(t)
	h, err := f.OpenFile("d/a", os.O_RDWR|os.O_CREATE, 0o644)
	if err != nil {
		t.Fatal(err)
	}
	mustWrite(t, h, "synced")
	if err := h.Sync(); err != nil {
		t.Fatal(err)
	}
	if err := f.SyncDir("d"); err != nil {
		t.Fatal(err)
	}
	mustWrite(t, h, " lost")
	if got, _ := readAll(f, "d/a"); got != "synced lost" {
		t.Fatalf("content before crash = %q, want %q", got, "synced lost")
	}
	f.Crash()
	if got, err := readAll(f, "d/a"); err != nil || got != "synced" {
		t.Errorf("content after crash = %q, %v; want %q", got, err, "synced")
	}
}

func mustWrite(t *testing.T, h *File, data string) {
	t.Helper()
	if _, err := h.Write([]byte(data)); err != nil {
		t.Fatal(err)
	}
}

func TestSyncFromAnotherHandle(t *testing.T) {
	f := newTestFS(t)
	w, err := f.OpenFile("d/a", os.O_WRONLY|os.O_CREATE, 0o644)
	if err != nil {
		t.Fatal(err)
	}
	mustWrite(t, w, "abc")
	r, err := f.OpenFile("d/a", os.O_RDONLY, 0)
	if err != nil {
		t.Fatal(err)
	}
	if err := r.Sync(); err != nil {
		t.Fatal(err)
	}
	if err := f.SyncDir("d"); err != nil {
		t.Fatal(err)
	}
	f.Crash()
	if got, err := readAll(f, "d/a"); err != nil || got != "abc" {
		t.Errorf("content after crash = %q, %v; want %q", got, err, "abc")
	}
}

func TestCrashDirOps(t *testing.T) {
	tests := []struct {
		name    string
		op      func(*FS) error
		syncDir bool
		want    []string
	}{
		{name: "rename undone", op: func(f *FS) error { return f.Rename("d/a", "d/b") }, want: []string{"a", "c"}},
		{name: "rename kept", op: func(f *FS) error { return f.Rename("d/a", "d/b") }, syncDir: true, want: []string{"b", "c"}},
		{name: "rename over undone", op: func(f *FS) error { return f.Rename("d/a", "d/c") }, want: []string{"a", "c"}},
		{name: "rename over kept", op: func(f *FS) error { return f.Rename("d/a", "d/c") }, syncDir: true, want: []string{"c"}},
		{name: "remove undone", op: func(f *FS) error { return f.Remove("d/a") }, want: []string{"a", "c"}},
		{name: "remove kept", op: func(f *FS) error { return f.Remove("d/a") }, syncDir: true, want: []string{"c"}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			f := newTestFS(t)
			mustWriteFile(t, f, "d/a", "A", true, false)
			mustWriteFile(t, f, "d/c", "C", true, true)
			if err := tc.op(f); err != nil {
				t.Fatal(err)
			}
			if tc.syncDir {
				if err := f.SyncDir("d"); err != nil {
					t.Fatal(err)
				}
			}
			f.Crash()
			got, err := f.ReadDir("d")
			if err != nil {
				t.Fatal(err)
			}
			if !slices.Equal(got, tc.want) {
				t.Errorf("entries after crash = %q, want %q", got, tc.want)
			}
			for _, name := range got {
				if b, err := readAll(f, "d/"+name); err != nil || len(b) != 1 {
					t.Errorf("d/%s after crash = %q, %v", name, b, err)
				}
			}
		})
	}
}

func TestHandlesDeadAfterCrash(t *testing.T) {
	f := newTestFS(t)
	h, err := f.OpenFile("d/a", os.O_RDWR|os.O_CREATE, 0o644)
	if err != nil {
		t.Fatal(err)
	}
	mustWrite(t, h, "x")
	f.Crash()
	calls := []struct {
		name string
		call func() error
	}{
		{"read", func() error { _, err := h.Read(make([]byte, 1)); return err }},
		{"readat", func() error { _, err := h.ReadAt(make([]byte, 1), 0); return err }},
		{"write", func() error { _, err := h.Write([]byte("y")); return err }},
		{"seek", func() error { _, err := h.Seek(0, io.SeekStart); return err }},
		{"sync", h.Sync},
		{"truncate", func() error { return h.Truncate(0) }},
		{"size", func() error { _, err := h.Size(); return err }},
		{"close", h.Close},
	}
	for _, c := range calls {
		t.Run(c.name, func(t *testing.T) {
			if err := c.call(); !errors.Is(err, ErrCrashed) {
				t.Errorf("%s after crash: err = %v, want ErrCrashed", c.name, err)
			}
		})
	}
	// The rebooted FS accepts new opens.
	mustWriteFile(t, f, "d/b", "new", true, true)
	if got, err := readAll(f, "d/b"); err != nil || got != "new" {
		t.Errorf("new file after crash = %q, %v", got, err)
	}
}

func TestHookFailsWithoutEffect(t *testing.T) {
	tests := []struct {
		kind  OpKind
		setup func(*FS) error // runs before the hook is set
		op    func(*FS, *File) error
		// check verifies that the state is the one before op.
		check func(*testing.T, *FS, *File)
	}{
		{
			kind: OpCreate,
			op: func(f *FS, _ *File) error {
				_, err := f.OpenFile("d/new", os.O_WRONLY|os.O_CREATE, 0o644)
				return err
			},
			check: func(t *testing.T, f *FS, _ *File) { wantEntries(t, f, "a") },
		},
		{
			kind: OpCreate,
			op: func(f *FS, _ *File) error {
				_, err := f.OpenFile("d/a", os.O_WRONLY|os.O_TRUNC, 0)
				return err
			},
			check: func(t *testing.T, f *FS, _ *File) { wantContent(t, f, "d/a", "durable+current") },
		},
		{
			kind: OpWrite,
			op:   func(_ *FS, h *File) error { _, err := h.Write([]byte("zz")); return err },
			check: func(t *testing.T, f *FS, h *File) {
				wantContent(t, f, "d/a", "durable+current")
				if off, _ := h.Seek(0, io.SeekCurrent); off != 0 {
					t.Errorf("offset = %d, want 0", off)
				}
			},
		},
		{
			kind: OpSync,
			op:   func(_ *FS, h *File) error { return h.Sync() },
			check: func(t *testing.T, f *FS, _ *File) {
				f.Crash()
				wantContent(t, f, "d/a", "durable")
			},
		},
		{
			kind:  OpTruncate,
			op:    func(_ *FS, h *File) error { return h.Truncate(1) },
			check: func(t *testing.T, f *FS, _ *File) { wantContent(t, f, "d/a", "durable+current") },
		},
		{
			kind:  OpRemove,
			op:    func(f *FS, _ *File) error { return f.Remove("d/a") },
			check: func(t *testing.T, f *FS, _ *File) { wantEntries(t, f, "a") },
		},
		{
			kind:  OpRename,
			op:    func(f *FS, _ *File) error { return f.Rename("d/a", "d/b") },
			check: func(t *testing.T, f *FS, _ *File) { wantEntries(t, f, "a") },
		},
		{
			kind:  OpSyncDir,
			setup: func(f *FS) error { return f.Rename("d/a", "d/b") },
			op:    func(f *FS, _ *File) error { return f.SyncDir("d") },
			check: func(t *testing.T, f *FS, _ *File) {
				f.Crash()
				wantEntries(t, f, "a")
			},
		},
	}
	for _, tc := range tests {
		t.Run(tc.kind.String(), func(t *testing.T) {
			f := newTestFS(t)
			h, err := f.OpenFile("d/a", os.O_RDWR|os.O_CREATE, 0o644)
			if err != nil {
				t.Fatal(err)
			}
			mustWrite(t, h, "durable")
			if err := h.Sync(); err != nil {
				t.Fatal(err)
			}
			if err := f.SyncDir("d"); err != nil {
				t.Fatal(err)
			}
			mustWrite(t, h, "+current")
			if _, err := h.Seek(0, io.SeekStart); err != nil {
				t.Fatal(err)
			}
			if tc.setup != nil {
				if err := tc.setup(f); err != nil {
					t.Fatal(err)
				}
			}
			var seen []Op
			f.SetHook(func(op Op) error {
				seen = append(seen, op)
				if op.Kind == tc.kind {
					return errInjected
				}
				return nil
			})
			before := f.Ops()
			err = tc.op(f, h)
			if !errors.Is(err, errInjected) {
				t.Fatalf("err = %v, want the injected error", err)
			}
			var pe *fs.PathError
			if !errors.As(err, &pe) {
				t.Errorf("err = %T, want *fs.PathError", err)
			}
			if got := f.Ops() - before; got != len(seen) || got == 0 {
				t.Errorf("Ops grew by %d, hook saw %d ops", got, len(seen))
			}
			if last := seen[len(seen)-1]; last.Kind != tc.kind || last.Index != f.Ops()-1 {
				t.Errorf("hook's last op = %v, want kind %v index %d", last, tc.kind, f.Ops()-1)
			}
			f.SetHook(nil)
			tc.check(t, f, h)
		})
	}
}

func wantEntries(t *testing.T, f *FS, want ...string) {
	t.Helper()
	got, err := f.ReadDir("d")
	if err != nil {
		t.Fatal(err)
	}
	if !slices.Equal(got, want) {
		t.Errorf("entries = %q, want %q", got, want)
	}
}

func wantContent(t *testing.T, f *FS, name, want string) {
	t.Helper()
	got, err := readAll(f, name)
	if err != nil {
		t.Fatal(err)
	}
	if got != want {
		t.Errorf("content of %s = %q, want %q", name, got, want)
	}
}

func TestHookENOSPC(t *testing.T) {
	f := newTestFS(t)
	h, err := f.OpenFile("d/a", os.O_WRONLY|os.O_CREATE, 0o644)
	if err != nil {
		t.Fatal(err)
	}
	f.SetHook(func(op Op) error {
		if op.Kind == OpWrite {
			return syscall.ENOSPC
		}
		return nil
	})
	_, err = h.Write([]byte("x"))
	if !errors.Is(err, syscall.ENOSPC) {
		t.Errorf("write err = %v, want ENOSPC", err)
	}
	var pe *fs.PathError
	if !errors.As(err, &pe) || pe.Op != "write" || pe.Path != "d/a" {
		t.Errorf("write err = %#v, want *fs.PathError for write d/a", err)
	}
}

func TestFailFrom(t *testing.T) {
	for n := range 4 {
		t.Run(fmt.Sprint(n), func(t *testing.T) {
			f := newTestFS(t)
			f.SetHook(FailFrom(n, errInjected))
			h, err := f.OpenFile("d/a", os.O_WRONLY|os.O_CREATE, 0o644) // op 0
			if n == 0 {
				if !errors.Is(err, errInjected) {
					t.Fatalf("create: err = %v, want injected", err)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			_, err1 := h.Write([]byte("x")) // op 1
			err2 := h.Sync()                // op 2
			err3 := f.SyncDir("d")          // op 3
			for i, err := range []error{err1, err2, err3} {
				if got, want := errors.Is(err, errInjected), i+1 >= n; got != want {
					t.Errorf("op %d: err = %v, want failure %v", i+1, err, want)
				}
			}
			if got := f.Ops(); got != 4 {
				t.Errorf("Ops() = %d, want 4", got)
			}
		})
	}
}

func TestCrashTorn(t *testing.T) {
	tests := []struct {
		name      string
		rewrite   bool // truncate and rewrite instead of appending
		keep      int
		wantExtra int
		want      string
	}{
		{name: "keep none", keep: 0, wantExtra: 5, want: "abc"},
		{name: "keep some", keep: 2, wantExtra: 5, want: "abcde"},
		{name: "keep all", keep: 5, wantExtra: 5, want: "abcdefgh"},
		{name: "keep clamped", keep: 99, wantExtra: 5, want: "abcdefgh"},
		{name: "negative clamped", keep: -1, wantExtra: 5, want: "abc"},
		{name: "rewritten", rewrite: true, keep: 3, wantExtra: -1, want: "abc"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			f := newTestFS(t)
			h, err := f.OpenFile("d/a", os.O_RDWR|os.O_CREATE, 0o644)
			if err != nil {
				t.Fatal(err)
			}
			mustWrite(t, h, "abc")
			if err := h.Sync(); err != nil {
				t.Fatal(err)
			}
			if err := f.SyncDir("d"); err != nil {
				t.Fatal(err)
			}
			if tc.rewrite {
				if err := h.Truncate(0); err != nil {
					t.Fatal(err)
				}
				if _, err := h.Seek(0, io.SeekStart); err != nil {
					t.Fatal(err)
				}
				mustWrite(t, h, "xyzdefgh")
			} else {
				mustWrite(t, h, "defgh")
			}
			gotExtra := -1
			f.CrashTorn(func(extra int) int {
				gotExtra = extra
				return tc.keep
			})
			if gotExtra != tc.wantExtra {
				t.Errorf("keep called with %d, want %d (-1: not called)", gotExtra, tc.wantExtra)
			}
			wantContent(t, f, "d/a", tc.want)
			// What survived the crash is durable now.
			f.Crash()
			wantContent(t, f, "d/a", tc.want)
		})
	}
}

func TestOpenFileErrors(t *testing.T) {
	tests := []struct {
		name string
		path string
		flag int
		want error
	}{
		{name: "missing", path: "d/none", flag: os.O_RDONLY, want: fs.ErrNotExist},
		{name: "missing dir", path: "nodir/a", flag: os.O_WRONLY | os.O_CREATE, want: fs.ErrNotExist},
		{name: "exclusive", path: "d/a", flag: os.O_WRONLY | os.O_CREATE | os.O_EXCL, want: fs.ErrExist},
		{name: "directory", path: "d", flag: os.O_RDONLY, want: syscall.EISDIR},
		{name: "unclean", path: "d/../d/./a", flag: os.O_RDONLY, want: nil},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			f := newTestFS(t)
			mustWriteFile(t, f, "d/a", "A", false, false)
			h, err := f.OpenFile(tc.path, tc.flag, 0o644)
			if !errors.Is(err, tc.want) {
				t.Fatalf("err = %v, want %v", err, tc.want)
			}
			if err != nil {
				var pe *fs.PathError
				if !errors.As(err, &pe) {
					t.Errorf("err = %T, want *fs.PathError", err)
				}
				return
			}
			h.Close()
		})
	}
}

func TestHandleModes(t *testing.T) {
	f := newTestFS(t)
	mustWriteFile(t, f, "d/a", "hello", false, false)

	r, err := f.OpenFile("d/a", os.O_RDONLY, 0)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := r.Write([]byte("x")); !errors.Is(err, fs.ErrPermission) {
		t.Errorf("write to read-only handle: err = %v, want ErrPermission", err)
	}
	if err := r.Truncate(0); !errors.Is(err, fs.ErrPermission) {
		t.Errorf("truncate read-only handle: err = %v, want ErrPermission", err)
	}
	w, err := f.OpenFile("d/a", os.O_WRONLY, 0)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := w.Read(make([]byte, 1)); !errors.Is(err, fs.ErrPermission) {
		t.Errorf("read from write-only handle: err = %v, want ErrPermission", err)
	}
	a, err := f.OpenFile("d/a", os.O_WRONLY|os.O_APPEND, 0)
	if err != nil {
		t.Fatal(err)
	}
	mustWrite(t, w, "J")  // overwrites at offset 0
	mustWrite(t, a, "!!") // appends
	mustWrite(t, w, "E")  // overwrites at offset 1
	wantContent(t, f, "d/a", "JEllo!!")

	if err := a.Close(); err != nil {
		t.Fatal(err)
	}
	if _, err := a.Write([]byte("x")); !errors.Is(err, fs.ErrClosed) {
		t.Errorf("write after close: err = %v, want ErrClosed", err)
	}
	if err := a.Close(); !errors.Is(err, fs.ErrClosed) {
		t.Errorf("second close: err = %v, want ErrClosed", err)
	}

	// O_TRUNC empties the file; growing past the end zero-fills.
	tr, err := f.OpenFile("d/a", os.O_RDWR|os.O_TRUNC, 0)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := tr.Seek(2, io.SeekStart); err != nil {
		t.Fatal(err)
	}
	mustWrite(t, tr, "z")
	if err := tr.Truncate(5); err != nil {
		t.Fatal(err)
	}
	wantContent(t, f, "d/a", "\x00\x00z\x00\x00")
	if n, err := tr.Size(); err != nil || n != 5 {
		t.Errorf("Size() = %d, %v; want 5", n, err)
	}
	buf := make([]byte, 4)
	if n, err := tr.ReadAt(buf, 3); n != 2 || err != io.EOF {
		t.Errorf("ReadAt past end = %d, %v; want 2, EOF", n, err)
	}
	if _, err := tr.Seek(-1, io.SeekStart); err == nil {
		t.Error("seek to a negative offset succeeded")
	}
	if off, err := tr.Seek(-1, io.SeekEnd); err != nil || off != 4 {
		t.Errorf("Seek(-1, end) = %d, %v; want 4", off, err)
	}
}

func TestUnixSemantics(t *testing.T) {
	f := newTestFS(t)
	mustWriteFile(t, f, "d/a", "one", true, true)
	h, err := f.OpenFile("d/a", os.O_RDWR, 0)
	if err != nil {
		t.Fatal(err)
	}
	if err := f.Rename("d/a", "d/b"); err != nil {
		t.Fatal(err)
	}
	mustWrite(t, h, "ONE")
	wantContent(t, f, "d/b", "ONE")
	if err := f.Remove("d/b"); err != nil {
		t.Fatal(err)
	}
	if _, err := h.Seek(0, io.SeekEnd); err != nil {
		t.Fatal(err)
	}
	mustWrite(t, h, "+")
	if err := h.Sync(); err != nil {
		t.Errorf("sync of a removed file: %v", err)
	}
	got := make([]byte, 4)
	if _, err := h.ReadAt(got, 0); err != nil || string(got) != "ONE+" {
		t.Errorf("removed file reads %q, %v; want %q", got, err, "ONE+")
	}
	wantEntries(t, f)
}

func TestReadDirAndMkdirAll(t *testing.T) {
	f := New()
	if err := f.MkdirAll("x/y/z", 0o755); err != nil {
		t.Fatal(err)
	}
	if err := f.MkdirAll("/abs/dir", 0o755); err != nil {
		t.Fatal(err)
	}
	for _, name := range []string{"x/y/c", "x/y/a", "x/y/b", "/abs/dir/f"} {
		h, err := f.OpenFile(name, os.O_WRONLY|os.O_CREATE, 0o644)
		if err != nil {
			t.Fatal(err)
		}
		h.Close()
	}
	tests := []struct {
		dir     string
		want    []string
		wantErr error
	}{
		{dir: "x/y", want: []string{"a", "b", "c", "z"}},
		{dir: "x/y/", want: []string{"a", "b", "c", "z"}},
		{dir: "x", want: []string{"y"}},
		{dir: "x/y/z", want: nil},
		{dir: "/abs", want: []string{"dir"}},
		{dir: "/abs/dir", want: []string{"f"}},
		{dir: "missing", wantErr: fs.ErrNotExist},
	}
	for _, tc := range tests {
		t.Run(tc.dir, func(t *testing.T) {
			got, err := f.ReadDir(tc.dir)
			if !errors.Is(err, tc.wantErr) {
				t.Fatalf("err = %v, want %v", err, tc.wantErr)
			}
			if !slices.Equal(got, tc.want) {
				t.Errorf("ReadDir(%q) = %q, want %q", tc.dir, got, tc.want)
			}
		})
	}
	if err := f.MkdirAll("x/y/a/b", 0o755); !errors.Is(err, syscall.ENOTDIR) {
		t.Errorf("MkdirAll through a file: err = %v, want ENOTDIR", err)
	}
	if err := f.Remove("x/y"); !errors.Is(err, syscall.ENOTEMPTY) {
		t.Errorf("remove non-empty dir: err = %v, want ENOTEMPTY", err)
	}
	if err := f.Remove("x/y/z"); err != nil {
		t.Errorf("remove empty dir: %v", err)
	}
	// Directories are durable at once.
	f.Crash()
	if got, err := f.ReadDir("x/y"); err != nil || len(got) != 0 {
		t.Errorf("ReadDir after crash = %q, %v; want no entries", got, err)
	}
	if err := f.SyncDir("missing"); !errors.Is(err, fs.ErrNotExist) {
		t.Errorf("SyncDir(missing): err = %v, want ErrNotExist", err)
	}
}

func TestConcurrent(t *testing.T) {
	f := newTestFS(t)
	const workers, writes = 8, 50
	shared, err := f.OpenFile("d/shared", os.O_WRONLY|os.O_CREATE|os.O_APPEND, 0o644)
	if err != nil {
		t.Fatal(err)
	}
	var wg sync.WaitGroup
	for w := range workers {
		wg.Go(func() {
			name := fmt.Sprintf("d/w%d", w)
			h, err := f.OpenFile(name, os.O_RDWR|os.O_CREATE, 0o644)
			if err != nil {
				t.Error(err)
				return
			}
			for i := range writes {
				if _, err := h.Write([]byte{byte(i)}); err != nil {
					t.Error(err)
				}
				if _, err := shared.Write([]byte{byte(w)}); err != nil {
					t.Error(err)
				}
				if err := h.Sync(); err != nil {
					t.Error(err)
				}
				if _, err := f.ReadDir("d"); err != nil {
					t.Error(err)
				}
				if err := f.SyncDir("d"); err != nil {
					t.Error(err)
				}
				f.Ops()
			}
			if n, err := h.Size(); err != nil || n != writes {
				t.Errorf("%s: size = %d, %v; want %d", name, n, err, writes)
			}
		})
	}
	wg.Wait()
	if n, err := shared.Size(); err != nil || n != workers*writes {
		t.Errorf("shared size = %d, %v; want %d", n, err, workers*writes)
	}
	if got, want := f.Ops(), 1+workers*(1+4*writes); got != want {
		t.Errorf("Ops() = %d, want %d", got, want)
	}
	f.Crash()
	for w := range workers {
		b, err := readAll(f, fmt.Sprintf("d/w%d", w))
		if err != nil || len(b) != writes || !bytes.Equal([]byte(b)[:3], []byte{0, 1, 2}) {
			t.Errorf("w%d after crash = %q, %v", w, b, err)
		}
	}
}

func TestPowerOffAt(t *testing.T) {
	// The ops of the workload below, by index: 0 create d/a, 1 write "one",
	// 2 sync, 3 syncdir, 4 write "two", 5 sync, 6 rename d/a d/b,
	// 7 syncdir, 8 write "three".
	tests := []struct {
		n       int
		torn    bool // CrashTorn keeping everything instead of Crash
		want    []string
		content string // of the one entry in want
	}{
		{n: 0, want: nil},
		{n: 3, want: nil},
		{n: 4, want: []string{"a"}, content: "one"},
		{n: 5, want: []string{"a"}, content: "one"},
		{n: 5, torn: true, want: []string{"a"}, content: "onetwo"},
		{n: 6, want: []string{"a"}, content: "onetwo"},
		{n: 7, want: []string{"a"}, content: "onetwo"},
		{n: 8, want: []string{"b"}, content: "onetwo"},
		{n: 8, torn: true, want: []string{"b"}, content: "onetwo"},
		{n: 9, torn: true, want: []string{"b"}, content: "onetwothree"},
		{n: 99, want: []string{"b"}, content: "onetwo"},
	}
	for _, tc := range tests {
		t.Run(fmt.Sprintf("n=%d torn=%v", tc.n, tc.torn), func(t *testing.T) {
			f := newTestFS(t)
			f.PowerOffAt(tc.n)
			h, err := f.OpenFile("d/a", os.O_WRONLY|os.O_CREATE, 0o644)
			if err != nil {
				t.Fatal(err)
			}
			mustWrite(t, h, "one")
			for _, err := range []error{h.Sync(), f.SyncDir("d")} {
				if err != nil {
					t.Fatal(err)
				}
			}
			mustWrite(t, h, "two")
			for _, err := range []error{h.Sync(), f.Rename("d/a", "d/b"), f.SyncDir("d")} {
				if err != nil {
					t.Fatal(err)
				}
			}
			mustWrite(t, h, "three")
			if got := f.Ops(); got != 9 {
				t.Fatalf("Ops() = %d, want 9", got)
			}
			if tc.torn {
				f.CrashTorn(func(extra int) int { return extra })
			} else {
				f.Crash()
			}
			wantEntries(t, f, tc.want...)
			if len(tc.want) == 1 {
				wantContent(t, f, "d/"+tc.want[0], tc.content)
			}
			// The setting is cleared: a second crash changes nothing.
			f.Crash()
			wantEntries(t, f, tc.want...)
		})
	}
}

func TestPowerOffNow(t *testing.T) {
	f := newTestFS(t)
	mustWriteFile(t, f, "d/a", "kept", true, true)
	f.PowerOffAt(0) // ops have been attempted already: the power fails now
	if err := f.Remove("d/a"); err != nil {
		t.Fatal(err)
	}
	if err := f.SyncDir("d"); err != nil {
		t.Fatal(err)
	}
	if err := f.MkdirAll("d/sub", 0o755); err != nil {
		t.Fatal(err)
	}
	f.Crash()
	wantEntries(t, f, "a")
	wantContent(t, f, "d/a", "kept")
}

func TestPunchHole(t *testing.T) {
	fsys := New()
	f, err := fsys.OpenFile("p", os.O_RDWR|os.O_CREATE, 0o644)
	if err != nil {
		t.Fatal(err)
	}
	data := bytes.Repeat([]byte{7}, 5*BlockSize)
	if _, err := f.Write(data); err != nil {
		t.Fatal(err)
	}
	if err := f.Sync(); err != nil {
		t.Fatal(err)
	}
	if err := fsys.SyncDir("."); err != nil {
		t.Fatal(err)
	}
	// Punch blocks 1 and 2 (the range starts mid-block 0 and ends mid-block 3).
	if err := f.PunchHole(BlockSize/2, 3*BlockSize); err != nil {
		t.Fatal(err)
	}
	if got, _ := f.Allocated(); got != 3*BlockSize {
		t.Fatalf("allocated %d after punching two blocks, want %d", got, 3*BlockSize)
	}
	if n, _ := f.Size(); n != int64(len(data)) {
		t.Fatalf("punch changed the size to %d", n)
	}
	buf := make([]byte, len(data))
	f.ReadAt(buf, 0)
	if !bytes.Equal(buf[:BlockSize], data[:BlockSize]) || !bytes.Equal(buf[BlockSize:3*BlockSize], make([]byte, 2*BlockSize)) ||
		!bytes.Equal(buf[3*BlockSize:], data[3*BlockSize:]) {
		t.Fatal("punched file reads wrong")
	}
	// Not synced: a crash brings the blocks back.
	fsys.Crash()
	f, _ = fsys.OpenFile("p", os.O_RDWR, 0)
	if got, _ := f.Allocated(); got != 5*BlockSize {
		t.Fatalf("unsynced punch survived a crash: allocated %d", got)
	}
	f.PunchHole(0, BlockSize)
	f.Sync()
	fsys.Crash()
	f, _ = fsys.OpenFile("p", os.O_RDWR, 0)
	if got, _ := f.Allocated(); got != 4*BlockSize {
		t.Fatalf("synced punch lost in a crash: allocated %d", got)
	}
	// Writing into a hole allocates it again.
	f.Seek(0, 0)
	f.Write([]byte{1})
	if got, _ := f.Allocated(); got != 5*BlockSize {
		t.Fatalf("write into a hole: allocated %d", got)
	}
}
