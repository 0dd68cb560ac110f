package main

import (
	"bytes"
	"encoding/json"
	"math/rand/v2"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"

	"auditnet/node"
)

// cli runs the command in-process and returns stdout, stderr and the exit
// code.
func cli(t *testing.T, stdin []byte, args ...string) (string, string, int) {
	t.Helper()
	var out, errOut bytes.Buffer
	code := run(args, bytes.NewReader(stdin), &out, &errOut)
	return out.String(), errOut.String(), code
}

// mustCLI runs the command and fails the test unless it exits 0.
func mustCLI(t *testing.T, args ...string) string {
	t.Helper()
	out, errOut, code := cli(t, nil, args...)
	if code != 0 {
		t.Fatalf("auditnet %s: exit %d: %s", strings.Join(args, " "), code, errOut)
	}
	return out
}

// failCLI runs the command and checks it fails with one line on stderr
// containing want.
func failCLI(t *testing.T, want string, args ...string) {
	t.Helper()
	out, errOut, code := cli(t, nil, args...)
	if code == 0 {
		t.Fatalf("auditnet %s succeeded: %s", strings.Join(args, " "), out)
	}
	if strings.Count(strings.TrimRight(errOut, "\n"), "\n") != 0 || !strings.HasPrefix(errOut, "Error: ") {
		t.Fatalf("auditnet %s: stderr is not one error line: %q", strings.Join(args, " "), errOut)
	}
	if !strings.Contains(errOut, want) {
		t.Fatalf("auditnet %s: %q does not say %q", strings.Join(args, " "), errOut, want)
	}
}

func writeTree(t *testing.T, root string, files map[string]string) {
	t.Helper()
	for name, content := range files {
		p := filepath.Join(root, name)
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(p, []byte(content), 0o644); err != nil {
			t.Fatal(err)
		}
	}
}

