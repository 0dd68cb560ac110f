package wal

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"testing"

	"auditnet/internal/failpoint"
)

// crashDirEnv marks the child process of TestCrash and names its log.
const crashDirEnv = "AUDITNET_WAL_CRASH_DIR"

// The crash workload: crashBatches batches of 1 to 4 test entries, one
// Sync each, a Release every fifth batch, in segments of crashSegBytes.
const (
	crashBatches  = 24
	crashSegBytes = 1500
)

func crashBatch(b int) (from, to int) {
	for i := 0; i < b; i++ {
		from += 1 + i%4
	}
	return from, from + 1 + b%4
}

// crashPoints are the failpoints of the WAL.
var crashPoints = []string{
	"wal/before-write", "wal/mid-frame", "wal/after-write", "wal/after-sync",
	"wal/segment-before-rename", "wal/release-after-new-segment",
	"wal/release-before-delete", "wal/release-after-delete",
}

// TestCrash runs the crash workload in a child process that a failpoint
// kills, for every failpoint and several hits of each, then reopens the
// log: every entry whose Sync returned is there, in order and intact,
// anything later is whole entries, only released entries are missing,
// and the log takes appends again. A run the failpoint does not reach
// must leave what an uncrashed run leaves.
func TestCrash(t *testing.T) {
	if dir := os.Getenv(crashDirEnv); dir != "" {
		crashChild(t, dir)
		return
	}
	_, total := crashBatch(crashBatches - 1)
	base := runCrash(t, "", total, -1)
	for _, fp := range crashPoints {
		for _, n := range []int{1, 2, 4, 9, 23} {
			spec := fmt.Sprintf("%s:%d", fp, n)
			t.Run(spec, func(t *testing.T) {
				got := runCrash(t, spec, total, base.first)
				if n == 1 && !got.crashed {
					t.Fatalf("the workload never reaches %s", fp)
				}
				if !got.crashed && got != base {
					t.Fatalf("an uncrashed run left %+v, the first one %+v", got, base)
				}
				// Only a crash in the middle of a write tears a frame: always
				// in the first batch (one entry), maybe in later ones.
				switch {
				case fp == "wal/mid-frame" && n == 1 && !got.warned:
					t.Fatal("half of a one-entry batch left no torn tail")
				case fp != "wal/mid-frame" && got.warned:
					t.Fatalf("a crash at %s left a torn tail", fp)
				}
			})
		}
	}
}

// crashResult is what a run left: whether the failpoint killed it,
// the run of entries [first, end) the log held on reopening, and whether
// reopening truncated a torn tail.
type crashResult struct {
	crashed    bool
	first, end int
	warned     bool
}

// runCrash runs the workload in a child with failpoint spec armed and
// checks what it left; baseFirst, when not -1, is the first entry an
// uncrashed run keeps, which bounds what a crashed run may release.
func runCrash(t *testing.T, spec string, total, baseFirst int) crashResult {
	t.Helper()
	dir := t.TempDir()
	cmd := exec.Command(os.Args[0], "-test.run", "^TestCrash$", "-test.count=1")
	// The race detector waits a second at a normal exit unless told not to.
	cmd.Env = append(os.Environ(), crashDirEnv+"="+dir, failpoint.Env+"="+spec, "GORACE=atexit_sleep_ms=0")
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	var res crashResult
	var ee *exec.ExitError
	switch {
	case err == nil:
	case errors.As(err, &ee) && ee.ExitCode() == failpoint.ExitCode && spec != "":
		res.crashed = true
	default:
		t.Fatalf("child: %v\nstdout: %s\nstderr: %s", err, out, stderr.Bytes())
	}
	synced, released := parseCrashOutput(t, out)

	var logs logRecords
	w, es, err := Open(Config{Dir: dir, SegmentBytes: crashSegBytes, Logger: logs.logger()})
	if err != nil {
		t.Fatalf("reopen after %q: %v", spec, err)
	}
	res.warned = len(logs.warnings(t)) > 0
	res.first, res.end = synced, synced
	if len(es) > 0 {
		res.first = entryIndex(t, es[0])
		res.end = res.first + len(es)
	}
	sameEntries(t, es, testEntries(res.first, res.end))
	if res.end < synced || res.end > total {
		t.Fatalf("%d entries synced of %d, the log holds up to %d", synced, total, res.end)
	}
	if res.first > 0 && testEntry(res.first-1).Height > released {
		t.Fatalf("entry %d (height %d) is missing, released up to height %d", res.first-1, testEntry(res.first-1).Height, released)
	}
	if baseFirst >= 0 && res.first > baseFirst {
		t.Fatalf("the log starts at entry %d, an uncrashed run keeps %d on", res.first, baseFirst)
	}
	for _, name := range segmentFiles(t, dir) {
		if _, ok := parseSegmentName(name); !ok {
			t.Fatalf("%s left in the log", name)
		}
	}
	// The log goes on: the rest of the workload, then a reopen.
	if res.end < total {
		appendSync(t, w, testEntries(res.end, total)...)
	}
	mustClose(t, w)
	_, es = mustOpen(t, Config{Dir: dir})
	sameEntries(t, es, testEntries(res.first, total))
	return res
}

// parseCrashOutput reads the child's progress lines: the entries synced
// and the highest height a Release was asked for.
func parseCrashOutput(t *testing.T, out []byte) (synced int, released uint64) {
	t.Helper()
	sc := bufio.NewScanner(bytes.NewReader(out))
	for sc.Scan() {
		what, n, ok := strings.Cut(sc.Text(), " ")
		if !ok || (what != "synced" && what != "release") {
			continue
		}
		v, err := strconv.ParseUint(n, 10, 64)
		if err != nil {
			t.Fatalf("child printed %q", sc.Text())
		}
		if what == "synced" {
			synced = int(v)
		} else {
			released = v
		}
	}
	return synced, released
}

// crashChild is the child's workload. It prints "synced N" once the Sync
// of entries before N returned and "release H" before it releases H.
func crashChild(t *testing.T, dir string) {
	w, _, err := Open(Config{Dir: dir, SegmentBytes: crashSegBytes})
	if err != nil {
		t.Fatal(err)
	}
	for b := 0; b < crashBatches; b++ {
		from, to := crashBatch(b)
		if err := w.Append(testEntries(from, to)...); err != nil {
			t.Fatal(err)
		}
		if err := w.Sync(); err != nil {
			t.Fatal(err)
		}
		fmt.Printf("synced %d\n", to)
		if b%5 == 4 {
			h := testEntry(from).Height - 1
			fmt.Printf("release %d\n", h)
			if err := w.Release(h); err != nil {
				t.Fatal(err)
			}
		}
	}
	if err := w.Close(); err != nil {
		t.Fatal(err)
	}
}
