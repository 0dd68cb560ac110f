package pbft

import (
	"crypto/ed25519"
	"crypto/rand"
	"fmt"
	"testing"

	voi "github.com/oasisprotocol/curve25519-voi/primitives/ed25519"
)

// BenchmarkEd25519Batch measures batch verification of a block's worth of
// transaction signatures with curve25519-voi, per signature, beside
// verifying each alone with it: what a validator could gain by verifying
// a proposed block's signatures together (see ANCHORS.md).
func BenchmarkEd25519Batch(b *testing.B) {
	for _, n := range []int{64, 1000} {
		pubs := make([]voi.PublicKey, n)
		msgs := make([][]byte, n)
		sigs := make([][]byte, n)
		for i := range n {
			seed := make([]byte, 32)
			seed[0], seed[1] = byte(i), byte(i>>8)
			sk := ed25519.NewKeyFromSeed(seed)
			pubs[i] = voi.PublicKey(sk.Public().(ed25519.PublicKey))
			msgs[i] = fmt.Appendf(nil, "tx %d with a realistic body of a few hundred bytes %0300d", i, i)
			sigs[i] = ed25519.Sign(sk, msgs[i])
		}
		b.Run(fmt.Sprintf("batch-%d", n), func(b *testing.B) {
			for b.Loop() {
				bv := voi.NewBatchVerifierWithCapacity(n)
				for i := range n {
					bv.Add(pubs[i], msgs[i], sigs[i])
				}
				if !bv.VerifyBatchOnly(rand.Reader) {
					b.Fatal("batch refused")
				}
			}
			b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N*n), "ns/sig")
		})
		b.Run(fmt.Sprintf("single-voi-%d", n), func(b *testing.B) {
			for b.Loop() {
				for i := range n {
					if !voi.Verify(pubs[i], msgs[i], sigs[i]) {
						b.Fatal("refused")
					}
				}
			}
			b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N*n), "ns/sig")
		})
	}
}
