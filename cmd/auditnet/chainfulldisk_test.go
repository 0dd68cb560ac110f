package main

import (
	"bytes"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"syscall"
	"testing"
	"time"

	"auditnet/chain"
	"auditnet/chain/wal"
)

// tmpfsMagic is the f_type statfs reports for a tmpfs.
const tmpfsMagic = 0x01021994

// fullDiskLinger is how long a validator may still run after its output
// first names the full disk: long enough to close its parts, too short
// to go on taking part in consensus.
const fullDiskLinger = 30 * time.Second

// TestChainValidatorFullDisk runs four validators, one of them (a backup)
// with its repo on a small tmpfs, and fills that tmpfs while transactions
// keep coming. The validator stops by itself, non-zero, with a one-line
// error that says the disk is full, and does not linger; every vote of it
// that made it into a commit certificate is in its write-ahead log; the
// other three go on committing. Once space is freed it starts again
// without a corruption error, catches up, holds the same chain as the
// others and votes again. It needs the right to mount a tmpfs (root, as
// in CI) and is skipped otherwise.
func TestChainValidatorFullDisk(t *testing.T) {
	skipShort(t)
	c := newChainNet(t, 4, 0)
	vals := c.validators()
	victim := without(vals, c.viewLeader(t, 0))[0]
	others := without(vals, victim)
	moveToTmpfs(t, victim, "32m")
	c.startAll(t)

	txs := c.commit(t, victim, 5)
	txs = append(txs, c.commit(t, others[0], 5)...)
	c.waitTxs(t, vals, txIDs(txs))
	c.agree(t, vals...)

	// Fill the victim's disk, then keep the chain busy through the others
	// until the victim stops.
	filler := filepath.Join(victim.Dir, "filler")
	fillDisk(t, filler)
	filled := time.Now()
	p := victim.proc
	var sent []string
	var named time.Time // when its output first named the full disk
	eventually(t, victim.Name+" to stop on its full disk", chainWait, func() (bool, string) {
		if p.exited() {
			return true, ""
		}
		if named.IsZero() && strings.Contains(p.out.String(), "no space left on device") {
			named = time.Now()
		}
		if !named.IsZero() && time.Since(named) > fullDiskLinger {
			t.Fatalf("%s still runs %v after its output named the full disk:\n%s", victim.Name, fullDiskLinger, p.tail(30))
		}
		sent = append(sent, c.submitOnly(t, others[len(sent)%len(others)], 4)...)
		return false, fmt.Sprintf("%d txs submitted since the disk filled; %s's last lines:\n%s", len(sent), victim.Name, p.tail(5))
	})
	victim.api = nil
	t.Logf("%s stopped %v after its disk filled (%d txs submitted meanwhile)", victim.Name, time.Since(filled).Round(time.Millisecond), len(sent))
	checkFullDiskExit(t, p)

	// The other three are a quorum: what was submitted commits, and more.
	more := c.commit(t, others[0], 5)
	more = append(more, c.commit(t, others[1], 5)...)
	ids := slices.Concat(sent, txIDs(more))
	c.waitTxs(t, others, ids)
	head := c.agree(t, others...)
	checkVotesLogged(t, c, victim, others, head)

	// Space again: it starts on what it had, catches up and votes.
	if err := os.Remove(filler); err != nil {
		t.Fatal(err)
	}
	victim.restart(t, nil)
	out := victim.proc.out.String()
	if strings.Contains(out, "corrupt") || strings.Contains(out, "damaged") {
		t.Fatalf("%s restarted on a damaged WAL or store:\n%s", victim.Name, victim.proc.tail(30))
	}
	for _, line := range strings.Split(out, "\n") {
		if strings.Contains(line, "chain restored") || strings.Contains(line, "torn") {
			t.Logf("%s after the restart: %s", victim.Name, line)
		}
	}
	c.waitTxs(t, []*netNode{victim}, append(txIDs(txs), ids...))
	c.agree(t, vals...)
	c.needsVote(t, victim)
}

// moveToTmpfs puts the (stopped) node's repo on a tmpfs of the given size
// mounted at the repo's own path, so that nothing else about the node
// changes. It skips the test if a tmpfs cannot be mounted here.
func moveToTmpfs(t *testing.T, n *netNode, size string) {
	t.Helper()
	orig := n.Dir + ".disk"
	if err := os.Rename(n.Dir, orig); err != nil {
		t.Fatal(err)
	}
	if err := os.Mkdir(n.Dir, 0o700); err != nil {
		t.Fatal(err)
	}
	if out, err := exec.Command("mount", "-t", "tmpfs", "-o", "size="+size+",mode=0700", "tmpfs", n.Dir).CombinedOutput(); err != nil {
		t.Skipf("cannot mount a tmpfs here (needs root, as in CI): %v %s", err, bytes.TrimSpace(out))
	}
	t.Cleanup(func() {
		// The daemon must be gone before the file system can go.
		if p := n.proc; p != nil && !p.exited() {
			p.cmd.Process.Kill()
			<-p.done
		}
		if out, err := exec.Command("umount", n.Dir).CombinedOutput(); err != nil {
			t.Errorf("umount %s: %v %s", n.Dir, err, bytes.TrimSpace(out))
		}
	})
	var st syscall.Statfs_t
	if err := syscall.Statfs(n.Dir, &st); err != nil {
		t.Fatal(err)
	}
	if st.Type != tmpfsMagic {
		t.Fatalf("%s is not on a tmpfs after the mount (f_type %#x)", n.Dir, st.Type)
	}
	// The repo's reserve file is sized for the disk it was made on (up to
	// 32 MiB); the node makes one to the tmpfs's measure when it closes.
	if err := os.Remove(filepath.Join(orig, "reserve")); err != nil {
		t.Fatal(err)
	}
	if err := copyTree(orig, n.Dir); err != nil {
		t.Fatal(err)
	}
	if err := os.RemoveAll(orig); err != nil {
		t.Fatal(err)
	}
}

