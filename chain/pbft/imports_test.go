package pbft

import (
	"errors"
	"os/exec"
	"slices"
	"strings"
	"testing"
)

// goList runs the go command's list with args and returns the fields it
// prints; the test is skipped where there is no go command.
func goList(t *testing.T, args ...string) []string {
	t.Helper()
	gobin, err := exec.LookPath("go")
	if err != nil {
		t.Skip("no go command in PATH")
	}
	out, err := exec.Command(gobin, append([]string{"list"}, args...)...).Output()
	if err != nil {
		var ee *exec.ExitError
		if errors.As(err, &ee) {
			t.Fatalf("go list %s: %v\n%s", strings.Join(args, " "), err, ee.Stderr)
		}
		t.Fatalf("go list %s: %v", strings.Join(args, " "), err)
	}
	return strings.Fields(string(out))
}

// TestNoNetworkOrStorageDeps checks that nothing the core is built from,
// directly or not, is libp2p or leveldb (STYLE.md, "Packages").
func TestNoNetworkOrStorageDeps(t *testing.T) {
	deps := goList(t, "-deps", "auditnet/chain/pbft")
	if !slices.Contains(deps, "auditnet/chain") {
		t.Fatalf("go list -deps does not list auditnet/chain: %v", deps)
	}
	for _, d := range deps {
		if strings.Contains(d, "github.com/libp2p/") || strings.Contains(d, "syndtr/goleveldb") {
			t.Errorf("auditnet/chain/pbft depends on %s", d)
		}
	}
}

// TestNoClockOrIOImports checks that the core imports no package that
// reads a clock, draws randomness or does I/O (STYLE.md, "Packages").
func TestNoClockOrIOImports(t *testing.T) {
	imports := goList(t, "-f", `{{join .Imports " "}}`, "auditnet/chain/pbft")
	if !slices.Contains(imports, "auditnet/chain") {
		t.Fatalf("go list does not list auditnet/chain among the imports: %v", imports)
	}
	for _, forbidden := range []string{"net", "os", "time", "math/rand", "math/rand/v2"} {
		if slices.Contains(imports, forbidden) {
			t.Errorf("auditnet/chain/pbft imports %s", forbidden)
		}
	}
}
