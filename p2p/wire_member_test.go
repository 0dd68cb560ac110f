package p2p

import (
	"context"
	"sync/atomic"
	"testing"
	"time"

	"github.com/libp2p/go-libp2p/core/network"
	"github.com/libp2p/go-libp2p/core/peer"
	"github.com/libp2p/go-libp2p/core/protocol"
)

// countingSource counts the blocks read from it.
type countingSource struct {
	memSource
	reads atomic.Int32
}

func (c *countingSource) RawCommitted(h uint64) ([]byte, []byte, error) {
	c.reads.Add(1)
	return c.memSource.RawCommitted(h)
}

// TestChainProtocolsRefuseNonMembers: a peer that is not a member cannot
// open /auditnet/pbft/1, /auditnet/tx/1 or /auditnet/sync/1 on a member
// (even though it counts the member as one of its own): the streams fail,
// its transport delivers nothing, no handler runs and the member never
// holds a connection to it.
func TestChainProtocolsRefuseNonMembers(t *testing.T) {
	member := newConsensusNode(t, nil, ConsensusConfig{})
	var handled atomic.Int32
	txs, err := NewTxService(TxServiceConfig{Host: member.Host, Handle: func(_ context.Context, _ peer.ID, txs [][]byte) []TxResult {
		handled.Add(1)
		return make([]TxResult, len(txs))
	}})
	if err != nil {
		t.Fatal(err)
	}
	runPart(t, txs.Run)
	src := &countingSource{memSource: memSource{height: 10, size: 10}}
	syncs, err := NewSyncService(SyncServiceConfig{Host: member.Host, Source: src})
	if err != nil {
		t.Fatal(err)
	}
	runPart(t, syncs.Run)

	outsider := newConsensusNode(t, nil, ConsensusConfig{})
	outsider.members.Add(member.ID())
	outsider.Peerstore().AddAddrs(member.ID(), member.Addrs(), time.Hour)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()

	for _, p := range []protocol.ID{ConsensusProtocol, TxProtocol, SyncProtocol} {
		st, err := outsider.NewStream(ctx, member.ID(), p)
		if err == nil {
			st.Reset()
			t.Errorf("a non-member opened %s", p)
		}
	}
	if _, err := SubmitTxs(ctx, outsider, member.ID(), [][]byte{[]byte("tx")}); err == nil {
		t.Error("a non-member submitted transactions")
	}
	if got, err := FetchCommitted(ctx, outsider, member.ID(), 1, 5); err == nil || len(got) > 0 {
		t.Errorf("a non-member fetched %d blocks (%v)", len(got), err)
	}
	outsider.c.Send(member.ID(), []byte("vote"))
	waitFor(t, 20*time.Second, "the outsider's writer to fail twice", func() bool { return outsider.c.Stats().Redials >= 2 })

	if st := member.c.Stats(); st.ReceivedFrames != 0 || member.count(outsider.ID()) != 0 {
		t.Errorf("the member received %d frames from a non-member", st.ReceivedFrames)
	}
	if handled.Load() != 0 || src.reads.Load() != 0 {
		t.Errorf("handlers ran for a non-member: %d tx batches, %d blocks read", handled.Load(), src.reads.Load())
	}
	if member.Network().Connectedness(outsider.ID()) == network.Connected {
		t.Error("the member holds a connection to a non-member")
	}
}
