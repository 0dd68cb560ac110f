package storage

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"math"
	"math/rand/v2"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/ipfs/go-cid"

	"auditnet/storage/internal/crashfs"
	"auditnet/storage/unixfs"
)

var errPowerCut = errors.New("power cut")

// crashEvent is one operation of the workload that changes what must
// survive: the file-system operation count when it started and, if it
// returned success, when it was acknowledged.
type crashEvent struct {
	kind       string // "add", "unpin" or "pin"
	root       cid.Cid
	data       []byte
	start, end int // end is math.MaxInt if it never returned success
}

// crashModel is the workload's history.
type crashModel struct {
	ops    func() int
	events []crashEvent
}

// record runs op as an event of the history.
func (m *crashModel) record(kind string, root cid.Cid, data []byte, op func() error) error {
	e := crashEvent{kind: kind, root: root, data: data, start: m.ops(), end: math.MaxInt}
	err := op()
	if err == nil {
		e.end = m.ops()
	}
	m.events = append(m.events, e)
	return err
}

// pinState is what the history says of a root after a crash before
// operation k.
type pinState int

const (
	stateAbsent   pinState = iota // never acknowledged: may or may not exist
	statePinned                   // must be pinned, with its content
	stateUnpinned                 // must not be pinned
	stateEither                   // an operation on it was in flight
)

// expected replays the history for a crash that kept operations [0, k).
func (m *crashModel) expected(k int) (map[string]pinState, map[string][]byte) {
	state := map[string]pinState{}
	content := map[string][]byte{}
	for _, e := range m.events {
		key := e.root.KeyString()
		durable, applied := e.end <= k, e.start < k
		if e.data != nil && applied {
			content[key] = e.data
		}
		switch {
		case durable && e.kind == "unpin":
			state[key] = stateUnpinned
		case durable:
			state[key] = statePinned
		case applied && (state[key] != stateAbsent || e.kind == "add"):
			state[key] = stateEither
		}
	}
	return state, content
}

// crashStoreOptions make every mechanism happen within a small workload:
// pack rotation, writer flushes, background syncs, and leveldb memtable
// flushes, table files and manifest rewrites.
var crashStoreOptions = Options{PackSize: 48 << 10, FlushEntries: 5, BackgroundSync: 8 << 10, indexWriteBuffer: 4 << 10}

