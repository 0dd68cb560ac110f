package node

import (
	"bytes"
	"context"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// runTestDaemon runs the daemon of dir in this process until the test ends.
func runTestDaemon(t *testing.T, dir string) string {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	ready := make(chan string, 1)
	done := make(chan error, 1)
	go func() { done <- RunDaemon(ctx, dir, DaemonOptions{Ready: func(u string) { ready <- u }}) }()
	t.Cleanup(func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("daemon: %v", err)
		}
	})
	select {
	case u := <-ready:
		return u
	case err := <-done:
		t.Fatalf("daemon: %v", err)
	}
	return ""
}

// TestAPIGuards checks that the API answers only requests that name its
// own address as Host, carry no foreign Origin and, except for health,
// present the repo's token; and that a client with the token works.
func TestAPIGuards(t *testing.T) {
	dir := initTestRepo(t, RoleAgency)
	base := runTestDaemon(t, dir)
	tok, _ := os.ReadFile(filepath.Join(dir, tokenFile))
	token := strings.TrimSpace(string(tok))
	addr := strings.TrimPrefix(base, "http://")
	for _, tc := range []struct {
		name, method, path, host, origin, token string
		want                                    int
	}{
		{"health needs no token", "GET", "/api/v0/health", addr, "", "", 200},
		{"id without token", "GET", "/api/v0/id", addr, "", "", 401},
		{"id with a wrong token", "GET", "/api/v0/id", addr, "", "nope", 401},
		{"id with the token", "GET", "/api/v0/id", addr, "", token, 200},
		{"rebinding host", "GET", "/api/v0/id", "evil.example:80", "", token, 403},
		{"foreign origin", "GET", "/api/v0/id", addr, "http://evil.example", token, 403},
		{"same origin", "GET", "/api/v0/id", addr, "http://" + addr, token, 200},
		{"add is POST only", "GET", "/api/v0/add", addr, "", token, 405},
	} {
		t.Run(tc.name, func(t *testing.T) {
			req, _ := http.NewRequest(tc.method, base+tc.path, nil)
			req.Host = tc.host
			if tc.origin != "" {
				req.Header.Set("Origin", tc.origin)
			}
			if tc.token != "" {
				req.Header.Set("Authorization", "Bearer "+tc.token)
			}
			resp, err := http.DefaultClient.Do(req)
			if err != nil {
				t.Fatal(err)
			}
			resp.Body.Close()
			if resp.StatusCode != tc.want {
				t.Fatalf("status %d, want %d", resp.StatusCode, tc.want)
			}
		})
	}

	ctx := context.Background()
	c, err := DialDaemon(ctx, dir)
	if err != nil || c == nil {
		t.Fatalf("dial: %v %v", c, err)
	}
	src := filepath.Join(t.TempDir(), "f")
	data := bytes.Repeat([]byte("x"), 1<<20+7)
	os.WriteFile(src, data, 0o600)
	res, err := c.Add(ctx, AddRequest{Paths: []string{src}}, nil, nil)
	if err != nil || len(res.Roots) != 1 {
		t.Fatalf("add: %+v %v", res, err)
	}
	var out bytes.Buffer
	if err := c.Cat(ctx, res.Roots[0].Cid.String(), &out, AccessOptions{}); err != nil || !bytes.Equal(out.Bytes(), data) {
		t.Fatalf("cat: %d bytes, %v", out.Len(), err)
	}
	if _, err := c.Add(ctx, AddRequest{Paths: []string{"relative/path"}}, nil, nil); err == nil || !strings.Contains(err.Error(), "not absolute") {
		t.Fatalf("relative add path: %v", err)
	}
	if err := c.Cat(ctx, "bafy-not-a-cid", &out, AccessOptions{}); err == nil || !strings.Contains(err.Error(), "invalid CID") {
		t.Fatalf("bad CID: %v", err)
	}
}

// TestDaemonStopsDuringARequest stops the daemon while a client is in the
// middle of a large cat it does not read: the daemon still returns, without
// an error, within its shutdown grace.
func TestDaemonStopsDuringARequest(t *testing.T) {
	dir := initTestRepo(t, RoleAgency)
	ctx, cancel := context.WithCancel(context.Background())
	ready := make(chan struct{})
	done := make(chan error, 1)
	go func() { done <- RunDaemon(ctx, dir, DaemonOptions{Ready: func(string) { close(ready) }}) }()
	<-ready
	c, err := DialDaemon(context.Background(), dir)
	if err != nil || c == nil {
		t.Fatalf("dial: %v", err)
	}
	src := filepath.Join(t.TempDir(), "big")
	os.WriteFile(src, bytes.Repeat([]byte("0123456789abcdef"), 4<<20), 0o600) // 64 MiB
	res, err := c.Add(context.Background(), AddRequest{Paths: []string{src}}, nil, nil)
	if err != nil {
		t.Fatal(err)
	}
	pr, pw := io.Pipe()
	catDone := make(chan error, 1)
	go func() { catDone <- c.Cat(context.Background(), res.Roots[0].Cid.String(), pw, AccessOptions{}) }()
	if _, err := pr.Read(make([]byte, 1)); err != nil { // the body has started
		t.Fatal(err)
	}
	cancel()
	select {
	case err := <-done:
		if err != nil {
			t.Fatalf("daemon stopped with %v", err)
		}
	case <-time.After(30 * time.Second):
		t.Fatal("the daemon did not stop")
	}
	pr.Close()
	if err := <-catDone; err == nil {
		t.Fatal("the interrupted cat reported success")
	}
}