func TestLocalRoundTrip(t *testing.T) {
	repo := filepath.Join(t.TempDir(), "repo")
	r := "--repo=" + repo
	mustCLI(t, r, "init", "--role=agency")

	// The kubo vector "ds" (shared/vectors/kubo-cids.json), with a hidden
	// file added, which kubo's -r --hidden includes too.
	src := filepath.Join(t.TempDir(), "ds")
	pattern := make([]byte, 300000)
	for i := range pattern {
		pattern[i] = byte(i % 251)
	}
	writeTree(t, src, map[string]string{"a.txt": "alpha\n", "b.bin": string(pattern), "sub/c.txt": "gamma\n"})
	out := mustCLI(t, r, "add", "-r", src)
	wantLines := []string{
		"added bafkreifwvggzz2nc3ekjfch2hx2c2n34hzbhg6x5zwxxctrtycqqbniqma ds/a.txt",
		"added bafybeih7gz5kvvg2zafb7vue6izhy6c4tglvwpi3rgunwdag2fidn2y6eq ds/b.bin",
		"added bafkreifotjrqniqfif5p3xiugfwmdugv4bfjr4n6ccdf3ttehes64bym4i ds/sub/c.txt",
		"added bafybeicrz34yyq73ottltek2r7mojkw56g2oswnp3jsx2av5osqheokzh4 ds/sub",
		"added bafybeibob2injxfhnabvwrcxfbmn26pnthkjurvt4uhxk4ffxcyfafpwyi ds",
	}
	if got := strings.Split(strings.TrimSpace(out), "\n"); strings.Join(got, "\n") != strings.Join(wantLines, "\n") {
		t.Fatalf("add output:\n%s\nwant (kubo's):\n%s", out, strings.Join(wantLines, "\n"))
	}
	const root = "bafybeibob2injxfhnabvwrcxfbmn26pnthkjurvt4uhxk4ffxcyfafpwyi"
	if got := mustCLI(t, "add", "-Q", "-n", "-r", src); strings.TrimSpace(got) != root {
		t.Fatalf("add --only-hash -Q without a repo: %q", got)
	}
	if got := mustCLI(t, r, "cat", root+"/sub/c.txt"); got != "gamma\n" {
		t.Fatalf("cat: %q", got)
	}
	if got := mustCLI(t, r, "cat", "/ipfs/"+root+"/b.bin"); got != string(pattern) {
		t.Fatal("cat of b.bin differs")
	}
	ls := mustCLI(t, r, "ls", root)
	wantLs := []string{
		"bafkreifwvggzz2nc3ekjfch2hx2c2n34hzbhg6x5zwxxctrtycqqbniqma 6 a.txt",
		"bafybeih7gz5kvvg2zafb7vue6izhy6c4tglvwpi3rgunwdag2fidn2y6eq 300000 b.bin",
		"bafybeicrz34yyq73ottltek2r7mojkw56g2oswnp3jsx2av5osqheokzh4 - sub/",
	}
	for i, line := range strings.Split(strings.TrimSpace(ls), "\n") {
		if strings.Join(strings.Fields(line), " ") != wantLs[i] {
			t.Fatalf("ls line %d: %q, want %q", i, line, wantLs[i])
		}
	}
	dst := filepath.Join(t.TempDir(), "out")
	mustCLI(t, r, "get", root, "-o", dst)
	for name, want := range map[string]string{"a.txt": "alpha\n", "sub/c.txt": "gamma\n", "b.bin": string(pattern)} {
		if got, err := os.ReadFile(filepath.Join(dst, name)); err != nil || string(got) != want {
			t.Fatalf("get wrote %s wrong: %v", name, err)
		}
	}
	failCLI(t, "exists", r, "get", root, "-o", dst)

	// CAR round trip into a second repo.
	car := mustCLI(t, r, "dag", "export", root)
	repo2 := filepath.Join(t.TempDir(), "repo2")
	mustCLI(t, "--repo="+repo2, "init")
	out, errOut, code := cli(t, []byte(car), "--repo="+repo2, "dag", "import", "-")
	if code != 0 || !strings.Contains(out, "Pinned root\t"+root+"\tsuccess") {
		t.Fatalf("dag import: %d %s %s", code, out, errOut)
	}
	if got := mustCLI(t, "--repo="+repo2, "cat", root+"/a.txt"); got != "alpha\n" {
		t.Fatalf("cat after import: %q", got)
	}

	// Pins, GC and stat.
	var st struct {
		Blocks      int      `json:"blocks"`
		DiskBytes   int64    `json:"disk_bytes"`
		PinnedRoots []string `json:"pinned_roots"`
	}
	if err := json.Unmarshal([]byte(mustCLI(t, r, "repo", "stat", "--json")), &st); err != nil {
		t.Fatal(err)
	}
	if st.Blocks != 7 || len(st.PinnedRoots) != 1 || st.PinnedRoots[0] != root {
		t.Fatalf("stat: %+v", st)
	}
	if got := mustCLI(t, r, "pin", "ls"); got != root+" recursive\n" {
		t.Fatalf("pin ls: %q", got)
	}
	mustCLI(t, r, "pin", "rm", root)
	failCLI(t, "not pinned", r, "pin", "rm", root)
	if got := mustCLI(t, r, "repo", "gc"); !strings.HasPrefix(got, "removed 7 blocks") {
		t.Fatalf("gc: %q", got)
	}
	failCLI(t, "not in this repo", r, "cat", root+"/a.txt")
	failCLI(t, "is incomplete", r, "pin", "add", root)
	if got := mustCLI(t, r, "repo", "verify"); !strings.Contains(got, "no problems") {
		t.Fatalf("verify: %q", got)
	}
}

func TestBadInput(t *testing.T) {
	repo := filepath.Join(t.TempDir(), "repo")
	r := "--repo=" + repo
	failCLI(t, "not initialised", r, "cat", "bafkreifzjut3te2nhyekklss27nh3k72ysco7y32koao5eei66wof36n5e")
	mustCLI(t, r, "init")
	failCLI(t, "already initialised", r, "init")
	failCLI(t, "unknown role", "--repo="+filepath.Join(t.TempDir(), "x"), "init", "--role=king")
	failCLI(t, "invalid CID", r, "cat", "not-a-cid")
	failCLI(t, "invalid CID", r, "cat", "bafy")
	failCLI(t, "not in this repo", r, "cat", "bafkreifzjut3te2nhyekklss27nh3k72ysco7y32koao5eei66wof36n5e")
	failCLI(t, "no such file or directory", r, "add", filepath.Join(t.TempDir(), "missing"))
	dir := t.TempDir()
	writeTree(t, dir, map[string]string{"f": "x"})
	failCLI(t, "use -r", r, "add", dir)
	if err := os.Symlink("f", filepath.Join(dir, "link")); err != nil {
		t.Fatal(err)
	}
	failCLI(t, "is a symbolic link", r, "add", "-r", dir)
	mustCLI(t, r, "add", "-r", "--symlinks=store", dir)

	// A corrupt or truncated CAR stores nothing and pins nothing.
	src := filepath.Join(t.TempDir(), "file")
	data := make([]byte, 600_000)
	rand.NewChaCha8([32]byte{1}).Read(data)
	if err := os.WriteFile(src, data, 0o644); err != nil {
		t.Fatal(err)
	}
	cidStr := strings.TrimSpace(mustCLI(t, r, "add", "-Q", src))
	car := []byte(mustCLI(t, r, "dag", "export", cidStr))
	repo2 := filepath.Join(t.TempDir(), "repo2")
	mustCLI(t, "--repo="+repo2, "init")
	for name, bad := range map[string][]byte{
		"truncated": car[:len(car)/2],
		"corrupt":   append(append([]byte{}, car[:len(car)-5]...), 1, 2, 3, 4, 5),
		"not a car": []byte("hello"),
	} {
		_, errOut, code := cli(t, bad, "--repo="+repo2, "dag", "import", "-")
		if code == 0 || !strings.HasPrefix(errOut, "Error: dag import:") {
			t.Fatalf("%s CAR: exit %d, %q", name, code, errOut)
		}
	}
	if got := mustCLI(t, "--repo="+repo2, "pin", "ls"); got != "" {
		t.Fatalf("failed imports pinned %q", got)
	}

	// A locked repo is refused with advice, and nothing changes.
	held, err := node.OpenRepo(repo, node.OpenOptions{})
	if err != nil {
		t.Fatal(err)
	}
	failCLI(t, "locked by another process", r, "add", src)
	held.Close()
	mustCLI(t, r, "repo", "verify")
}