// copyTree copies the directories and regular files under src into dst,
// which exists, keeping their permissions (a repo's key must stay 0600).
func copyTree(src, dst string) error {
	return filepath.WalkDir(src, func(path string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		rel, err := filepath.Rel(src, path)
		if err != nil || rel == "." {
			return err
		}
		info, err := d.Info()
		if err != nil {
			return err
		}
		to := filepath.Join(dst, rel)
		switch {
		case d.IsDir():
			return os.Mkdir(to, info.Mode().Perm())
		case d.Type().IsRegular():
			data, err := os.ReadFile(path)
			if err != nil {
				return err
			}
			return os.WriteFile(to, data, info.Mode().Perm())
		}
		return fmt.Errorf("copy %s: not a directory or a regular file", path)
	})
}

// fillDisk writes name until its file system has no space left.
func fillDisk(t *testing.T, name string) {
	t.Helper()
	f, err := os.OpenFile(name, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o600)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	chunk := bytes.Repeat([]byte{0xa5}, 1<<20)
	for range 1 << 12 {
		if _, err = f.Write(chunk); err != nil {
			break
		}
	}
	if !errors.Is(err, syscall.ENOSPC) {
		t.Fatalf("filling %s: %v, want ENOSPC", name, err)
	}
}

// checkFullDiskExit checks how a daemon that ran out of disk ended:
// through the CLI's error path (exit 1, not a panic, a signal or the race
// detector's 66), and with one line, its last, that says the disk is full.
func checkFullDiskExit(t *testing.T, p *chainProc) {
	t.Helper()
	out := p.out.String()
	for _, bad := range []string{"WARNING: DATA RACE", "panic: "} {
		if strings.Contains(out, bad) {
			t.Fatalf("daemon %s on a full disk: %s\n%s", p.label, bad, p.tail(60))
		}
	}
	var ee *exec.ExitError
	if !errors.As(p.err, &ee) || ee.ExitCode() != 1 {
		t.Fatalf("daemon %s on a full disk: exit %v, want status 1\n%s", p.label, p.err, p.tail(30))
	}
	lines := strings.Split(strings.TrimRight(out, "\n"), "\n")
	last := lines[len(lines)-1]
	errLines := 0
	for _, l := range lines {
		if strings.HasPrefix(l, "Error: ") {
			errLines++
		}
	}
	if !strings.HasPrefix(last, "Error: ") || !strings.Contains(last, "no space left on device") || !strings.Contains(last, "disk is full") || errLines != 1 {
		t.Fatalf("daemon %s on a full disk: want one last line \"Error: ...no space left on device...disk is full...\"; output ends:\n%s", p.label, p.tail(15))
	}
	t.Logf("%s: %s", p.label, last)
}

// checkVotesLogged checks, on a copy of the stopped victim's WAL, that
// every COMMIT vote of the victim in a certificate that one of holders
// holds (up to height head, all formed before the victim restarts; each
// node forms its own from the first quorum of votes it received) is a
// vote the victim had made durable: it signed nothing it could not
// persist. The
// WAL keeps every record above the victim's last stable checkpoint, so
// the check covers the heights above the last checkpoint height at or
// below head.
func checkVotesLogged(t *testing.T, c *chainNet, victim *netNode, holders []*netNode, head uint64) {
	t.Helper()
	id, err := chain.ParsePeerID(victim.PeerID)
	if err != nil {
		t.Fatal(err)
	}
	dir := filepath.Join(t.TempDir(), "wal")
	if err := os.Mkdir(dir, 0o700); err != nil {
		t.Fatal(err)
	}
	if err := copyTree(filepath.Join(victim.Dir, "chain", "wal"), dir); err != nil {
		t.Fatalf("copy %s's WAL: %v", victim.Name, err)
	}
	w, entries, err := wal.Open(wal.Config{Dir: dir})
	if err != nil {
		t.Fatalf("%s's WAL after the full disk: %v", victim.Name, err)
	}
	if err := w.Close(); err != nil {
		t.Fatal(err)
	}
	logged := map[string]bool{}
	for i, e := range entries {
		r, err := wal.DecodeRecord(e)
		if err != nil {
			t.Fatalf("%s's WAL entry %d: %v", victim.Name, i, err)
		}
		if r.Vote != nil && bytes.Equal(r.Vote.Signer, id) {
			logged[string(r.Vote.Sig)] = true
		}
	}
	if len(logged) == 0 {
		t.Fatalf("%s's WAL holds none of its votes (%d entries)", victim.Name, len(entries))
	}
	every := c.genesis.Params.CheckpointInterval
	from := head - head%every + 1
	checked := 0
	for _, n := range holders {
		for h := from; h <= head; h++ {
			b, err := n.block(t, h)
			if err != nil {
				t.Fatalf("%s: block %d: %v", n.Name, h, err)
			}
			for _, v := range b.Cert.Votes {
				if !bytes.Equal(v.Signer, id) {
					continue
				}
				if !logged[string(v.Sig)] {
					t.Fatalf("%s's certificate of block %d holds a vote of %s (view %d, phase %v) that its WAL does not", n.Name, h, victim.Name, v.Vote.View, v.Vote.Phase)
				}
				checked++
			}
		}
	}
	t.Logf("%s's WAL: %d entries, %d own votes; its votes in the others' certificates of blocks %d-%d: %d, all logged", victim.Name, len(entries), len(logged), from, head, checked)
}
