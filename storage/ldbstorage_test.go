package storage

import (
	"errors"
	"fmt"
	"io/fs"
	"maps"
	"math/rand/v2"
	"os"
	"path/filepath"
	"runtime/debug"
	"slices"
	"strings"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"auditnet/storage/internal/crashfs"

	"github.com/syndtr/goleveldb/leveldb"
	"github.com/syndtr/goleveldb/leveldb/filter"
	"github.com/syndtr/goleveldb/leveldb/opt"
	lstorage "github.com/syndtr/goleveldb/leveldb/storage"
	"github.com/syndtr/goleveldb/leveldb/util"
)

// crashFS adapts *crashfs.FS to FS.
type crashFS struct{ *crashfs.FS }

// OpenFile implements FS.
func (c crashFS) OpenFile(name string, flag int, perm fs.FileMode) (File, error) {
	f, err := c.FS.OpenFile(name, flag, perm)
	if err != nil {
		return nil, err
	}
	return f, nil
}

// errCrash is the fault injected at a failpoint: the disk is gone from then
// on, and the machine loses power when the workload ends.
var errCrash = errors.New("simulated crash")

// ldbTestWriteBuffer is small so that a short workload flushes memtables,
// writes tables, compacts and rewrites the manifest.
const ldbTestWriteBuffer = 64 << 10

// ldbTestOptions are the options the store opens its index with.
func ldbTestOptions() *opt.Options {
	return &opt.Options{
		Strict:      opt.DefaultStrict,
		WriteBuffer: ldbTestWriteBuffer,
		Filter:      filter.NewBloomFilter(10),
	}
}

// ldbTestDB is a goleveldb DB on an ldbStorage.
type ldbTestDB struct {
	*leveldb.DB
	stor *ldbStorage
}

func openLDBTestDB(fsys FS, dir string) (*ldbTestDB, error) {
	stor, err := newLevelDBStorage(fsys, dir, nil)
	if err != nil {
		return nil, err
	}
	db, err := leveldb.Open(stor, ldbTestOptions())
	if err != nil {
		stor.Close()
		return nil, fmt.Errorf("open leveldb: %w", err)
	}
	return &ldbTestDB{DB: db, stor: stor}, nil
}

// close closes the DB and its storage, returning the DB's error.
func (db *ldbTestDB) close() error {
	err := db.DB.Close()
	db.stor.Close()
	return err
}

// dump returns every key and value in the DB.
func (db *ldbTestDB) dump() (map[string]string, error) {
	got := map[string]string{}
	it := db.NewIterator(nil, nil)
	for it.Next() {
		got[string(it.Key())] = string(it.Value())
	}
	err := it.Error()
	it.Release()
	return got, err
}

func TestLevelDBStorageOSFS(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "index")
	steps := makeLDBWorkload(1, 300)
	db, err := openLDBTestDB(OSFS{}, dir)
	if err != nil {
		t.Fatal(err)
	}
	for i, st := range steps {
		// Unsynced: this test is about the round trip, and a synced
		// write costs an fsync of the real disk.
		if err := st.applyOpts(db.DB, &opt.WriteOptions{}); err != nil {
			t.Fatalf("step %d: %v", i, err)
		}
	}
	if err := db.close(); err != nil {
		t.Fatal(err)
	}

	names, err := OSFS{}.ReadDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	var tables int
	for _, name := range names {
		if strings.HasSuffix(name, ".ldb") {
			tables++
		}
		if strings.HasSuffix(name, ".tmp") || name == "LOCK" || name == "LOG" {
			t.Errorf("unexpected file %s in %q", name, names)
		}
	}
	if tables == 0 {
		t.Errorf("no table files in %q; the workload should flush memtables", names)
	}
	current, err := os.ReadFile(filepath.Join(dir, currentName))
	if err != nil {
		t.Fatal(err)
	}
	if !strings.HasPrefix(string(current), "MANIFEST-") || !strings.HasSuffix(string(current), "\n") {
		t.Errorf("CURRENT = %q, want a manifest name and a newline", current)
	}

	db, err = openLDBTestDB(OSFS{}, dir)
	if err != nil {
		t.Fatal(err)
	}
	defer db.close()
	got, err := db.dump()
	if err != nil {
		t.Fatal(err)
	}
	if want := ldbStateAfter(steps); !maps.Equal(got, want) {
		t.Errorf("after reopen: %s", diffLDBStates(got, want))
	}
}

