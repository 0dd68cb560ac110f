package main

import (
	"bytes"
	"encoding/json"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"auditnet/node"
)

// syncBuffer is a bytes.Buffer safe to read while a child process writes.
type syncBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (b *syncBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}

func (b *syncBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String()
}

// waitFor polls cond until it holds or the deadline passes.
func waitFor(t *testing.T, what string, within time.Duration, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(within)
	tick := time.NewTicker(20 * time.Millisecond)
	defer tick.Stop()
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		<-tick.C
	}
}

// daemonProc is `auditnet daemon` running as a child process.
type daemonProc struct {
	cmd    *exec.Cmd
	out    *syncBuffer
	exited chan error
}

func startDaemon(t *testing.T, repo string) *daemonProc {
	t.Helper()
	d := &daemonProc{out: &syncBuffer{}, exited: make(chan error, 1)}
	d.cmd = exec.Command(os.Args[0], "--repo", repo, "daemon")
	d.cmd.Env = append(os.Environ(), "AUDITNET_TEST_RUN_MAIN=1")
	d.cmd.Stdout, d.cmd.Stderr = d.out, d.out
	if err := d.cmd.Start(); err != nil {
		t.Fatal(err)
	}
	go func() { d.exited <- d.cmd.Wait() }()
	t.Cleanup(func() {
		d.cmd.Process.Kill()
		<-d.exited
	})
	waitFor(t, "the daemon to be ready", 30*time.Second, func() bool {
		select {
		case err := <-d.exited:
			d.exited <- err
			t.Fatalf("daemon exited: %v\n%s", err, d.out)
		default:
		}
		return strings.Contains(d.out.String(), "Daemon is ready")
	})
	return d
}

// stop sends sig (SIGINT or SIGTERM) and checks that the daemon exits
// cleanly.
func (d *daemonProc) stop(t *testing.T, sig os.Signal) {
	t.Helper()
	d.cmd.Process.Signal(sig)
	select {
	case err := <-d.exited:
		d.exited <- err
		if err != nil {
			t.Fatalf("daemon exit: %v\n%s", err, d.out)
		}
	case <-time.After(30 * time.Second):
		t.Fatalf("daemon did not stop on %v\n%s", sig, d.out)
	}
}

// TestDaemonThroughCLI runs two daemons as processes, an agency and an
// auditor, and drives them with the CLI: the agency adds a dataset through
// its daemon, which announces it; the auditor finds the provider in the DHT
// and fetches the dataset with cat and get (a whole file and a path in a
// directory); both stop cleanly on SIGTERM.
func TestDaemonThroughCLI(t *testing.T) {
	if testing.Short() {
		t.Skip("starts daemons")
	}
	dir := t.TempDir()
	agency, auditor := filepath.Join(dir, "agency"), filepath.Join(dir, "auditor")
	mustCLI(t, "--repo", agency, "init", "--role", "agency", "--listen", "/ip4/127.0.0.1/tcp/0", "--listen", "/ip4/127.0.0.1/udp/0/quic-v1", "--api", "127.0.0.1:0")
	mustCLI(t, "--repo", auditor, "init", "--role", "auditor", "--listen", "/ip4/127.0.0.1/tcp/0", "--api", "127.0.0.1:0")
	agencyID := strings.TrimSpace(mustCLI(t, "--repo", agency, "config", "Identity.PeerID"))
	auditorID := strings.TrimSpace(mustCLI(t, "--repo", auditor, "config", "Identity.PeerID"))
	mustCLI(t, "--repo", agency, "config", "--json", "Members", `["`+auditorID+`"]`)
	mustCLI(t, "--repo", auditor, "config", "--json", "Members", `["`+agencyID+`"]`)
	failCLI(t, "needs a running daemon", "--repo", auditor, "swarm", "peers")

	a := startDaemon(t, agency)
	var id node.IDInfo
	if err := json.Unmarshal([]byte(mustCLI(t, "--repo", agency, "id")), &id); err != nil {
		t.Fatal(err)
	}
	if id.ID != agencyID || len(id.Addresses) == 0 {
		t.Fatalf("id: %+v", id)
	}
	boot, _ := json.Marshal(id.Addresses[:1])
	mustCLI(t, "--repo", auditor, "config", "--json", "Bootstrap", string(boot))
	b := startDaemon(t, auditor)

	data := bytes.Repeat([]byte("audit record 0123456789\n"), 200_000) // 4.8 MB
	src := filepath.Join(dir, "src")
	writeTree(t, src, map[string]string{"ledger.csv": string(data), "sub/note.txt": "hello auditors\n"})
	root := strings.TrimSpace(mustCLI(t, "--repo", agency, "add", "-r", "-Q", src))

	waitFor(t, "the auditor to find the provider", 30*time.Second, func() bool {
		out, _, code := cli(t, nil, "--repo", auditor, "providers", root)
		return code == 0 && strings.Contains(out, agencyID)
	})
	if got := mustCLI(t, "--repo", auditor, "cat", root+"/ledger.csv"); got != string(data) {
		t.Fatalf("cat over the network: %d bytes, want %d", len(got), len(data))
	}
	out := filepath.Join(dir, "out")
	mustCLI(t, "--repo", auditor, "get", root+"/sub", "-o", out)
	if got, err := os.ReadFile(filepath.Join(out, "note.txt")); err != nil || string(got) != "hello auditors\n" {
		t.Fatalf("get over the network: %q %v", got, err)
	}
	// Pins and GC go through the daemon too: the fetched directory is
	// pinned, and a GC keeps it (but not the unpinned root block that
	// resolved the path).
	var sub string
	for _, line := range strings.Split(mustCLI(t, "--repo", agency, "ls", root), "\n") {
		if strings.HasSuffix(line, " sub/") {
			sub = strings.Fields(line)[0]
		}
	}
	if pins := mustCLI(t, "--repo", auditor, "pin", "ls"); strings.Count(pins, "recursive") != 1 {
		t.Fatalf("pin ls through the daemon: %q", pins)
	}
	mustCLI(t, "--repo", auditor, "repo", "gc")
	if peers := mustCLI(t, "--repo", auditor, "swarm", "peers"); !strings.Contains(peers, agencyID) {
		t.Fatalf("swarm peers: %q", peers)
	}
	if out := mustCLI(t, "--repo", auditor, "swarm", "connect", id.Addresses[0]); !strings.Contains(out, "connected") {
		t.Fatalf("swarm connect: %q", out)
	}
	stranger := filepath.Join(dir, "stranger")
	mustCLI(t, "--repo", stranger, "init", "--listen", "/ip4/127.0.0.1/tcp/0", "--api", "127.0.0.1:0")
	strangerID := strings.TrimSpace(mustCLI(t, "--repo", stranger, "config", "Identity.PeerID"))
	addr := strings.TrimSuffix(id.Addresses[0], agencyID) + strangerID
	failCLI(t, "gater disallows", "--repo", auditor, "swarm", "connect", addr)
	failCLI(t, "no provider", "--repo", auditor, "cat", "bafkreigh2akiscaildcqabsyg3dfr6chu3fgpregiymsck7e7aqa4s52zy")

	b.stop(t, syscall.SIGINT)
	a.stop(t, syscall.SIGTERM)
	if _, err := os.Stat(filepath.Join(agency, "api")); !os.IsNotExist(err) {
		t.Fatalf("api file left after stop: %v", err)
	}
	// Offline again: the auditor reads what it fetched from its own repo.
	if got := mustCLI(t, "--repo", auditor, "cat", sub+"/note.txt"); got != "hello auditors\n" {
		t.Fatalf("offline cat of fetched data: %q", got)
	}
}

