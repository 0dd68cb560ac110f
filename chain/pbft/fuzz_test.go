package pbft

import (
	"bytes"
	"testing"

	"auditnet/chain"
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
	// A verifier that met the seeds' transactions decodes those from
	// memory, the others afresh: either way as DecodeMessage does.
	v := NewVerifier(VerifierConfig{})
	for _, raw := range s.old {
		if m, err := v.DecodeMessage(raw); err == nil {
			_ = v.VerifyMessage(m)
		}
	}
	f.Fuzz(func(t *testing.T, in []byte) {
		m, err := DecodeMessage(in)
		vm, verr := v.DecodeMessage(in)
		if (err == nil) != (verr == nil) {
			t.Fatalf("DecodeMessage says %v, the verifier's %v", err, verr)
		}
		if err != nil {
			return
		}
		if out, err := EncodeMessage(unsealedCopy(vm)); err != nil || !bytes.Equal(out, in) {
			t.Fatalf("the verifier decoded %x to a message whose fields encode to %x (%v)", in, out, err)
		}
		out, err := EncodeMessage(m)
		if err != nil {
			t.Fatalf("accepted a message it cannot encode: %v", err)
		}
		if !bytes.Equal(out, in) {
			t.Fatalf("accepted %x, which encodes to %x", in, out)
		}
		// The transactions keep their encodings: the fields must give the
		// same bytes afresh.
		if out, err := EncodeMessage(unsealedCopy(m)); err != nil || !bytes.Equal(out, in) {
			t.Fatalf("accepted %x, whose fields encode to %x (%v)", in, out, err)
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
	case len(m.Txs) > 0:
		return "txs"
	}
	return "none"
}

// unsealedCopy is m with copies of its transactions that keep nothing, so
// that they encode from their fields.
func unsealedCopy(m *Message) *Message {
	txs := func(in []chain.Tx) []chain.Tx {
		if in == nil {
			return nil
		}
		out := make([]chain.Tx, len(in))
		for i := range in {
			out[i] = chain.Tx{Body: in[i].Body, Sigs: in[i].Sigs}
		}
		return out
	}
	block := func(b *chain.Block) *chain.Block {
		if b == nil {
			return nil
		}
		return &chain.Block{Header: b.Header, Txs: txs(b.Txs)}
	}
	c := *m
	if m.Proposal != nil {
		c.Proposal = &Proposal{Block: *block(&m.Proposal.Block), Vote: m.Proposal.Vote}
	}
	if m.ViewChange != nil {
		vc := *m.ViewChange
		vc.Block = block(vc.Block)
		c.ViewChange = &vc
	}
	if m.NewView != nil {
		nv := *m.NewView
		nv.Proposal.Block = *block(&nv.Proposal.Block)
		c.NewView = &nv
	}
	c.Txs = txs(m.Txs)
	return &c
}