func TestParseLevelDBName(t *testing.T) {
	tests := []struct {
		name   string
		want   lstorage.FileDesc
		wantOk bool
	}{
		{"MANIFEST-000001", lstorage.FileDesc{Type: lstorage.TypeManifest, Num: 1}, true},
		{"000012.log", lstorage.FileDesc{Type: lstorage.TypeJournal, Num: 12}, true},
		{"000123.ldb", lstorage.FileDesc{Type: lstorage.TypeTable, Num: 123}, true},
		{"000123.sst", lstorage.FileDesc{Type: lstorage.TypeTable, Num: 123}, true},
		{"1234567.tmp", lstorage.FileDesc{Type: lstorage.TypeTemp, Num: 1234567}, true},
		{"CURRENT", lstorage.FileDesc{}, false},
		{"CURRENT.tmp", lstorage.FileDesc{}, false},
		{"LOCK", lstorage.FileDesc{}, false},
		{"LOG", lstorage.FileDesc{}, false},
		{"MANIFEST-", lstorage.FileDesc{}, false},
		{"MANIFEST-01x", lstorage.FileDesc{}, false},
		{"+1.log", lstorage.FileDesc{}, false},
		{".log", lstorage.FileDesc{}, false},
		{"000001.log.bak", lstorage.FileDesc{}, false},
		{"000001.txt", lstorage.FileDesc{}, false},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			got, ok := parseLevelDBName(tc.name)
			if ok != tc.wantOk || (ok && got != tc.want) {
				t.Errorf("parseLevelDBName(%q) = %v, %v; want %v, %v", tc.name, got, ok, tc.want, tc.wantOk)
			}
			if ok && tc.want.Type != lstorage.TypeTable && got.String() != tc.name {
				t.Errorf("%v.String() = %q, want %q", got, got.String(), tc.name)
			}
		})
	}
}

// newCrashLDBStorage returns an ldbStorage on a fresh crashfs in "db".
func newCrashLDBStorage(t *testing.T) (*crashfs.FS, *ldbStorage) {
	t.Helper()
	cfs := crashfs.New()
	s, err := newLevelDBStorage(crashFS{cfs}, "db", nil)
	if err != nil {
		t.Fatal(err)
	}
	return cfs, s
}

// createLDBFile makes a goleveldb file with content through s, syncing it if
// asked.
func createLDBFile(t *testing.T, s *ldbStorage, fd lstorage.FileDesc, content string, sync bool) {
	t.Helper()
	w, err := s.Create(fd)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := w.Write([]byte(content)); err != nil {
		t.Fatal(err)
	}
	if sync {
		if err := w.Sync(); err != nil {
			t.Fatal(err)
		}
	}
	if err := w.Close(); err != nil {
		t.Fatal(err)
	}
}