// crashWorkload adds, aborts, unpins, re-pins and collects, recording
// each operation in m. It stops at the first error, as a process whose
// disk went away would.
func crashWorkload(fsys FS, seed uint64, m *crashModel, opts Options) (*Store, error) {
	ctx := context.Background()
	s, err := Open("repo", opts.withFS(fsys))
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
		if err != nil || !commit {
			return err // not committing: aborted by Close
		}
		roots = append(roots, e.Cid)
		return m.record("add", e.Cid, data, func() error {
			w.Pin(e.Cid)
			return w.Commit()
		})
	}
	unpin := func(i int) error {
		return m.record("unpin", roots[i], nil, func() error { return s.Unpin(ctx, roots[i]) })
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
			return m.record("pin", roots[1], nil, func() error { return s.Pin(ctx, roots[1]) })
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

// checkAfterCrash reopens the store and checks it against the history, for
// a crash that kept the first k file-system operations.
func checkAfterCrash(t *testing.T, fsys FS, m *crashModel, k int, opts Options) {
	t.Helper()
	ctx := context.Background()
	s, err := Open("repo", opts.withFS(fsys))
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
	state, content := m.expected(k)
	for key, st := range state {
		root, _ := cid.Cast([]byte(key))
		pinned, err := s.IsPinned(ctx, root)
		if err != nil {
			t.Fatal(err)
		}
		switch {
		case st == stateUnpinned && pinned:
			t.Fatalf("%s: acknowledged unpin undone by the crash", root)
		case st == statePinned && !pinned:
			t.Fatalf("%s: acknowledged pin lost", root)
		case pinned:
			if got := readUnixFSFile(t, s, root); !bytes.Equal(got, content[key]) {
				t.Fatalf("%s: pinned file differs after the crash", root)
			}
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
// of the workload (every write, fsync, create, rename, remove and
// directory sync, in the pack files and in leveldb alike), dropping
// everything not yet synced, and checks that the store reopens clean with
// every acknowledged add, pin and unpin intact. The torn variant keeps a
// random part of each file's unsynced tail, as a disk that wrote some
// sectors would.
//
// Two models of the cut: "poweroff" snapshots the durable state at
// operation k while the program runs on unaware; "fail" makes operation k
// and every later one fail, so the store's error paths run too. goleveldb
// v1.0.0 has data races on its own error paths (session.reuseFileNum,
// compTriggerWait), so under -race only the first model runs; .ci/run
// runs the second without -race.
func TestCrashAtEveryOperation(t *testing.T) {
	const seed = 42
	models := []string{"poweroff", "poweroff-rewrite"}
	if !raceEnabled {
		models = append(models, "fail", "fail-rewrite")
	}
	start := time.Now()
	total := 0
	for _, model := range models {
		for _, torn := range []bool{false, true} {
			opts := crashStoreOptions
			opts.noPunch = strings.HasSuffix(model, "-rewrite")
			count := crashfs.New()
			s, err := crashWorkload(crashFS{count}, seed, &crashModel{ops: count.Ops}, opts)
			if err != nil {
				t.Fatalf("workload without a crash: %v", err)
			}
			ops := count.Ops() // the workload's own, not Close's
			s.Close()
			for k := 0; k < ops; k++ {
				name := fmt.Sprintf("%s/clean/k=%d", model, k)
				if torn {
					name = fmt.Sprintf("%s/torn/k=%d", model, k)
				}
				t.Run(name, func(t *testing.T) {
					cfs := crashfs.New()
					m := &crashModel{ops: cfs.Ops}
					if strings.HasPrefix(model, "poweroff") {
						cfs.PowerOffAt(k)
					} else {
						cfs.SetHook(crashfs.FailFrom(k, errPowerCut))
					}
					// In the "fail" model the workload usually stops with an
					// error; it may not when op k belongs to one of leveldb's
					// background compactions, whose errors stay inside leveldb.
					s, _ := crashWorkload(crashFS{cfs}, seed, m, opts)
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
					checkAfterCrash(t, crashFS{cfs}, m, k, opts)
				})
				total++
			}
		}
	}
	t.Logf("%d crash points (models %v, clean and torn) in %v", total, models, time.Since(start))
}

// TestFullDiskKeepsWhatWasStored fills the disk partway through the
// workload: the failing operation reports ENOSPC, what was stored before
// stays readable in the running store, and everything acknowledged is
// there after a restart.
func TestFullDiskKeepsWhatWasStored(t *testing.T) {
	const seed = 7
	count := crashfs.New()
	if raceEnabled {
		t.Skip("goleveldb v1.0.0 races on its own write-error paths; .ci/run runs this without -race")
	}
	s, err := crashWorkload(crashFS{count}, seed, &crashModel{ops: count.Ops}, crashStoreOptions)
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
			m := &crashModel{ops: cfs.Ops}
			s, err := crashWorkload(crashFS{cfs}, seed, m, crashStoreOptions)
			if !errors.Is(err, syscall.ENOSPC) {
				t.Fatalf("workload on a full disk: %v, want ENOSPC", err)
			}
			// The running store still serves what it acknowledged.
			state, content := m.expected(cfs.Ops())
			for key, st := range state {
				if st != statePinned {
					continue
				}
				root, _ := cid.Cast([]byte(key))
				if got := readUnixFSFile(t, s, root); !bytes.Equal(got, content[key]) {
					t.Fatalf("%s unreadable on a full disk", root)
				}
			}
			s.Close()
			cfs.SetHook(nil)
			cfs.Crash()
			checkAfterCrash(t, crashFS{cfs}, m, cfs.Ops(), crashStoreOptions)
		})
	}
}

func (o Options) withFS(fsys FS) Options {
	o.FS = fsys
	return o
}

// TestFailedIndexWriteStopsWrites: after an index write fails (its fsync
// here), the store refuses every later write, since goleveldb forgets the
// failed sync and a later one could make the failed batch durable behind
// its back; reads go on, and a reopen settles the index.
func TestFailedIndexWriteStopsWrites(t *testing.T) {
	if raceEnabled {
		t.Skip("goleveldb v1.0.0 races on its own write-error paths; .ci/run runs this without -race")
	}
	ctx := context.Background()
	cfs := crashfs.New()
	s, err := Open("repo", Options{FS: crashFS{cfs}})
	if err != nil {
		t.Fatal(err)
	}
	keep := []byte("stored before the failure")
	if err := s.Put(ctx, rawBlock(keep), keep); err != nil {
		t.Fatal(err)
	}
	failed := false
	cfs.SetHook(func(op crashfs.Op) error {
		if !failed && op.Kind == crashfs.OpSync && strings.HasSuffix(op.Name, ".log") {
			failed = true
			return syscall.EIO
		}
		return nil
	})
	lost := []byte("its index write fails")
	if err := s.Put(ctx, rawBlock(lost), lost); !errors.Is(err, syscall.EIO) {
		t.Fatalf("put whose index sync fails: %v", err)
	}
	cfs.SetHook(nil)
	later := []byte("after the failure")
	if err := s.Put(ctx, rawBlock(later), later); !errors.Is(err, ErrFailed) {
		t.Fatalf("put after a failed index write: %v, want ErrFailed", err)
	}
	if err := s.Unpin(ctx, rawBlock(keep)); !errors.Is(err, ErrFailed) {
		t.Fatalf("unpin after a failed index write: %v, want ErrFailed", err)
	}
	if _, err := s.GC(ctx); !errors.Is(err, ErrFailed) {
		t.Fatalf("gc after a failed index write: %v, want ErrFailed", err)
	}
	if got, err := s.Get(ctx, rawBlock(keep)); err != nil || !bytes.Equal(got, keep) {
		t.Fatalf("read after the failure: %v", err)
	}
	s.Close()
	s, err = Open("repo", Options{FS: crashFS{cfs}})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	if err := s.Put(ctx, rawBlock(later), later); err != nil {
		t.Fatalf("put after reopening: %v", err)
	}
	var problems []Problem
	if _, err := s.Verify(ctx, func(p Problem) { problems = append(problems, p) }); err != nil || len(problems) > 0 {
		t.Fatalf("verify after reopening: %v %v", problems, err)
	}
}
