package pbft

import (
	"encoding/hex"
	"flag"
	"path/filepath"
	"testing"

	"auditnet/chain"
	"auditnet/internal/dagcbor"
	"auditnet/internal/golden"
)

var update = flag.Bool("update", false, "rewrite the golden vectors in testdata/")

type vector struct {
	SigningBytes string `json:"signing_bytes"`
	Encoding     string `json:"encoding"`
	CID          string `json:"cid"`
}

// TestGoldenVectors pins the signing bytes and encodings of the signed
// consensus types this package adds (view change, checkpoint, heartbeat;
// votes are pinned in chain's), and the encoding of a message of
// forwarded transactions: a change to any of them changes what validators
// sign or send, so it must show in the diff of testdata/vectors.json
// (rewritten with -update).
func TestGoldenVectors(t *testing.T) {
	sk, _ := key(t, "node", 0)
	other, _ := key(t, "node", 1)
	block := dagcbor.Link{Cid: fakeCID(1)}
	prep := func(s chain.Signer) chain.SignedVote {
		sv, err := chain.SignVote(chain.Vote{Chain: simChain, Epoch: 1, View: 2, Seq: 30, Phase: chain.PhasePrepare, Block: block}, s)
		if err != nil {
			t.Fatal(err)
		}
		return sv
	}
	commit, err := chain.SignVote(chain.Vote{Chain: simChain, Epoch: 1, View: 2, Seq: 29, Phase: chain.PhaseCommit, Block: dagcbor.Link{Cid: fakeCID(2)}}, sk)
	if err != nil {
		t.Fatal(err)
	}
	vc := ViewChange{Chain: simChain, Epoch: 1, View: 3, Height: 29,
		Cert:     &chain.CommitCert{Height: 29, View: 2, Block: commit.Vote.Block, Votes: []chain.SignedVote{commit}},
		Prepared: &PreparedCert{View: 2, Block: block, Votes: []chain.SignedVote{prep(sk), prep(other)}}}
	cp := Checkpoint{Chain: simChain, Epoch: 1, Height: 32, Block: block}
	hb := Heartbeat{Chain: simChain, Epoch: 1, View: 3, Height: 29, Block: commit.Vote.Block}
	got := map[string]vector{}
	for name, c := range map[string]struct {
		tag string
		v   any
	}{"viewchange": {TagViewChange, &vc}, "checkpoint": {TagCheckpoint, &cp}, "heartbeat": {TagHeartbeat, &hb}} {
		sb, err := chain.SigningBytes(c.tag, c.v)
		if err != nil {
			t.Fatal(err)
		}
		signer, sig, err := sign(c.tag, c.v, sk)
		if err != nil {
			t.Fatal(err)
		}
		var m *Message
		switch name {
		case "viewchange":
			m = &Message{ViewChange: &SignedViewChange{ViewChange: vc, Signer: signer, Sig: sig}}
		case "checkpoint":
			m = &Message{Checkpoint: &SignedCheckpoint{Checkpoint: cp, Signer: signer, Sig: sig}}
		default:
			m = &Message{Heartbeat: &SignedHeartbeat{Heartbeat: hb, Signer: signer, Sig: sig}}
		}
		enc, id, err := chain.Encode(m)
		if err != nil {
			t.Fatal(err)
		}
		got[name] = vector{hex.EncodeToString(sb), hex.EncodeToString(enc), id.String()}
	}
	// A message of forwarded transactions: two agencies' anchors.
	w := newWorld(t, 4, 0, simParams())
	load := &workload{tb: t, w: w}
	txs := []chain.Tx{*load.next(probePick, 40), *load.next(2, 40)}
	enc, id, err := chain.Encode(&Message{Txs: txs})
	if err != nil {
		t.Fatal(err)
	}
	got["txs"] = vector{Encoding: hex.EncodeToString(enc), CID: id.String()}
	golden.Check(t, filepath.Join("testdata", "vectors.json"), got, *update)
}

// TestIPLDReadsOurMessages checks that go-ipld-prime's DAG-CBOR codec
// decodes every kind of consensus message and write-ahead record a
// simulated run produced, and re-encodes each to the same bytes.
func TestIPLDReadsOurMessages(t *testing.T) {
	sc := randomScenario(38)
	s := newSim(t, sc, newWorld(t, sc.n, 2, simParams()))
	s.run()
	var encodings [][]byte
	seen := map[string]bool{}
	for _, raw := range s.old {
		m, err := DecodeMessage(raw)
		if err != nil {
			t.Fatal(err)
		}
		if k := messageKind(m); !seen[k] {
			seen[k] = true
			encodings = append(encodings, raw)
		}
	}
	for _, n := range s.nodes {
		for i := range n.wal {
			b, _, err := chain.Encode(&n.wal[i])
			if err != nil {
				t.Fatal(err)
			}
			encodings = append(encodings, b)
		}
	}
	if len(seen) < 6 {
		t.Fatalf("the run produced only %v", seen)
	}
	golden.IPLDRoundTrip(t, encodings)
}
