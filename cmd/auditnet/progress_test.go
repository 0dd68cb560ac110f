package main

import (
	"bytes"
	"fmt"
	"io"
	"math/rand/v2"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"golang.org/x/sys/unix"
)

// openPty opens a pseudo-terminal pair: the CLI writes to tty as to a
// terminal, the test reads what it showed from ptm.
func openPty(t *testing.T) (ptm, tty *os.File) {
	t.Helper()
	ptm, err := os.OpenFile("/dev/ptmx", os.O_RDWR, 0)
	if err != nil {
		t.Skipf("no pseudo-terminals here: %v", err)
	}
	if err := unix.IoctlSetPointerInt(int(ptm.Fd()), unix.TIOCSPTLCK, 0); err != nil {
		t.Skipf("unlock pty: %v", err)
	}
	n, err := unix.IoctlGetInt(int(ptm.Fd()), unix.TIOCGPTN)
	if err != nil {
		t.Skipf("pty number: %v", err)
	}
	tty, err = os.OpenFile(fmt.Sprintf("/dev/pts/%d", n), os.O_RDWR|unix.O_NOCTTY, 0)
	if err != nil {
		t.Skipf("open pty: %v", err)
	}
	t.Cleanup(func() { tty.Close(); ptm.Close() })
	return ptm, tty
}

// TestProgressOnlyOnATerminal: long adds and gets draw a progress bar on
// stderr when it is a terminal, and write nothing there when it is not.
func TestProgressOnlyOnATerminal(t *testing.T) {
	repo := filepath.Join(t.TempDir(), "repo")
	r := "--repo=" + repo
	mustCLI(t, r, "init")
	src := filepath.Join(t.TempDir(), "big")
	data := make([]byte, 24<<20)
	rand.NewChaCha8([32]byte{5}).Read(data)
	if err := os.WriteFile(src, data, 0o644); err != nil {
		t.Fatal(err)
	}

	// Not a terminal: stderr stays empty.
	out, errOut, code := cli(t, nil, r, "add", "-Q", src)
	if code != 0 || errOut != "" {
		t.Fatalf("add to a pipe: exit %d, stderr %q", code, errOut)
	}
	root := strings.TrimSpace(out)

	// A terminal: the bar is drawn.
	ptm, tty := openPty(t)
	shown := make(chan string, 1)
	go func() {
		var buf bytes.Buffer
		io.Copy(&buf, ptm) // ends when the tty side closes
		shown <- buf.String()
	}()
	var stdout bytes.Buffer
	code = run([]string{r, "add", "-Q", "--pin=false", src}, nil, &stdout, tty)
	code2 := run([]string{r, "get", root, "-o", filepath.Join(t.TempDir(), "out")}, nil, &stdout, tty)
	tty.Close()
	ptm.SetReadDeadline(deadline(t))
	got := <-shown
	if code != 0 || code2 != 0 {
		t.Fatalf("add/get on a terminal: exit %d, %d; terminal showed %q", code, code2, got)
	}
	if !strings.Contains(got, "adding ") || !strings.Contains(got, "getting ") || !strings.Contains(got, "|") {
		t.Fatalf("terminal showed no progress bars: %q", got)
	}
}

// deadline is when a test stops waiting for a child's output.
func deadline(t *testing.T) (d time.Time) {
	if dl, ok := t.Deadline(); ok {
		return dl
	}
	return time.Now().Add(time.Minute)
}
