package pbft

import (
	"bytes"
	"errors"
	"strings"
	"testing"

	"auditnet/chain"
)

// verifyNet is 4 validators whose messages the test carries by hand.
type verifyNet struct {
	w      *world
	net    *benchNet
	leader int
	backup int // a validator that does not lead view 0
	load   *workload
}

func newVerifyNet(t *testing.T) *verifyNet {
	w := newWorld(t, 4, 0, benchParams())
	net := newBenchNet(t, w, 4)
	vn := &verifyNet{w: w, net: net, leader: net.ids[string(net.cores[0].Leader())], load: &workload{tb: t, w: w}}
	vn.backup = (vn.leader + 1) % 4
	return vn
}

// wire returns m as a peer receives it: encoded, then decoded, so
// unmarked.
func wire(t *testing.T, m *Message) *Message {
	t.Helper()
	raw, err := EncodeMessage(m)
	if err != nil {
		t.Fatal(err)
	}
	d, err := DecodeMessage(raw)
	if err != nil {
		t.Fatal(err)
	}
	return d
}

// badSig returns a copy of sig with one bit flipped.
func badSig(sig []byte) []byte {
	out := append([]byte(nil), sig...)
	out[7] ^= 1
	return out
}

// badTx is a well-formed transaction whose signature does not hold.
func (vn *verifyNet) badTx() *chain.Tx {
	tx := vn.load.next(probePick, 500)
	tx.Sigs = []chain.Signature{{Signer: tx.Sigs[0].Signer, Sig: badSig(tx.Sigs[0].Sig)}}
	return tx
}

// proposal has the leader propose a block of txs, tampered as the hook
// says, and returns its proposal message.
func (vn *verifyNet) proposal(t *testing.T, tamper func([]chain.Tx) []chain.Tx, txs ...*chain.Tx) *Message {
	t.Helper()
	l := vn.net.cores[vn.leader]
	l.hooks.txs = tamper
	for _, err := range l.SubmitBatch(txs) {
		if err != nil {
			t.Fatal(err)
		}
	}
	for _, out := range l.Ready().Messages {
		if out.Msg.Proposal != nil {
			l.Advance()
			return out.Msg
		}
	}
	t.Fatal("the leader proposed nothing")
	return nil
}

func hasVote(rd Ready) bool {
	for _, out := range rd.Messages {
		if out.Msg.Vote != nil {
			return true
		}
	}
	return false
}

