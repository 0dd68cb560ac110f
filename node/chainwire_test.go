package node

import (
	"bytes"
	"context"
	"crypto/ed25519"
	"errors"
	"log/slog"
	"strings"
	"testing"
	"time"

	"github.com/ipfs/go-cid"
	"github.com/multiformats/go-multihash"
	dto "github.com/prometheus/client_model/go"

	"auditnet/chain"
	"auditnet/chain/pbft"
	"auditnet/internal/dagcbor"
	"auditnet/p2p"
)

func testLink(t testing.TB, s string) dagcbor.Link {
	mh, err := multihash.Sum([]byte(s), multihash.SHA2_256, -1)
	if err != nil {
		t.Fatal(err)
	}
	return dagcbor.Link{Cid: cid.NewCidV1(cid.DagCBOR, mh)}
}

func seedFrames(t testing.TB) [][]byte {
	hb := &pbft.Message{Heartbeat: &pbft.SignedHeartbeat{
		Heartbeat: pbft.Heartbeat{Chain: "c", Epoch: 1, View: 2, Height: 3, Block: testLink(t, "b")},
		Signer:    bytes.Repeat([]byte{1}, 38), Sig: bytes.Repeat([]byte{2}, 64),
	}}
	msg, err := encodeMessageFrame(hb)
	if err != nil {
		t.Fatal(err)
	}
	blk := &chain.Block{Header: chain.Header{Chain: "c", Height: 4, Prev: testLink(t, "p"), Time: 5, TxRoot: []byte{1}}}
	id, err := blk.CID()
	if err != nil {
		t.Fatal(err)
	}
	cert := &chain.CommitCert{Height: 4, View: 1, Block: dagcbor.Link{Cid: id}}
	push, err := encodeBlockFrame(&pbft.Committed{Block: blk, Cert: cert})
	if err != nil {
		t.Fatal(err)
	}
	return [][]byte{msg, push, {frameFollow}}
}

// TestFrameRoundTrip encodes each kind of frame and reads it back.
func TestFrameRoundTrip(t *testing.T) {
	frames := seedFrames(t)
	in, err := decodeFrame(frames[0], pbft.NewVerifier(pbft.VerifierConfig{}))
	if err != nil || in.msg == nil || in.msg.Heartbeat == nil || in.msg.Heartbeat.Heartbeat.Height != 3 {
		t.Fatalf("message frame: %+v, %v", in, err)
	}
	in, err = decodeFrame(frames[1], pbft.NewVerifier(pbft.VerifierConfig{}))
	if err != nil || in.push == nil || in.push.Block.Header.Height != 4 || in.push.Cert.View != 1 {
		t.Fatalf("block frame: %+v, %v", in, err)
	}
	in, err = decodeFrame(frames[2], pbft.NewVerifier(pbft.VerifierConfig{}))
	if err != nil || !in.follow {
		t.Fatalf("follow frame: %+v, %v", in, err)
	}
}

// TestBadFramesRefused: empty, unknown kinds, truncations, trailing bytes
// and a follow frame with a body are each refused with errBadFrame.
func TestBadFramesRefused(t *testing.T) {
	frames := seedFrames(t)
	bad := [][]byte{
		{},
		{0},
		{99, 1, 2},
		{frameFollow, 0},
		frames[0][:len(frames[0])-1],
		append(append([]byte(nil), frames[0]...), 0),
		frames[1][:len(frames[1])-1],
		append(append([]byte(nil), frames[1]...), 0),
		{frameBlock, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x01},
	}
	for i, b := range bad {
		if _, err := decodeFrame(b, pbft.NewVerifier(pbft.VerifierConfig{})); !errors.Is(err, errBadFrame) {
			t.Errorf("frame %d (%x…): err %v, want errBadFrame", i, b[:min(len(b), 8)], err)
		}
	}
}

// FuzzDecodeFrame: any bytes from a peer decode to one meaning or an
// error, never a panic; what decodes encodes back to the same bytes.
func FuzzDecodeFrame(f *testing.F) {
	for _, s := range seedFrames(f) {
		f.Add(s)
	}
	v := pbft.NewVerifier(pbft.VerifierConfig{RememberTxs: 64})
	f.Fuzz(func(t *testing.T, b []byte) {
		in, err := decodeFrame(b, v)
		if err != nil {
			return
		}
		var again []byte
		switch {
		case in.msg != nil:
			again, err = encodeMessageFrame(in.msg)
		case in.push != nil:
			again, err = encodeBlockFrame(in.push)
		case in.follow:
			again = []byte{frameFollow}
		}
		if err != nil {
			t.Fatalf("re-encode: %v", err)
		}
		if !bytes.Equal(again, b) {
			t.Fatalf("frame %x re-encodes as %x", b, again)
		}
	})
}

