package chain

import (
	"encoding/binary"
	"fmt"
	"testing"

	"auditnet/internal/dagcbor"
)

// BenchmarkExecuteAnchors runs what every validator does for each block of
// 2,000 anchors on a chain that already holds the given number of
// datasets: execute the block on a clone of the committed state (checks,
// replay set, records), take the state root, and diff the new state
// against the committed one, as the store does to write it. The state
// grows by the block as it would on a chain. Signatures are taken as
// verified (they are measured apart), and every transaction is sealed, as
// one decoded from the network is.
func BenchmarkExecuteAnchors(b *testing.B) {
	const block = 2000
	for _, size := range []int{0, 200_000, 1_000_000} {
		b.Run(fmt.Sprintf("datasets=%d", size), func(b *testing.B) {
			g := sampleGenesis(b)
			agency, id := testKey(b, 70)
			g.Members = append(g.Members, GenesisMember{PeerID: PeerIDString(id), Role: "agency", Name: "agency"})
			var builder MemStateBuilder
			value := make([]byte, 90) // about a dataset record's size
			for i := 0; i < size; i++ {
				builder.Add(datasetKey(Dataset{Owner: id, Root: benchRoot(uint64(i))}), value)
			}
			state, err := builder.Build()
			if err != nil {
				b.Fatal(err)
			}
			if _, err := NewMachine(g, state); err != nil {
				b.Fatal(err)
			}
			state.Root()
			cache := NewReplayCache()
			txsAt := func(h uint64) []Tx {
				txs := make([]Tx, block)
				for j := range txs {
					n := uint64(size) + (h-1)*block + uint64(j)
					tx := Tx{Body: TxBody{Chain: g.ChainID, Kind: KindAnchor, Sender: id, Expires: h + g.Params.ReplayWindow/2, Nonce: n,
						Anchor: &Anchor{Root: benchRoot(n), Size: 1 << 20, Name: "bench", Policy: PolicyOpen}}}
					if err := tx.Sign(agency); err != nil {
						b.Fatal(err)
					}
					raw, err := EncodeTx(&tx)
					if err != nil {
						b.Fatal(err)
					}
					sealed, err := DecodeTx(raw)
					if err != nil {
						b.Fatal(err)
					}
					txs[j] = *sealed
				}
				return txs
			}
			h := uint64(1)
			next := txsAt(h)
			for b.Loop() {
				st := state.Clone().(*MemState)
				m, err := NewMachine(g, st)
				if err != nil {
					b.Fatal(err)
				}
				m.SkipVerified(func(*Tx) bool { return true })
				m.ShareReplayCache(cache)
				out, err := m.Execute(h, g.Time+int64(h), next)
				if err != nil || len(out) < block {
					b.Fatalf("block %d: %d outcomes, %v", h, len(out), err)
				}
				st.Root()
				st.Diff(state)
				state = st
				h++
				b.StopTimer()
				next = txsAt(h)
				b.StartTimer()
			}
			b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N*block), "ns/tx")
		})
	}
}

// benchRoot is the n-th of a run of distinct dataset roots.
func benchRoot(n uint64) dagcbor.Link {
	return testRoot(string(binary.BigEndian.AppendUint64(nil, n)))
}
