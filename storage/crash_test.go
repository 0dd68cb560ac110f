package storage

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"strconv"
	"syscall"
	"testing"
	"time"

	"github.com/ipfs/go-cid"

	"auditnet/storage/internal/crashfs"
	"auditnet/storage/unixfs"
)

var errPowerCut = errors.New("power cut")

// crashModel is what a workload had acknowledged when it stopped.
type crashModel struct {
	files    map[string][]byte // root → content, for every acknowledged add
	pinned   map[string]bool   // root → pinned, as last acknowledged
	unpinned map[string]bool   // roots whose unpin was acknowledged
}

func newCrashModel() *crashModel {
	return &crashModel{files: map[string][]byte{}, pinned: map[string]bool{}, unpinned: map[string]bool{}}
}

// crashStoreOptions make every mechanism happen within a small workload:
// pack rotation, writer flushes, and leveldb memtable flushes, table files
// and manifest rewrites.
var crashStoreOptions = Options{PackSize: 48 << 10, FlushEntries: 5, indexWriteBuffer: 4 << 10}

// crashWorkload adds, aborts, unpins, re-pins and collects, recording each
// acknowledgement in m. It stops at the first error, as a process whose
// disk went away would.
func crashWorkload(fsys FS, seed uint64, m *crashModel) (*Store, error) {
	ctx := context.Background()
	s, err := Open("repo", crashStoreOptions.withFS(fsys))
	if err != nil {
		return nil, err
	}
	rng := rand.New(rand.NewPCG(seed, 1))
	var roots []cid.Cid
	add := func(size int, commit bool) error {
		data := randomBytes(rng, size)
		w, err := s.NewWriter()
		if err != nil {
			return err
		}
		defer w.Close()
		im, err := unixfs.NewImporter(unixfs.Params{ChunkSize: 1024, MaxLinks: 4}, w, nil)
		if err != nil {
			return err
		}
		e, err := im.File(ctx, bytes.NewReader(data))
		if err != nil {
			return err
		}
		if !commit {
			return nil // aborted by Close
		}
		w.Pin(e.Cid)
		if err := w.Commit(); err != nil {
			return err
		}
		m.files[e.Cid.KeyString()] = data
		m.pinned[e.Cid.KeyString()] = true
		delete(m.unpinned, e.Cid.KeyString())
		roots = append(roots, e.Cid)
		return nil
	}
	unpin := func(i int) error {
		r := roots[i]
		if err := s.Unpin(ctx, r); err != nil {
			return err
		}
		m.pinned[r.KeyString()] = false
		m.unpinned[r.KeyString()] = true
		return nil
	}
	steps := []func() error{
		func() error { return add(30_000, true) },
		func() error { return add(12_000, true) },
		func() error { return add(20_000, false) },
		func() error { return add(45_000, true) },
		func() error { return unpin(0) },
		func() error { return add(8_000, true) },
		func() error { _, err := s.GC(ctx); return err },
		func() error { return unpin(2) },
		func() error {
			if err := s.Pin(ctx, roots[1]); err != nil {
				return err
			}
			m.pinned[roots[1].KeyString()] = true
			return nil
		},
		func() error { return add(16_000, true) },
		func() error { _, err := s.GC(ctx); return err },
	}
	for _, step := range steps {
		if err := step(); err != nil {
			return s, err
		}
	}
	return s, nil
}

// checkAfterCrash reopens the store and checks it against what was
// acknowledged.
func checkAfterCrash(t *testing.T, fsys FS, m *crashModel) {
	t.Helper()
	ctx := context.Background()
	s, err := Open("repo", crashStoreOptions.withFS(fsys))
	if err != nil {
		t.Fatalf("store does not open after the crash: %v", err)
	}
	defer s.Close()
	var problems []Problem
	if _, err := s.Verify(ctx, func(p Problem) { problems = append(problems, p) }); err != nil {
		t.Fatalf("verify: %v", err)
	}
	if len(problems) > 0 {
		t.Fatalf("verify after the crash: %v", problems)
	}
	for key, data := range m.files {
		root, _ := cid.Cast([]byte(key))
		pinned, err := s.IsPinned(ctx, root)
		if err != nil {
			t.Fatal(err)
		}
		if m.unpinned[key] && pinned {
			t.Fatalf("%s: acknowledged unpin undone by the crash", root)
		}
		if !m.pinned[key] {
			continue
		}
		if !pinned {
			t.Fatalf("%s: acknowledged pin lost", root)
		}
		if got := readUnixFSFile(t, s, root); !bytes.Equal(got, data) {
			t.Fatalf("%s: acknowledged file differs after the crash", root)
		}
	}
	// The store still works: a new add and a GC succeed.
	data := []byte("after the crash")
	if err := s.Put(ctx, rawBlock(data), data); err != nil {
		t.Fatalf("put after the crash: %v", err)
	}
	if _, err := s.GC(ctx); err != nil {
		t.Fatalf("gc after the crash: %v", err)
	}
}