// TestFullMempoolRefusesBeforeDecoding checks admission control beyond
// saturation: once a validator's mempool is full, every submission (over
// HTTP or /auditnet/tx/1) is answered busy without being decoded or
// verified, so an overloaded node spends nothing on work it cannot take.
// The bytes here are not transactions at all: a node that decoded them
// would answer "invalid".
func TestFullMempoolRefusesBeforeDecoding(t *testing.T) {
	c := &chainNode{opts: chainOptions{Timers: ChainTimers{MempoolTxs: 10}}}
	c.status.Store(&ChainStatus{Validator: true})
	raw := [][]byte{[]byte("not a tx"), {0xa2}}

	c.mempool.Store(10)
	res, err := c.submitEncoded(context.Background(), raw, false, time.Second)
	if err != nil {
		t.Fatal(err)
	}
	for i, r := range res {
		if !r.Busy || !strings.Contains(r.Error, "busy") {
			t.Fatalf("HTTP submission %d with a full mempool: %+v, want busy", i, r)
		}
	}
	for i, r := range c.handleTxs(context.Background(), "", raw) {
		if r.Code != p2p.TxBusy {
			t.Fatalf("tx/1 submission %d with a full mempool: %+v, want busy", i, r)
		}
	}

	// One below the limit, the same bytes are decoded and refused as
	// invalid: the gate is the mempool's size, not the node.
	c.mempool.Store(9)
	res, err = c.submitEncoded(context.Background(), raw, false, time.Second)
	if err != nil {
		t.Fatal(err)
	}
	for i, r := range res {
		if r.Busy || r.Error == "" {
			t.Fatalf("HTTP submission %d of garbage with room: %+v, want a decode error", i, r)
		}
	}
}

// TestForwardedTxsNeverBlockTheReader: a peer's reader hands forwarded
// transactions to the verifier's queue without waiting; when the queue is
// full they are dropped and counted, and the consensus frame behind them
// on the same stream reaches the loop at once. (Before, the reader checked
// their signatures itself and waited on a full txInbox, so a proposal or
// heartbeat behind a flood of transactions arrived late enough to look
// like a silent leader.)
func TestForwardedTxsNeverBlockTheReader(t *testing.T) {
	c := &chainNode{
		log:      slog.New(slog.DiscardHandler),
		verifier: pbft.NewVerifier(pbft.VerifierConfig{}),
		inbox:    make(chan inbound, 1),
		txInbox:  make(chan inbound), // nobody reads it
		txVerify: make(chan inbound, 1),
		stopped:  make(chan struct{}),
	}
	c.metrics = newChainMetrics(c)
	_, key, err := ed25519.GenerateKey(nil)
	if err != nil {
		t.Fatal(err)
	}
	signer := chain.NewSigner(key)
	tx := chain.Tx{Body: chain.TxBody{Chain: "c", Kind: chain.KindAnchor, Sender: signer.ID(), Expires: 10, Nonce: 1,
		Anchor: &chain.Anchor{Root: testLink(t, "d"), Size: 1, Name: "d", Policy: chain.PolicyOpen}}}
	if err := tx.Sign(signer); err != nil {
		t.Fatal(err)
	}
	txFrame, err := encodeMessageFrame(&pbft.Message{Txs: []chain.Tx{tx}})
	if err != nil {
		t.Fatal(err)
	}
	for range 3 {
		if err := c.deliver("peer", txFrame); err != nil {
			t.Fatal(err)
		}
	}
	var dropped dto.Metric
	if err := c.metrics.forwardDropped.Write(&dropped); err != nil {
		t.Fatal(err)
	}
	if got := dropped.GetCounter().GetValue(); got != 2 {
		t.Fatalf("%v forwarded transactions counted dropped, want 2 (the queue holds one)", got)
	}
	if err := c.deliver("peer", seedFrames(t)[0]); err != nil {
		t.Fatal(err)
	}
	select {
	case in := <-c.inbox:
		if in.msg == nil || in.msg.Heartbeat == nil {
			t.Fatalf("the loop got %+v, want the heartbeat", in)
		}
	default:
		t.Fatal("the heartbeat behind the transactions did not reach the loop's inbox")
	}
}