func TestLevelDBStorageMeta(t *testing.T) {
	manifest := lstorage.FileDesc{Type: lstorage.TypeManifest, Num: 3}
	tests := []struct {
		name    string
		setup   func(*testing.T, *crashfs.FS, *ldbStorage)
		want    lstorage.FileDesc
		wantErr func(error) bool
	}{
		{
			name:    "empty dir",
			setup:   func(*testing.T, *crashfs.FS, *ldbStorage) {},
			wantErr: os.IsNotExist,
		},
		{
			name: "set",
			setup: func(t *testing.T, _ *crashfs.FS, s *ldbStorage) {
				createLDBFile(t, s, manifest, "records", false)
				if err := s.SetMeta(manifest); err != nil {
					t.Fatal(err)
				}
			},
			want: manifest,
		},
		{
			name: "set survives a crash with the manifest content",
			setup: func(t *testing.T, cfs *crashfs.FS, s *ldbStorage) {
				createLDBFile(t, s, manifest, "records", false) // not synced
				if err := s.SetMeta(manifest); err != nil {
					t.Fatal(err)
				}
				cfs.Crash()
				b, err := readFile(s.fsys, "db/MANIFEST-000003")
				if err != nil || string(b) != "records" {
					t.Errorf("manifest after crash = %q, %v; want %q", b, err, "records")
				}
			},
			want: manifest,
		},
		{
			name: "manifest missing",
			setup: func(t *testing.T, _ *crashfs.FS, s *ldbStorage) {
				if err := WriteFileAtomic(s.fsys, "db/CURRENT", []byte("MANIFEST-000009\n"), 0o644); err != nil {
					t.Fatal(err)
				}
			},
			wantErr: os.IsNotExist,
		},
		{
			name: "no newline",
			setup: func(t *testing.T, _ *crashfs.FS, s *ldbStorage) {
				createLDBFile(t, s, manifest, "records", true)
				if err := WriteFileAtomic(s.fsys, "db/CURRENT", []byte("MANIFEST-000003"), 0o644); err != nil {
					t.Fatal(err)
				}
			},
			wantErr: isLDBCorrupted,
		},
		{
			name: "not a manifest",
			setup: func(t *testing.T, _ *crashfs.FS, s *ldbStorage) {
				createLDBFile(t, s, lstorage.FileDesc{Type: lstorage.TypeJournal, Num: 3}, "", true)
				if err := WriteFileAtomic(s.fsys, "db/CURRENT", []byte("000003.log\n"), 0o644); err != nil {
					t.Fatal(err)
				}
			},
			wantErr: isLDBCorrupted,
		},
		{
			name: "empty",
			setup: func(t *testing.T, _ *crashfs.FS, s *ldbStorage) {
				if err := WriteFileAtomic(s.fsys, "db/CURRENT", nil, 0o644); err != nil {
					t.Fatal(err)
				}
			},
			wantErr: isLDBCorrupted,
		},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			cfs, s := newCrashLDBStorage(t)
			tc.setup(t, cfs, s)
			got, err := s.GetMeta()
			if tc.wantErr != nil {
				if err == nil || !tc.wantErr(err) {
					t.Fatalf("GetMeta() err = %v (%T)", err, err)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if got != tc.want {
				t.Errorf("GetMeta() = %v, want %v", got, tc.want)
			}
		})
	}
}

func isLDBCorrupted(err error) bool {
	var ce *lstorage.ErrCorrupted
	return errors.As(err, &ce)
}

func TestLevelDBStorageDurability(t *testing.T) {
	journal := lstorage.FileDesc{Type: lstorage.TypeJournal, Num: 5}
	temp := lstorage.FileDesc{Type: lstorage.TypeTemp, Num: 6}
	table := lstorage.FileDesc{Type: lstorage.TypeTable, Num: 6}
	tests := []struct {
		name string
		op   func(*testing.T, *ldbStorage)
		want []lstorage.FileDesc
	}{
		{
			name: "unsynced file lost",
			op:   func(t *testing.T, s *ldbStorage) { createLDBFile(t, s, journal, "data", false) },
		},
		{
			name: "first sync makes the name durable",
			op:   func(t *testing.T, s *ldbStorage) { createLDBFile(t, s, journal, "data", true) },
			want: []lstorage.FileDesc{journal},
		},
		{
			name: "rename is durable",
			op: func(t *testing.T, s *ldbStorage) {
				createLDBFile(t, s, temp, "data", true)
				if err := s.Rename(temp, table); err != nil {
					t.Fatal(err)
				}
			},
			want: []lstorage.FileDesc{table},
		},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			cfs, s := newCrashLDBStorage(t)
			tc.op(t, s)
			cfs.Crash()
			got, err := s.List(lstorage.TypeAll)
			if err != nil {
				t.Fatal(err)
			}
			if !slices.Equal(got, tc.want) {
				t.Fatalf("after crash List() = %v, want %v", got, tc.want)
			}
			for _, fd := range got {
				r, err := s.Open(fd)
				if err != nil {
					t.Fatal(err)
				}
				b := make([]byte, 8)
				n, _ := r.ReadAt(b, 0)
				r.Close()
				if string(b[:n]) != "data" {
					t.Errorf("%v after crash = %q, want %q", fd, b[:n], "data")
				}
			}
		})
	}
}

