package main

import (
	"runtime/debug"
	"testing"
)

// TestDaemonGC: the daemon runs the collector at daemonGCPercent, unless
// GOGC says otherwise, which it leaves alone.
func TestDaemonGC(t *testing.T) {
	orig := debug.SetGCPercent(100)
	t.Cleanup(func() { debug.SetGCPercent(orig) })

	t.Setenv("GOGC", "")
	daemonGC()
	if got := debug.SetGCPercent(100); got != daemonGCPercent {
		t.Fatalf("without GOGC the daemon runs at %d, want %d", got, daemonGCPercent)
	}
	t.Setenv("GOGC", "100")
	daemonGC()
	if got := debug.SetGCPercent(100); got != 100 {
		t.Fatalf("with GOGC=100 the daemon changed the target to %d", got)
	}
}
