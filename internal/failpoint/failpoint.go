// Package failpoint lets crash tests stop a process at a named write
// point, the way kill -9 or a power cut would stop it there (CometBFT's
// crashing WAL and etcd's gofail do the same job). A failpoint is armed
// only through the environment variable Env, which a crash test sets for
// the child process it starts; an unarmed Hit is a load and a compare.
package failpoint

import (
	"os"
	"strconv"
	"strings"
	"sync/atomic"
)

// Env names the failpoint to trip: "NAME" trips at its first hit,
// "NAME:N" at its Nth.
const Env = "AUDITNET_FAILPOINT"

// ExitCode is the status a tripped failpoint exits with, so a test can
// tell the crash it asked for from any other exit.
const ExitCode = 86

type armed struct {
	name  string
	after int64
	hits  atomic.Int64
}

var point atomic.Pointer[armed]

func init() { Arm(os.Getenv(Env)) }

// Arm arms the failpoint spec ("NAME" or "NAME:N"); an empty spec disarms.
// Crash tests call it through Env; it is exported for tests of this
// package.
func Arm(spec string) {
	if spec == "" {
		point.Store(nil)
		return
	}
	name, n, _ := strings.Cut(spec, ":")
	after, err := strconv.ParseInt(n, 10, 64)
	if err != nil || after < 1 {
		after = 1
	}
	point.Store(&armed{name: name, after: after})
}

// Hit marks a write point. If it is the armed one and this is the hit it
// waits for, the process exits at once with ExitCode: no deferred call
// runs, no buffer is flushed and no file is closed.
func Hit(name string) {
	p := point.Load()
	if p == nil || p.name != name {
		return
	}
	if p.hits.Add(1) == p.after {
		os.Exit(ExitCode)
	}
}