func TestLevelDBStorageMisc(t *testing.T) {
	_, s := newCrashLDBStorage(t)
	l, err := s.Lock()
	if err != nil {
		t.Fatal(err)
	}
	if _, err := s.Lock(); !errors.Is(err, lstorage.ErrLocked) {
		t.Errorf("second Lock: err = %v, want ErrLocked", err)
	}
	l.Unlock()
	l2, err := s.Lock()
	if err != nil {
		t.Fatalf("Lock after Unlock: %v", err)
	}
	l.Unlock() // a stale Unlock must not release l2
	if _, err := s.Lock(); !errors.Is(err, lstorage.ErrLocked) {
		t.Errorf("Lock after stale Unlock: err = %v, want ErrLocked", err)
	}
	l2.Unlock()

	old := lstorage.FileDesc{Type: lstorage.TypeTable, Num: 7}
	if err := WriteFileAtomic(s.fsys, "db/000007.sst", []byte("old"), 0o644); err != nil {
		t.Fatal(err)
	}
	r, err := s.Open(old)
	if err != nil {
		t.Fatalf("open table by its old name: %v", err)
	}
	r.Close()
	if err := s.Remove(old); err != nil {
		t.Fatalf("remove table by its old name: %v", err)
	}
	if _, err := s.Open(old); !os.IsNotExist(err) {
		t.Errorf("open removed table: err = %v, want not exist", err)
	}
	if err := s.Remove(old); err == nil {
		t.Error("remove of a missing table succeeded")
	}
	if _, err := s.Create(lstorage.FileDesc{Type: lstorage.TypeJournal, Num: -1}); !errors.Is(err, lstorage.ErrInvalidFile) {
		t.Errorf("create with a bad descriptor: err = %v, want ErrInvalidFile", err)
	}

	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	if err := s.Close(); err != nil {
		t.Errorf("second Close: %v", err)
	}
	if _, err := s.List(lstorage.TypeAll); !errors.Is(err, lstorage.ErrClosed) {
		t.Errorf("List after Close: err = %v, want ErrClosed", err)
	}
}

// ldbStep is one synced write of a workload: a Put, or a Delete if del.
type ldbStep struct {
	key   string
	value string
	del   bool
}

// apply applies the step as a synced write.
func (st ldbStep) apply(db *leveldb.DB) error { return st.applyOpts(db, &opt.WriteOptions{Sync: true}) }

// applyOpts applies the step with the given write options.
func (st ldbStep) applyOpts(db *leveldb.DB, wo *opt.WriteOptions) error {
	if st.del {
		return db.Delete([]byte(st.key), wo)
	}
	return db.Put([]byte(st.key), []byte(st.value), wo)
}

// makeLDBWorkload returns n steps over about n/2 keys, so that keys are
// overwritten and deleted, with values from a few bytes to 16 KiB, some
// compressible and some not. Every value is unique.
func makeLDBWorkload(seed uint64, n int) []ldbStep {
	rng := rand.New(rand.NewPCG(seed, 0))
	sizes := []int{8, 100, 700, 3000, 16 << 10}
	steps := make([]ldbStep, n)
	for i := range steps {
		key := fmt.Sprintf("key-%05d", rng.IntN(n/2+1))
		if rng.IntN(10) == 0 {
			steps[i] = ldbStep{key: key, del: true}
			continue
		}
		b := make([]byte, sizes[rng.IntN(len(sizes))])
		if rng.IntN(2) == 0 {
			for j := range b {
				b[j] = byte(rng.UintN(256))
			}
		} else {
			for j := range b {
				b[j] = "auditnet"[j%8]
			}
		}
		steps[i] = ldbStep{key: key, value: fmt.Sprintf("value-%d:", i) + string(b)}
	}
	return steps
}

// ldbStateAfter returns the DB content after the steps.
func ldbStateAfter(steps []ldbStep) map[string]string {
	m := map[string]string{}
	for _, st := range steps {
		if st.del {
			delete(m, st.key)
		} else {
			m[st.key] = st.value
		}
	}
	return m
}