// TestDemo runs `auditnet demo` end to end: the default testnet's six
// daemons and an outsider in this process; anchors, grants, an access
// decided by the chain and served with its acknowledgement, a revoked
// grant refused on the chain, a receipt verified offline, the outsider
// refused; and nothing left behind in its temporary directory.
func TestDemo(t *testing.T) {
	if testing.Short() {
		t.Skip("starts daemons")
	}
	tmp := t.TempDir()
	t.Setenv("TMPDIR", tmp)
	// The demo's ports: swarm from base, the outsider's at base+90, APIs
	// 100 above; all below the ephemeral range, where an outgoing
	// connection's source port could take one.
	base := freeBasePort(t, 91)
	out := mustCLI(t, "demo", "--size-mib", "4", "--base-port", strconv.Itoa(base))
	for _, want := range []string{
		"anchored at height", "identical to agency-1's original: true", "denied by the chain: revoked",
		"outcome authorised, signed by auditor-1", "purpose changed fails verification", "admitted false",
		"gater disallows", "bytes acknowledged", "access   denied (revoked)", "the data center keeps the chain, not the data",
	} {
		if !strings.Contains(strings.ToLower(out), strings.ToLower(want)) {
			t.Fatalf("demo output lacks %q:\n%s", want, out)
		}
	}
	if left, _ := os.ReadDir(tmp); len(left) != 0 {
		t.Fatalf("the demo left %d entries in its temporary directory", len(left))
	}
}

// TestDemoFailsCleanly: when a node of the demo cannot start (here the
// outsider, its API port taken), the demo stops every node it started and
// exits with an error naming what failed, rather than hanging.
func TestDemoFailsCleanly(t *testing.T) {
	if testing.Short() {
		t.Skip("starts daemons")
	}
	t.Setenv("TMPDIR", t.TempDir())
	base := freeBasePort(t, 91)
	taken, err := net.Listen("tcp", "127.0.0.1:"+strconv.Itoa(base+190))
	if err != nil {
		t.Fatal(err)
	}
	defer taken.Close()
	type result struct {
		errOut string
		code   int
	}
	done := make(chan result, 1)
	go func() {
		var out, errOut bytes.Buffer
		code := run([]string{"demo", "--size-mib", "1", "--base-port", strconv.Itoa(base)}, strings.NewReader(""), &out, &errOut)
		done <- result{errOut.String(), code}
	}()
	select {
	case r := <-done:
		if r.code == 0 || !strings.Contains(r.errOut, "start the outsider") {
			t.Fatalf("demo with the outsider's port taken: exit %d: %s", r.code, r.errOut)
		}
	case <-time.After(2 * time.Minute):
		t.Fatal("the demo hung after a node failed to start")
	}
}
