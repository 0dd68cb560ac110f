package main

import (
	"bytes"
	"fmt"
	"math/rand/v2"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"
)

// TestMain lets the test binary act as the auditnet command, so tests can
// run it as a separate process and kill it.
func TestMain(m *testing.M) {
	if os.Getenv("AUDITNET_TEST_RUN_MAIN") == "1" {
		os.Exit(run(os.Args[1:], os.Stdin, os.Stdout, os.Stderr))
	}
	os.Exit(m.Run())
}

// startCLI starts the command as a child process.
func startCLI(t *testing.T, stdout *bytes.Buffer, args ...string) *exec.Cmd {
	t.Helper()
	cmd := exec.Command(os.Args[0], args...)
	cmd.Env = append(os.Environ(), "AUDITNET_TEST_RUN_MAIN=1")
	cmd.Stdout = stdout
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	return cmd
}

// packBytes is the total size of the repo's pack files.
func packBytes(repo string) int64 {
	names, _ := filepath.Glob(filepath.Join(repo, "blocks", "packs", "*.pack"))
	var n int64
	for _, name := range names {
		if fi, err := os.Stat(name); err == nil {
			n += fi.Size()
		}
	}
	return n
}

// killWhen SIGKILLs cmd once its packs grew by more than grow bytes (or
// right away when grow < 0), unless it exits first; it reports whether the
// process ran to completion.
func killWhen(t *testing.T, cmd *exec.Cmd, repo string, grow int64) bool {
	t.Helper()
	exited := make(chan error, 1)
	go func() { exited <- cmd.Wait() }()
	base := packBytes(repo)
	tick := time.NewTicker(200 * time.Microsecond)
	defer tick.Stop()
	deadline := time.After(2 * time.Minute)
	for {
		select {
		case err := <-exited:
			return err == nil
		case <-deadline:
			cmd.Process.Kill()
			<-exited
			t.Fatal("child neither finished nor grew its packs in 2 minutes")
		case <-tick.C:
			if grow < 0 || packBytes(repo)-base > grow {
				cmd.Process.Signal(syscall.SIGKILL)
				err := <-exited
				return err == nil
			}
		}
	}
}

// TestKill9DuringAddsAndGC kills real auditnet processes with SIGKILL in
// the middle of adds and garbage collections. Every CID an add printed
// must survive, byte for byte, and `repo verify` must pass. (SIGKILL keeps
// the page cache, so this checks the process-crash paths: torn tails, lost
// index writes, half-done compactions; power loss is covered by the
// storage package's crash-at-every-operation test.)
func TestKill9DuringAddsAndGC(t *testing.T) {
	repo := filepath.Join(t.TempDir(), "repo")
	r := "--repo=" + repo
	mustCLI(t, r, "init")
	seed := uint64(time.Now().UnixNano())
	if s := os.Getenv("AUDITNET_KILL_SEED"); s != "" {
		fmt.Sscan(s, &seed)
	}
	t.Logf("seed %d (AUDITNET_KILL_SEED=%d reproduces the sizes and kill points)", seed, seed)
	rng := rand.New(rand.NewPCG(seed, 0))
	src := t.TempDir()
	acked := map[string][]byte{}
	var ackedOrder []string
	rounds := 12
	if testing.Short() {
		rounds = 5
	}
	for i := range rounds {
		size := 1<<20 + rng.IntN(6<<20)
		data := make([]byte, size)
		var seedBytes [32]byte
		seedBytes[0], seedBytes[1] = byte(i), byte(seed)
		rand.NewChaCha8(seedBytes).Read(data)
		path := filepath.Join(src, fmt.Sprintf("file%d", i))
		if err := os.WriteFile(path, data, 0o644); err != nil {
			t.Fatal(err)
		}
		var out bytes.Buffer
		cmd := startCLI(t, &out, r, "add", "-Q", path)
		grow := int64(rng.IntN(size + size/4)) // sometimes past the end: no kill
		if killWhen(t, cmd, repo, grow) {
			c := strings.TrimSpace(out.String())
			if c == "" {
				t.Fatalf("add %d exited 0 without printing a CID", i)
			}
			acked[c] = data
			ackedOrder = append(ackedOrder, c)
		}
		// Every third round, unpin the oldest acknowledged file and run a
		// GC that is killed at a random moment (or not at all).
		if i%3 == 2 && len(ackedOrder) > 1 {
			victim := ackedOrder[0]
			ackedOrder = ackedOrder[1:]
			mustCLI(t, r, "pin", "rm", victim)
			delete(acked, victim)
			var gcOut bytes.Buffer
			gc := startCLI(t, &gcOut, r, "repo", "gc")
			killWhen(t, gc, repo, int64(rng.IntN(1<<20))-1<<19)
		}
	}
	if out := mustCLI(t, r, "repo", "verify"); !strings.Contains(out, "no problems") {
		t.Fatalf("verify after kills: %s", out)
	}
	for c, data := range acked {
		if got := mustCLI(t, r, "cat", c); got != string(data) {
			t.Fatalf("acknowledged %s differs after the kills", c)
		}
	}
	mustCLI(t, r, "repo", "gc")
	if out := mustCLI(t, r, "repo", "verify"); !strings.Contains(out, "no problems") {
		t.Fatalf("verify after a final gc: %s", out)
	}
	t.Logf("%d files acknowledged and still pinned after %d rounds", len(acked), rounds)
}