func TestVerifyReportsCorruptionAndCatRefusesIt(t *testing.T) {
	repo := filepath.Join(t.TempDir(), "repo")
	r := "--repo=" + repo
	mustCLI(t, r, "init")
	src := filepath.Join(t.TempDir(), "evidence.txt")
	content := strings.Repeat("ledger line 0001\n", 40_000) // 680 KB, 3 leaves
	if err := os.WriteFile(src, []byte(content), 0o644); err != nil {
		t.Fatal(err)
	}
	root := strings.TrimSpace(mustCLI(t, r, "add", "-Q", src))
	packs, _ := filepath.Glob(filepath.Join(repo, "blocks", "packs", "*.pack"))
	if len(packs) != 1 {
		t.Fatalf("packs: %v", packs)
	}
	b, err := os.ReadFile(packs[0])
	if err != nil {
		t.Fatal(err)
	}
	i := bytes.Index(b, []byte("ledger line 0001\nledger"))
	b[i+100] ^= 1 // one bit flips on disk
	if err := os.WriteFile(packs[0], b, 0o644); err != nil {
		t.Fatal(err)
	}
	out, errOut, code := cli(t, nil, r, "repo", "verify")
	if code == 0 || !strings.HasPrefix(out, "corrupt bafkrei") || !strings.Contains(errOut, "1 problems") {
		t.Fatalf("verify: exit %d\n%s%s", code, out, errOut)
	}
	out, errOut, code = cli(t, nil, r, "cat", root)
	if code == 0 || !strings.Contains(errOut, "is corrupt: hash mismatch") {
		t.Fatalf("cat of corrupt data: exit %d, stderr %q", code, errOut)
	}
	if len(out) >= len(content) {
		t.Fatal("cat passed the whole corrupt file on")
	}
	// Re-adding the file does not help while the index names the bad copy;
	// --repair drops it, and then the add stores it again.
	out, _, code = cli(t, nil, r, "repo", "verify", "--repair")
	if code == 0 || !strings.Contains(out, "dropped 1 bad blocks") {
		t.Fatalf("verify --repair: exit %d\n%s", code, out)
	}
	out, _, code = cli(t, nil, r, "repo", "verify")
	if code == 0 || !strings.HasPrefix(out, "missing bafkrei") {
		t.Fatalf("verify after repair: exit %d\n%s", code, out)
	}
	mustCLI(t, r, "add", "-Q", src)
	if got := mustCLI(t, r, "repo", "verify"); !strings.Contains(got, "no problems") {
		t.Fatalf("verify after re-adding: %s", got)
	}
	if got := mustCLI(t, r, "cat", root); got != content {
		t.Fatal("cat after repair and re-add differs")
	}
}

func TestSpecialFilesRefusedUnlessSkipped(t *testing.T) {
	repo := filepath.Join(t.TempDir(), "repo")
	r := "--repo=" + repo
	mustCLI(t, r, "init")
	dir := t.TempDir()
	writeTree(t, dir, map[string]string{"data.csv": "a,b\n"})
	fifo := filepath.Join(dir, "pipe")
	if err := syscall.Mkfifo(fifo, 0o644); err != nil {
		t.Skipf("mkfifo: %v", err)
	}
	failCLI(t, "is a named pipe", r, "add", "-r", dir)
	if got := mustCLI(t, r, "pin", "ls"); got != "" {
		t.Fatalf("refused add pinned %q", got)
	}
	out, errOut, code := cli(t, nil, r, "add", "-r", "--skip-special", dir)
	if code != 0 || !strings.Contains(errOut, "skipped special file "+fifo) || !strings.Contains(out, "/data.csv") {
		t.Fatalf("add --skip-special: exit %d\n%s%s", code, out, errOut)
	}
}

