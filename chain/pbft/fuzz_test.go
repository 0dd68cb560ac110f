package pbft

import (
	"bytes"
	"testing"
)

// FuzzDecodeMessage feeds bytes to the decoder of consensus messages and
// the accepted ones to a core: a decoder accepts only canonical bytes
// (what it accepts encodes back to the input), and no message, however
// made, panics a core.
func FuzzDecodeMessage(f *testing.F) {
	sc := randomScenario(38) // view changes, restarts and a follower
	w := newWorld(f, sc.n, 2, simParams())
	s := newSim(f, sc, w)
	s.run()
	kinds := map[string]int{}
	for _, raw := range s.old {
		m, err := DecodeMessage(raw)
		if err != nil {
			f.Fatal(err)
		}
		k := messageKind(m)
		if kinds[k] < 4 {
			kinds[k]++
			f.Add(raw)
		}
	}
	target := s.nodes[1].core
	f.Fuzz(func(t *testing.T, in []byte) {
		m, err := DecodeMessage(in)
		if err != nil {
			return
		}
		out, err := EncodeMessage(m)
		if err != nil {
			t.Fatalf("accepted a message it cannot encode: %v", err)
		}
		if !bytes.Equal(out, in) {
			t.Fatalf("accepted %x, which encodes to %x", in, out)
		}
		c := *target // a shallow copy: maps are shared, but a panic is what this looks for
		_ = c.Step(s.nodes[0].id, m)
	})
}

func messageKind(m *Message) string {
	switch {
	case m.Proposal != nil:
		return "proposal"
	case m.Vote != nil:
		return "vote"
	case m.ViewChange != nil:
		return "viewchange"
	case m.NewView != nil:
		return "newview"
	case m.Checkpoint != nil:
		return "checkpoint"
	case m.Heartbeat != nil:
		return "heartbeat"
	}
	return "tx"
}
