package store

import (
	"encoding/binary"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"testing"

	"auditnet/chain"
	"auditnet/internal/failpoint"
)

// Environment of TestCrashChild, which TestCrashAtEveryWrite starts as a
// child process: the store directory to commit into, and the file of the
// blocks to commit.
const (
	crashDirEnv   = "AUDITNET_STORE_CRASH_DIR"
	crashChainEnv = "AUDITNET_STORE_CRASH_CHAIN"
)

// writeChainFile writes blocks and certificates, each length-prefixed, for
// a child process to commit.
func writeChainFile(tb testing.TB, c *testChain) string {
	tb.Helper()
	var out []byte
	for _, cb := range c.blocks {
		for _, v := range []any{cb.Block, cb.Cert} {
			b, _, err := chain.Encode(v)
			if err != nil {
				tb.Fatal(err)
			}
			out = binary.AppendUvarint(out, uint64(len(b)))
			out = append(out, b...)
		}
	}
	path := filepath.Join(tb.TempDir(), "chain")
	if err := os.WriteFile(path, out, 0o600); err != nil {
		tb.Fatal(err)
	}
	return path
}

func readChainFile(tb testing.TB, path string) (blocks []*chain.Block, certs []*chain.CommitCert) {
	tb.Helper()
	in, err := os.ReadFile(path)
	if err != nil {
		tb.Fatal(err)
	}
	next := func() []byte {
		n, k := binary.Uvarint(in)
		if k <= 0 || uint64(len(in)-k) < n {
			tb.Fatal("chain file truncated")
		}
		b := in[k : k+int(n)]
		in = in[k+int(n):]
		return b
	}
	for len(in) > 0 {
		blk, err := chain.DecodeBlock(next())
		if err != nil {
			tb.Fatal(err)
		}
		cert, err := chain.DecodeCommitCert(next())
		if err != nil {
			tb.Fatal(err)
		}
		blocks, certs = append(blocks, blk), append(certs, cert)
	}
	return blocks, certs
}

// TestCrashChild is the process TestCrashAtEveryWrite crashes: it
// executes the blocks of the chain file, as a node applying committed
// blocks would, and commits each to the store, until the failpoint armed
// in its environment stops it.
func TestCrashChild(t *testing.T) {
	dir := os.Getenv(crashDirEnv)
	if dir == "" {
		t.Skip("the child process of TestCrashAtEveryWrite")
	}
	blocks, certs := readChainFile(t, os.Getenv(crashChainEnv))
	c := newTestChain(t, testParams())
	s, err := Open(Config{Dir: dir, Genesis: c.genesis})
	if err != nil {
		t.Fatal(err)
	}
	for i := range blocks {
		if err := s.Commit(c.replay(blocks[i], certs[i])); err != nil {
			t.Fatal(err)
		}
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
}

// TestCrashAtEveryWrite commits a chain (with an epoch change, expiries
// and deadlines) in a child process that dies, as under kill -9, before
// and after the write of each block in turn. After each crash the store
// must reopen holding exactly the blocks written (the state after the
// last, its root the header's, every block and index entry up to it,
// nothing after), and committing the rest of the chain from its snapshot
// must end at the state of a run that never crashed.
func TestCrashAtEveryWrite(t *testing.T) {
	if os.Getenv(crashDirEnv) != "" {
		t.Skip("in the child process")
	}
	const blocks = 12
	c := buildTestChain(t, blocks, 8)
	file := writeChainFile(t, c)
	ref := openStore(t, t.TempDir(), c.genesis)
	commitAll(t, ref, c.blocks)
	refSnap, err := ref.Snapshot()
	if err != nil {
		t.Fatal(err)
	}
	final := refSnap.State.Root()
	ref.Close()
	for _, fp := range []string{FailBeforeCommit, FailAfterCommit} {
		for n := 1; n <= blocks; n++ {
			t.Run(fmt.Sprintf("%s:%d", fp, n), func(t *testing.T) {
				dir := t.TempDir()
				cmd := exec.Command(os.Args[0], "-test.run", "^TestCrashChild$", "-test.count=1")
				cmd.Env = append(os.Environ(), crashDirEnv+"="+dir, crashChainEnv+"="+file, fmt.Sprintf("%s=%s:%d", failpoint.Env, fp, n))
				out, err := cmd.CombinedOutput()
				var exit *exec.ExitError
				if !errors.As(err, &exit) || exit.ExitCode() != failpoint.ExitCode {
					t.Fatalf("child: %v, want exit code %d\n%s", err, failpoint.ExitCode, out)
				}
				want := uint64(n)
				if fp == FailBeforeCommit {
					want--
				}
				s := openStore(t, dir, c.genesis)
				checkPrefix(t, s, c, want)
				snap, err := s.Snapshot()
				if err != nil {
					t.Fatal(err)
				}
				rest := newTestChain(t, testParams())
				rest.restart(snap)
				for _, cb := range c.blocks[want:] {
					if err := s.Commit(rest.replay(cb.Block, cb.Cert)); err != nil {
						t.Fatal(err)
					}
				}
				if err := s.Close(); err != nil {
					t.Fatal(err)
				}
				s = openStore(t, dir, c.genesis)
				checkPrefix(t, s, c, blocks)
				if snap, _ := s.Snapshot(); snap.State.Root() != final {
					t.Fatal("after the crash and the rest of the chain, the state differs from an uncrashed run's")
				}
			})
		}
	}
}
