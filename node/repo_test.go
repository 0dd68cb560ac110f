package node

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"testing"
)

func TestParseRef(t *testing.T) {
	const c = "bafybeibob2injxfhnabvwrcxfbmn26pnthkjurvt4uhxk4ffxcyfafpwyi"
	for _, tc := range []struct {
		in, path string
		ok       bool
	}{
		{c, "", true},
		{c + "/sub/c.txt", "sub/c.txt", true},
		{"/ipfs/" + c + "/sub/", "sub", true},
		{"QmXgkY4miMKJBrg8YYke4xw6C2n8WNsUc1GXLhN84k4QM3", "", true},
		{"", "", false},
		{"bafy", "", false},
		{"not-a-cid/x", "", false},
	} {
		got, err := ParseRef(tc.in)
		if (err == nil) != tc.ok || (tc.ok && got.Path != tc.path) {
			t.Errorf("ParseRef(%q) = %+v, %v", tc.in, got, err)
		}
	}
}

func TestRepoLocking(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "repo")
	if _, err := OpenRepo(dir, OpenOptions{}); !errors.Is(err, ErrNotInitialised) {
		t.Fatalf("open before init: %v", err)
	}
	if err := InitRepo(dir, InitOptions{Role: RoleAuditor}); err != nil {
		t.Fatal(err)
	}
	if err := InitRepo(dir, InitOptions{Role: RoleAuditor}); !errors.Is(err, ErrAlreadyExists) {
		t.Fatalf("second init: %v", err)
	}
	if _, err := os.Stat(filepath.Join(dir, reserveFile)); err != nil {
		t.Fatalf("no reserve file after init: %v", err)
	}
	r1, err := OpenRepo(dir, OpenOptions{ReadOnly: true})
	if err != nil {
		t.Fatal(err)
	}
	r2, err := OpenRepo(dir, OpenOptions{ReadOnly: true})
	if err != nil {
		t.Fatalf("two readers: %v", err)
	}
	if r2.Config.Role != RoleAuditor {
		t.Fatalf("role %q", r2.Config.Role)
	}
	if _, err := OpenRepo(dir, OpenOptions{}); !errors.Is(err, ErrLocked) {
		t.Fatalf("writer beside readers: %v", err)
	}
	r1.Close()
	r2.Close()
	w, err := OpenRepo(dir, OpenOptions{})
	if err != nil {
		t.Fatal(err)
	}
	defer w.Close()
	if _, err := OpenRepo(dir, OpenOptions{ReadOnly: true}); !errors.Is(err, ErrLocked) {
		t.Fatalf("reader beside a writer: %v", err)
	}
}

// TestInitAfterACrashedInit: an init that died before writing its config
// leaves a block store behind; the next init starts afresh.
func TestInitAfterACrashedInit(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "repo")
	junk := filepath.Join(dir, blocksDir, "index", "MANIFEST-000001")
	if err := os.MkdirAll(filepath.Dir(junk), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(junk, []byte("half written"), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := InitRepo(dir, InitOptions{Role: RoleAgency}); err != nil {
		t.Fatalf("init over a crashed init: %v", err)
	}
	r, err := OpenRepo(dir, OpenOptions{})
	if err != nil {
		t.Fatal(err)
	}
	r.Close()
}

// TestInitRefusesToWipeAStoreWithData: a repo whose config went missing
// still has its data; init must not throw it away.
func TestInitRefusesToWipeAStoreWithData(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "repo")
	if err := InitRepo(dir, InitOptions{Role: RoleAgency}); err != nil {
		t.Fatal(err)
	}
	f := filepath.Join(t.TempDir(), "f")
	if err := os.WriteFile(f, []byte("acknowledged audit data"), 0o644); err != nil {
		t.Fatal(err)
	}
	r, err := OpenRepo(dir, OpenOptions{})
	if err != nil {
		t.Fatal(err)
	}
	res, err := Add(context.Background(), r, []string{f}, AddOptions{})
	if err != nil {
		t.Fatal(err)
	}
	r.Close()
	if err := os.Rename(filepath.Join(dir, configFile), filepath.Join(dir, "config.lost")); err != nil {
		t.Fatal(err)
	}
	if err := InitRepo(dir, InitOptions{Role: RoleAgency}); !errors.Is(err, ErrOrphanStore) {
		t.Fatalf("init over a store with data: %v", err)
	}
	if err := os.Rename(filepath.Join(dir, "config.lost"), filepath.Join(dir, configFile)); err != nil {
		t.Fatal(err)
	}
	r, err = OpenRepo(dir, OpenOptions{ReadOnly: true})
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	if ok, _ := r.Store.Has(context.Background(), res.Roots[0].Cid); !ok {
		t.Fatal("data lost")
	}
}
