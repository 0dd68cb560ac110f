package failpoint

import (
	"os"
	"os/exec"
	"testing"
)

// TestHitExits runs this test binary again with a failpoint armed and
// checks that the child dies at the armed hit, and not before.
func TestHitExits(t *testing.T) {
	if os.Getenv("FAILPOINT_CHILD") != "" {
		Hit("other")
		Hit("point") // first hit: not yet
		os.Stdout.WriteString("survived first\n")
		Hit("point") // second: exit
		os.Stdout.WriteString("survived second\n")
		return
	}
	cmd := exec.Command(os.Args[0], "-test.run", "^TestHitExits$")
	cmd.Env = append(os.Environ(), "FAILPOINT_CHILD=1", Env+"=point:2")
	out, err := cmd.Output()
	ee, ok := err.(*exec.ExitError)
	if !ok || ee.ExitCode() != ExitCode {
		t.Fatalf("child: err %v, output %q; want exit %d", err, out, ExitCode)
	}
	if got, want := string(out), "survived first\n"; got != want {
		t.Fatalf("child printed %q, want %q", got, want)
	}
}

func TestUnarmedHitIsNoop(t *testing.T) {
	Arm("")
	Hit("anything")
	Arm("x:notanumber")
	if p := point.Load(); p == nil || p.after != 1 {
		t.Fatalf("a spec with a bad count arms at the first hit, got %+v", p)
	}
	Arm("")
}
