//go:build race

package pbft

// raceEnabled: the race detector slows the simulator about tenfold, so
// the long sweeps run in their own CI step without it.
const raceEnabled = true
