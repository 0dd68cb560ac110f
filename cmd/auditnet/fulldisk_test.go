package main

import (
	"fmt"
	"math/rand/v2"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
)

// TestFullDiskOnARealFileSystem fills a small tmpfs with adds until the
// disk is full: the failing add says so in one line and exits non-zero,
// everything added before stays readable, and `repo verify` passes, both
// while the disk is full and after space is freed. It needs the right to
// mount a tmpfs (root, as in CI) and is skipped otherwise.
func TestFullDiskOnARealFileSystem(t *testing.T) {
	mnt := t.TempDir()
	if out, err := exec.Command("mount", "-t", "tmpfs", "-o", "size=64m", "tmpfs", mnt).CombinedOutput(); err != nil {
		t.Skipf("cannot mount a tmpfs here: %v %s", err, out)
	}
	t.Cleanup(func() { exec.Command("umount", mnt).Run() })
	repo := filepath.Join(mnt, "repo")
	r := "--repo=" + repo
	mustCLI(t, r, "init")
	src := t.TempDir() // on the real disk
	acked := map[string][]byte{}
	full := false
	for i := 0; i < 60 && !full; i++ {
		data := make([]byte, 3<<20)
		rand.NewChaCha8([32]byte{byte(i)}).Read(data)
		path := filepath.Join(src, fmt.Sprint(i))
		if err := os.WriteFile(path, data, 0o644); err != nil {
			t.Fatal(err)
		}
		out, errOut, code := cli(t, nil, r, "add", "-Q", path)
		if code == 0 {
			acked[strings.TrimSpace(out)] = data
			continue
		}
		if !strings.Contains(errOut, "no space left on device") || !strings.Contains(errOut, "the disk is full") ||
			strings.Count(strings.TrimSpace(errOut), "\n") != 0 {
			t.Fatalf("add on a full disk: exit %d, stderr %q", code, errOut)
		}
		full = true
	}
	if !full {
		t.Fatal("the disk never filled up")
	}
	check := func() {
		t.Helper()
		if out := mustCLI(t, r, "repo", "verify"); !strings.Contains(out, "no problems") {
			t.Fatalf("verify: %s", out)
		}
		for c, data := range acked {
			if got := mustCLI(t, r, "cat", c); got != string(data) {
				t.Fatalf("%s changed", c)
			}
		}
	}
	check()
	// Free space by removing the first file and collecting: adds work again.
	for c := range acked {
		mustCLI(t, r, "pin", "rm", c)
		delete(acked, c)
		break
	}
	mustCLI(t, r, "repo", "gc")
	check()
	var st syscall.Statfs_t
	if err := syscall.Statfs(mnt, &st); err != nil {
		t.Fatal(err)
	}
	small := filepath.Join(src, "small")
	if err := os.WriteFile(small, []byte("fits now"), 0o644); err != nil {
		t.Fatal(err)
	}
	c := strings.TrimSpace(mustCLI(t, r, "add", "-Q", small))
	acked[c] = []byte("fits now")
	check()
	t.Logf("%d files acknowledged before the disk filled; %d bytes free after gc", len(acked), st.Bavail*uint64(st.Bsize))
}