// diffLDBStates describes how got differs from want, for a failure message.
func diffLDBStates(got, want map[string]string) string {
	short := func(v string, ok bool) string {
		if !ok {
			return "<absent>"
		}
		if i := strings.IndexByte(v, ':'); i >= 0 {
			return fmt.Sprintf("%s (%d bytes)", v[:i], len(v))
		}
		return fmt.Sprintf("%.20q", v)
	}
	var lines []string
	for _, k := range slices.Sorted(maps.Keys(ldbStateUnion(got, want))) {
		g, gok := got[k]
		w, wok := want[k]
		if g != w || gok != wok {
			lines = append(lines, fmt.Sprintf("%s: got %s, want %s", k, short(g, gok), short(w, wok)))
		}
	}
	if len(lines) > 5 {
		lines = append(lines[:5], fmt.Sprintf("and %d more", len(lines)-5))
	}
	return strings.Join(lines, "; ")
}

func ldbStateUnion(a, b map[string]string) map[string]string {
	u := maps.Clone(a)
	maps.Copy(u, b)
	return u
}

// runLDBWorkload applies the steps to a DB on fsys until one fails or stop
// reports that the machine has lost power. It closes and reopens the DB
// halfway, so that recovery (journal replay, a new manifest, CURRENT
// replaced) has failpoints too. It returns how many steps were acknowledged
// (returned nil before the power failed; the step in flight when it failed
// may or may not be durable) and the error that ended the workload.
func runLDBWorkload(fsys FS, steps []ldbStep, stop func() bool) (acked int, err error) {
	half := len(steps) / 2
	acked, err = runLDBSession(fsys, steps, 0, half, stop)
	if err != nil {
		return acked, err
	}
	return runLDBSession(fsys, steps, half, len(steps), stop)
}

// runLDBSession opens the DB, applies steps[from:to] as runLDBWorkload
// does, and closes the DB. It returns the number of steps acknowledged so
// far, counting the from before this session.
func runLDBSession(fsys FS, steps []ldbStep, from, to int, stop func() bool) (acked int, err error) {
	if stop() {
		return from, errCrash
	}
	db, err := openLDBTestDB(fsys, "db")
	if err != nil {
		return from, err
	}
	for i := from; i < to; i++ {
		if stop() {
			db.close()
			return i, errCrash
		}
		if err := steps[i].apply(db.DB); err != nil {
			db.close()
			return i, fmt.Errorf("step %d: %w", i, err)
		}
		if stop() {
			db.close()
			return i, errCrash
		}
	}
	if err := db.close(); err != nil {
		return to, fmt.Errorf("close leveldb: %w", err)
	}
	return to, nil
}

// neverStop is the stop function of a machine that keeps power.
func neverStop() bool { return false }

// checkLDBRecovery reopens the DB on the rebooted cfs and checks that it holds
// exactly the acknowledged steps, plus perhaps the one in flight. It then
// checks that the recovered DB is itself crash safe: a synced write after
// recovery survives another crash.
func checkLDBRecovery(cfs *crashfs.FS, steps []ldbStep, acked int) error {
	cfs.SetHook(nil)
	db, err := openLDBTestDB(crashFS{cfs}, "db")
	if err != nil {
		return fmt.Errorf("reopen: %w", err)
	}
	got, err := db.dump()
	if err != nil {
		db.close()
		return fmt.Errorf("read after reopen: %w", err)
	}
	want := ldbStateAfter(steps[:acked])
	if !maps.Equal(got, want) {
		if acked == len(steps) || !maps.Equal(got, ldbStateAfter(steps[:acked+1])) {
			db.close()
			return fmt.Errorf("after recovery, %d steps acknowledged: %s", acked, diffLDBStates(got, want))
		}
	}

	marker := ldbStep{key: "marker", value: "after recovery"}
	err = marker.apply(db.DB)
	db.close()
	if err != nil {
		return fmt.Errorf("write after recovery: %w", err)
	}
	cfs.Crash()
	again, err := reopenLDBAndDump(cfs)
	if err != nil {
		return fmt.Errorf("after a crash following recovery: %w", err)
	}
	got[marker.key] = marker.value
	if !maps.Equal(again, got) {
		return fmt.Errorf("after a crash following recovery: %s", diffLDBStates(again, got))
	}
	return nil
}