// TestCrashAtEveryOperation cuts the power at every file-system operation
// of the workload (every write, fsync, create, rename, remove, directory
// sync, in the pack files and in leveldb alike), dropping everything not
// yet synced, and checks the store reopens clean with every acknowledged
// add, pin and unpin intact. The torn variant keeps a random part of the
// unsynced tail of each file, as a disk that wrote some sectors would.
func TestCrashAtEveryOperation(t *testing.T) {
	const seed = 42
	count := crashfs.New()
	s, err := crashWorkload(crashFS{count}, seed, newCrashModel())
	if err != nil {
		t.Fatalf("workload without a crash: %v", err)
	}
	ops := count.Ops() // the workload's own, not Close's
	s.Close()
	stride := 1
	if testing.Short() {
		stride = 7
	}
	start := time.Now()
	for _, torn := range []bool{false, true} {
		for k := 0; k < ops; k += stride {
			name := "clean/k=" + strconv.Itoa(k)
			if torn {
				name = "torn/k=" + strconv.Itoa(k)
			}
			t.Run(name, func(t *testing.T) {
				cfs := crashfs.New()
				cfs.SetHook(crashfs.FailFrom(k, errPowerCut))
				m := newCrashModel()
				s, err := crashWorkload(crashFS{cfs}, seed, m)
				if err == nil {
					t.Fatalf("workload survived a power cut at op %d of %d", k, ops)
				}
				if s != nil {
					s.Close()
				}
				cfs.SetHook(nil)
				if torn {
					rng := rand.New(rand.NewPCG(seed, uint64(k)))
					cfs.CrashTorn(func(extra int) int { return rng.IntN(extra + 1) })
				} else {
					cfs.Crash()
				}
				checkAfterCrash(t, crashFS{cfs}, m)
			})
		}
	}
	t.Logf("%d operations, stride %d, two modes, in %v", ops, stride, time.Since(start))
}

// TestFullDiskKeepsWhatWasStored fills the disk partway through the
// workload: the failing operation reports ENOSPC, what was stored before
// stays readable in the running store, and everything acknowledged is
// there after a restart.
func TestFullDiskKeepsWhatWasStored(t *testing.T) {
	const seed = 7
	count := crashfs.New()
	s, err := crashWorkload(crashFS{count}, seed, newCrashModel())
	if err != nil {
		t.Fatal(err)
	}
	s.Close()
	for _, k := range []int{count.Ops() / 3, count.Ops() / 2, count.Ops() * 4 / 5} {
		t.Run(fmt.Sprint(k), func(t *testing.T) {
			cfs := crashfs.New()
			cfs.SetHook(func(op crashfs.Op) error {
				if op.Index >= k && (op.Kind == crashfs.OpWrite || op.Kind == crashfs.OpCreate) {
					return syscall.ENOSPC
				}
				return nil
			})
			m := newCrashModel()
			s, err := crashWorkload(crashFS{cfs}, seed, m)
			if !errors.Is(err, syscall.ENOSPC) {
				t.Fatalf("workload on a full disk: %v, want ENOSPC", err)
			}
			// The running store still serves what it acknowledged.
			for key, data := range m.files {
				if !m.pinned[key] {
					continue
				}
				root, _ := cid.Cast([]byte(key))
				if got := readUnixFSFile(t, s, root); !bytes.Equal(got, data) {
					t.Fatalf("%s unreadable on a full disk", root)
				}
			}
			s.Close()
			cfs.SetHook(nil)
			cfs.Crash()
			checkAfterCrash(t, crashFS{cfs}, m)
		})
	}
}

func (o Options) withFS(fsys FS) Options {
	o.FS = fsys
	return o
}