// TestAddOutputMatchesKubo: for a nested tree, `add -r` prints exactly what
// kubo 0.42.0's `ipfs add -r --hidden --cid-version=1 t` printed for the
// same tree: files in walk order, then directories, each after its
// subdirectories. `ls` aligns its columns as `ipfs ls` does.
func TestAddOutputMatchesKubo(t *testing.T) {
	repo := filepath.Join(t.TempDir(), "repo")
	r := "--repo=" + repo
	mustCLI(t, r, "init")
	src := filepath.Join(t.TempDir(), "t")
	writeTree(t, src, map[string]string{"a/b/y": "1\n", "a/x": "2\n", "c/z": "3\n", "top.txt": "4\n", ".h/e/f": "5\n"})
	if err := os.Mkdir(filepath.Join(src, "empty"), 0o755); err != nil {
		t.Fatal(err)
	}
	want := `added bafkreihqwxbmeii4rvt62fphlzswy6dc2cdosjcuecesu7pgftm6ywbkay t/.h/e/f
added bafkreicdkwsgwgotjdoc6v6ai34o6y6ukohlxe3aadz4t3uvjitumdoymu t/a/b/y
added bafkreictyi2ol2chfnvmkha24hflh7qg7lifhpvy5p6ys55qcbsvx7otym t/a/x
added bafkreiarehh4zvmrh4fgh7webjx72rhkmt45ye24mzruxiab2ef46qycui t/c/z
added bafkreid54fkv34gcoabst2avxe5tfrlrypvfjxewpoe6qgvxhomxfnzndu t/top.txt
added bafybeicvb5ffjfj4nowd6bt3vbavr57kenkwdowpaliziibspnwdzvboau t/.h/e
added bafybeickmuuj5rlxs5sirefizmae5dzgvta7xlneogmwosyljahel2l5fa t/.h
added bafybeidsh5bbihekyrorhkx4zb27lekg3td3gndfydne4hr76mhlisu52i t/a/b
added bafybeidjfftdenc3vxrlvkg7zghf4bs6372tgxsobgm2qeyy3sjafajjqe t/a
added bafybeidfh2eefkh2fz5lwil2ts5dmmp3asplhfxvzlsmjglpu7kbucsf7y t/c
added bafybeiczsscdsbs7ffqz55asqdf3smv6klcw3gofszvwlyarci47bgf354 t/empty
added bafybeieavrfpjhybnjmdquowd2upa3ngfry2pgpnkzaun2vz3iqyio2dxy t
`
	if got := mustCLI(t, r, "add", "-r", src); got != want {
		t.Fatalf("add output:\n%s\nkubo's:\n%s", got, want)
	}
	wantLs := `bafybeicvb5ffjfj4nowd6bt3vbavr57kenkwdowpaliziibspnwdzvboau - e/
`
	if got := mustCLI(t, r, "ls", "bafybeieavrfpjhybnjmdquowd2upa3ngfry2pgpnkzaun2vz3iqyio2dxy/.h"); got != wantLs {
		t.Fatalf("ls:\n%q\nwant\n%q", got, wantLs)
	}
}

// TestOnlyHashWritesNothing: `add --only-hash` prints the CID and leaves
// the repo as it was.
func TestOnlyHashWritesNothing(t *testing.T) {
	repo := filepath.Join(t.TempDir(), "repo")
	r := "--repo=" + repo
	mustCLI(t, r, "init")
	src := filepath.Join(t.TempDir(), "f")
	if err := os.WriteFile(src, bytes.Repeat([]byte("only hash "), 100_000), 0o644); err != nil {
		t.Fatal(err)
	}
	c := strings.TrimSpace(mustCLI(t, r, "add", "-Q", "--only-hash", src))
	if st := mustCLI(t, r, "repo", "stat", "--json"); !strings.Contains(st, `"blocks":0`) {
		t.Fatalf("only-hash stored something: %s", st)
	}
	if got := strings.TrimSpace(mustCLI(t, r, "add", "-Q", src)); got != c {
		t.Fatalf("only-hash CID %s, add CID %s", c, got)
	}
}