func reopenLDBAndDump(cfs *crashfs.FS) (map[string]string, error) {
	db, err := openLDBTestDB(crashFS{cfs}, "db")
	if err != nil {
		return nil, fmt.Errorf("reopen: %w", err)
	}
	defer db.close()
	got, err := db.dump()
	if err != nil {
		return nil, fmt.Errorf("read after reopen: %w", err)
	}
	return got, nil
}

// ldbCrashSteps is the size of the crash tests' workload: enough to
// flush several memtables and compact level 0.
const ldbCrashSteps = 200

// ldbTornSeed seeds the torn-write lengths of the CrashTorn tests.
const ldbTornSeed = 1

// raceEnabled reports whether the test binary was built with -race.
var raceEnabled = func() bool {
	bi, ok := debug.ReadBuildInfo()
	if !ok {
		return false
	}
	for _, s := range bi.Settings {
		if s.Key == "-race" {
			return s.Value == "true"
		}
	}
	return false
}()

// goleveldbErrorPathRaces explains why tests that make goleveldb's
// compactions fail do not run under -race.
const goleveldbErrorPathRaces = "goleveldb v1.0.0 has data races on its compaction error paths " +
	"(session.reuseFileNum reads stNextFileNum without atomics, fixed upstream in 7581283; " +
	"compTriggerWait closes its ack channel while a compaction goroutine may still send on it, " +
	"relying on recover, still so upstream); run without -race to include it"

// countLDBOps runs the workload without faults and returns the number of
// mutating operations it makes.
func countLDBOps(t *testing.T, steps []ldbStep) int {
	t.Helper()
	cfs := crashfs.New()
	acked, err := runLDBWorkload(crashFS{cfs}, steps, neverStop)
	if err != nil || acked != len(steps) {
		t.Fatalf("workload without faults: %d of %d steps, err %v", acked, len(steps), err)
	}
	return cfs.Ops()
}

// ldbCrashModel is how the machine dies at the k-th mutating operation.
type ldbCrashModel struct {
	name string
	// arm prepares cfs and returns the workload's stop function.
	arm func(cfs *crashfs.FS, k int) (stop func() bool)
	// failsOps is set if goleveldb sees failing operations, and so runs
	// its error paths.
	failsOps bool
}

var ldbCrashModels = []ldbCrashModel{
	{
		// The power fails before op k; goleveldb runs on unaware, and the
		// workload stops at the next step boundary.
		name: "power-off",
		arm: func(cfs *crashfs.FS, k int) func() bool {
			var off atomic.Bool
			cfs.PowerOffAt(k)
			cfs.SetHook(func(op crashfs.Op) error {
				if op.Index >= k {
					off.Store(true)
				}
				return nil
			})
			return off.Load
		},
	},
	{
		// The disk fails from op k on; the workload runs until a write
		// fails, then the power fails.
		name:     "fail-from",
		arm:      func(cfs *crashfs.FS, k int) func() bool { cfs.SetHook(crashfs.FailFrom(k, errCrash)); return neverStop },
		failsOps: true,
	},
}

// ldbCrashMode is how the reboot treats unsynced data.
type ldbCrashMode struct {
	name  string
	crash func(cfs *crashfs.FS, k int)
}

var ldbCrashModes = []ldbCrashMode{
	{name: "clean", crash: func(cfs *crashfs.FS, _ int) { cfs.Crash() }},
	{name: "torn", crash: func(cfs *crashfs.FS, k int) {
		rng := rand.New(rand.NewPCG(ldbTornSeed, uint64(k)))
		cfs.CrashTorn(func(extra int) int { return rng.IntN(extra + 1) })
	}},
}