// TestStepRefusesUnverifiedBadSignatures: a message or transaction with a
// bad signature that no Verifier marked is refused by Step and changes
// nothing; one the Verifier refused is refused by Step too, even though
// the Verifier marked the rest of the message.
func TestStepRefusesUnverifiedBadSignatures(t *testing.T) {
	for _, viaVerifier := range []bool{false, true} {
		name := "unmarked"
		if viaVerifier {
			name = "through a verifier"
		}
		t.Run(name, func(t *testing.T) {
			step := func(vn *verifyNet, from int, m *Message) (error, error) {
				m = wire(t, m)
				var verr error
				if viaVerifier {
					verr = NewVerifier(VerifierConfig{}).VerifyMessage(m)
				}
				return verr, vn.net.cores[vn.backup].Step(vn.net.cores[from].ID(), m)
			}
			t.Run("forwarded tx", func(t *testing.T) {
				vn := newVerifyNet(t)
				good := vn.load.next(probePick, 500)
				verr, err := step(vn, vn.leader, &Message{Txs: []chain.Tx{*good, *vn.badTx()}})
				if viaVerifier && !errors.Is(verr, chain.ErrBadSignature) {
					t.Fatalf("verifier: %v", verr)
				}
				if err == nil || !strings.Contains(err.Error(), "tx 1") || !errors.Is(err, chain.ErrInvalidTx) {
					t.Fatalf("step: %v", err)
				}
				if got := vn.net.cores[vn.backup].MempoolSize(); got != 1 {
					t.Fatalf("mempool holds %d, want the good tx only", got)
				}
			})
			t.Run("proposal holding a bad tx", func(t *testing.T) {
				vn := newVerifyNet(t)
				bad := vn.badTx()
				m := vn.proposal(t, func(txs []chain.Tx) []chain.Tx { return append(txs, *bad) }, vn.load.next(probePick, 500))
				verr, err := step(vn, vn.leader, m)
				if viaVerifier && !errors.Is(verr, chain.ErrBadSignature) {
					t.Fatalf("verifier: %v", verr)
				}
				if !errors.Is(err, ErrInvalidBlock) || !strings.Contains(err.Error(), "bad signature") {
					t.Fatalf("step: %v", err)
				}
				if rd := vn.net.cores[vn.backup].Ready(); hasVote(rd) {
					t.Fatal("the backup voted for the block")
				}
			})
			t.Run("proposal vote", func(t *testing.T) {
				vn := newVerifyNet(t)
				m := vn.proposal(t, nil, vn.load.next(probePick, 500))
				m.Proposal.Vote.Sig = badSig(m.Proposal.Vote.Sig)
				verr, err := step(vn, vn.leader, m)
				if viaVerifier && !errors.Is(verr, chain.ErrBadSignature) {
					t.Fatalf("verifier: %v", verr)
				}
				if !errors.Is(err, chain.ErrBadSignature) {
					t.Fatalf("step: %v", err)
				}
				if rd := vn.net.cores[vn.backup].Ready(); hasVote(rd) {
					t.Fatal("the backup voted for the block")
				}
			})
			t.Run("heartbeat", func(t *testing.T) {
				vn := newVerifyNet(t)
				l := vn.net.cores[vn.leader]
				l.Tick(vn.net.now + 1)
				var hb *Message
				for _, out := range l.Ready().Messages {
					if out.Msg.Heartbeat != nil {
						hb = out.Msg
					}
				}
				if hb == nil {
					t.Fatal("no heartbeat")
				}
				forged := *hb.Heartbeat
				forged.Heartbeat.Height = 40 // would make the backup sync
				verr, err := step(vn, vn.leader, &Message{Heartbeat: &forged})
				if viaVerifier && !errors.Is(verr, chain.ErrBadSignature) {
					t.Fatalf("verifier: %v", verr)
				}
				if !errors.Is(err, chain.ErrBadSignature) {
					t.Fatalf("step: %v", err)
				}
				if rd := vn.net.cores[vn.backup].Ready(); rd.Sync != nil || vn.net.cores[vn.backup].KnownHeight() != 0 {
					t.Fatal("the backup believed the forged heartbeat")
				}
			})
		})
	}
}

// TestVerifiedMarkIsNotEncoded: VerifyMessage marks a message so that Step
// does not check its signatures again (shown here by changing a signature
// after the mark, which a node must never do), but the mark is no part of
// the encoding: the same bytes decoded are unmarked, and Step checks them.
func TestVerifiedMarkIsNotEncoded(t *testing.T) {
	vn := newVerifyNet(t)
	m := wire(t, vn.proposal(t, nil, vn.load.next(probePick, 500)))
	if err := NewVerifier(VerifierConfig{}).VerifyMessage(m); err != nil || !m.verified {
		t.Fatalf("verify: %v, marked %v", err, m.verified)
	}
	m.Proposal.Vote.Sig = badSig(m.Proposal.Vote.Sig)
	raw, err := EncodeMessage(m)
	if err != nil {
		t.Fatal(err)
	}
	decoded, err := DecodeMessage(raw)
	if err != nil {
		t.Fatal(err)
	}
	if decoded.verified {
		t.Fatal("a decoded message arrived marked")
	}
	other := newVerifyNet(t)
	if err := other.net.cores[other.backup].Step(other.net.cores[other.leader].ID(), decoded); !errors.Is(err, chain.ErrBadSignature) {
		t.Fatalf("the unmarked copy: %v", err)
	}
	if err := vn.net.cores[vn.backup].Step(vn.net.cores[vn.leader].ID(), m); err != nil {
		t.Fatalf("the marked message: %v", err)
	}
	if !hasVote(vn.net.cores[vn.backup].Ready()) {
		t.Fatal("the marked message was not taken")
	}
}