func TestLevelDBCrashAtEveryOp(t *testing.T) {
	steps := makeLDBWorkload(2, ldbCrashSteps)
	ops := countLDBOps(t, steps)
	stride := 1
	if testing.Short() {
		stride = 17
	}
	t.Logf("workload: %d steps, %d mutating ops, stride %d", len(steps), ops, stride)
	for _, model := range ldbCrashModels {
		for _, mode := range ldbCrashModes {
			t.Run(model.name+"/"+mode.name, func(t *testing.T) {
				if model.failsOps && raceEnabled {
					t.Skip(goleveldbErrorPathRaces)
				}
				start := time.Now()
				t.Cleanup(func() { t.Logf("%d failpoints in %v", (ops+stride-1)/stride, time.Since(start)) })
				var failures atomic.Int32
				for k := 0; k < ops; k += stride {
					t.Run(fmt.Sprintf("k=%d", k), func(t *testing.T) {
						t.Parallel()
						if failures.Load() >= 10 {
							t.Skip("too many failures")
						}
						cfs := crashfs.New()
						stop := model.arm(cfs, k)
						acked, werr := runLDBWorkload(crashFS{cfs}, steps, stop)
						mode.crash(cfs, k)
						if err := checkLDBRecovery(cfs, steps, acked); err != nil {
							failures.Add(1)
							t.Errorf("crash at op %d of %d (%s, %s, torn seed %d; workload ended by: %v): %v",
								k, ops, model.name, mode.name, ldbTornSeed, werr, err)
						}
					})
				}
			})
		}
	}
}

// ldbNoSpaceFrom returns a hook that fails every write from the n-th operation
// on with ENOSPC.
func ldbNoSpaceFrom(n int) func(crashfs.Op) error {
	return func(op crashfs.Op) error {
		if op.Kind == crashfs.OpWrite && op.Index >= n {
			return syscall.ENOSPC
		}
		return nil
	}
}

func TestLevelDBENOSPC(t *testing.T) {
	steps := makeLDBWorkload(3, ldbCrashSteps)
	const half = ldbCrashSteps / 2
	cfs := crashfs.New()
	db, err := openLDBTestDB(crashFS{cfs}, "db")
	if err != nil {
		t.Fatal(err)
	}
	for i, st := range steps[:half] {
		if err := st.apply(db.DB); err != nil {
			t.Fatalf("step %d: %v", i, err)
		}
	}
	// Flush the memtable and let compactions finish, so that the disk fills
	// up under the next Put and not under a compaction.
	if err := db.CompactRange(util.Range{}); err != nil {
		t.Fatal(err)
	}
	cfs.SetHook(ldbNoSpaceFrom(cfs.Ops()))
	for i, st := range steps[half : half+3] {
		err := st.apply(db.DB)
		if !errors.Is(err, syscall.ENOSPC) {
			t.Errorf("step %d on a full disk: err = %v, want an error wrapping ENOSPC", half+i, err)
		}
		if i == 0 {
			t.Logf("put on a full disk: %v (%T)", err, err)
		}
	}
	db.close()
	cfs.Crash()
	if err := checkLDBRecovery(cfs, steps, half); err != nil {
		t.Error(err)
	}
}

func TestLevelDBENOSPCAnywhere(t *testing.T) {
	if raceEnabled {
		t.Skip(goleveldbErrorPathRaces)
	}
	steps := makeLDBWorkload(3, ldbCrashSteps)
	ops := countLDBOps(t, steps)
	for _, frac := range []int{10, 25, 50, 75, 90} {
		k := ops * frac / 100
		t.Run(fmt.Sprintf("from op %d", k), func(t *testing.T) {
			cfs := crashfs.New()
			cfs.SetHook(ldbNoSpaceFrom(k))
			acked, err := runLDBWorkload(crashFS{cfs}, steps, neverStop)
			if acked == len(steps) {
				t.Fatalf("all %d steps acknowledged despite ENOSPC from op %d", acked, k)
			}
			if !errors.Is(err, syscall.ENOSPC) {
				t.Errorf("step %d failed with %v, want an error wrapping ENOSPC", acked, err)
			}
			cfs.Crash()
			if err := checkLDBRecovery(cfs, steps, acked); err != nil {
				t.Error(err)
			}
		})
	}
}