// TestForwardOneMessagePerReady: the transactions a validator admits from
// clients between two Readys go to the others in one message, ahead of
// the Ready's other messages; those committed meanwhile are left out.
func TestForwardOneMessagePerReady(t *testing.T) {
	vn := newVerifyNet(t)
	c := vn.net.cores[vn.backup]
	var txs []*chain.Tx
	for range 5 {
		txs = append(txs, vn.load.next(probePick, 500))
	}
	for _, err := range c.SubmitBatch(txs[:3]) {
		if err != nil {
			t.Fatal(err)
		}
	}
	if err := c.Submit(txs[3]); err != nil {
		t.Fatal(err)
	}
	c.Tick(vn.net.now + 1) // a heartbeat joins the Ready
	rd := c.Ready()
	c.Advance()
	if len(rd.Messages) != 2 || len(rd.Messages[0].Msg.Txs) != 4 || rd.Messages[1].Msg.Heartbeat == nil {
		t.Fatalf("Ready sends %d messages, the first with %d txs", len(rd.Messages), len(rd.Messages[0].Msg.Txs))
	}
	if err := c.Submit(txs[4]); err != nil {
		t.Fatal(err)
	}
	id, _ := txs[4].ID()
	c.mempool.remove(id) // as if committed before the Ready
	if c.HasReady() && len(c.Ready().Messages) != 0 {
		t.Fatal("a transaction no longer waiting was forwarded")
	}
}

// TestForwardSplitsLargeBatches: more transactions than one message may
// hold go in several, each of which recipients accept.
func TestForwardSplitsLargeBatches(t *testing.T) {
	if testing.Short() {
		t.Skip("signs 10,001 transactions")
	}
	vn := newVerifyNet(t)
	c := vn.net.cores[vn.backup]
	for range maxForwardTxs + 1 {
		tx := vn.load.next(probePick, 500)
		if err := tx.Seal(); err != nil {
			t.Fatal(err)
		}
		id, _ := tx.ID()
		raw, _ := tx.Encoding()
		c.mempool.add(tx, id, len(raw), 0, 0) // admitted, without the cost of checking each
		c.forward = append(c.forward, tx)
	}
	msgs := c.Ready().Messages
	if len(msgs) != 2 || len(msgs[0].Msg.Txs) != maxForwardTxs || len(msgs[1].Msg.Txs) != 1 {
		t.Fatalf("%d messages", len(msgs))
	}
	for _, out := range msgs {
		wire(t, out.Msg) // decodes, so within every limit
	}
}

// TestWireMessageDecodesAsMessage: for every message of a simulated run,
// a Verifier's DecodeMessage gives what DecodeMessage gives, and once it
// has verified a message's transactions it decodes them again from
// memory, verified.
func TestWireMessageDecodesAsMessage(t *testing.T) {
	sc := randomScenario(38)
	s := newSim(t, sc, newWorld(t, sc.n, 2, simParams()))
	s.run()
	v := NewVerifier(VerifierConfig{})
	kinds := map[string]bool{}
	for _, raw := range s.old {
		want, err := DecodeMessage(raw)
		if err != nil {
			t.Fatal(err)
		}
		kinds[messageKind(want)] = true
		for pass := range 2 {
			got, err := v.DecodeMessage(raw)
			if err != nil {
				t.Fatalf("%s: %v", messageKind(want), err)
			}
			a, _ := EncodeMessage(unsealedCopy(got))
			b, _ := EncodeMessage(unsealedCopy(want))
			if !bytes.Equal(a, b) || !bytes.Equal(a, raw) {
				t.Fatalf("%s: the verifier decoded another message", messageKind(want))
			}
			if pass == 0 {
				_ = v.VerifyMessage(got)
				continue
			}
			for _, txs := range [][]chain.Tx{got.Txs, proposalTxs(got)} {
				for i := range txs {
					if !txs[i].SignaturesVerified() {
						t.Fatalf("%s: tx %d decoded again, not taken from memory", messageKind(want), i)
					}
				}
			}
		}
	}
	if !kinds["txs"] || !kinds["proposal"] {
		t.Fatalf("the run sent only %v", kinds)
	}
}

func proposalTxs(m *Message) []chain.Tx {
	if m.Proposal == nil {
		return nil
	}
	return m.Proposal.Block.Txs
}
