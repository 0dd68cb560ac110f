package node

import (
	"context"
	"crypto/ed25519"
	"crypto/rand"
	"fmt"
	"runtime"
	"slices"
	"time"

	"auditnet/chain"
)

// VerifyResult is what BenchVerify measured: the cost of checking one
// transaction signature alone and in a batch, and the ceiling each puts
// on a chain of Validators validators on this machine, every validator
// checking every signature: cores ÷ (validators × signatures per tx ×
// cost).
type VerifyResult struct {
	Cores         int     `json:"Cores"`
	Validators    int     `json:"Validators"`
	SingleMicros  float64 `json:"SingleMicros"`
	BatchMicros   float64 `json:"BatchMicros"`
	CeilingSingle float64 `json:"CeilingSingle"`
	CeilingBatch  float64 `json:"CeilingBatch"`
}

// verifyBatch is the batch size BenchVerify measures: about a block.
const verifyBatch = 1024

// BenchVerify measures signature verification of single-signature
// transactions on this machine, on one goroutine, the median of rounds.
func BenchVerify(ctx context.Context, validators, rounds int) (VerifyResult, error) {
	res := VerifyResult{Cores: runtime.NumCPU(), Validators: validators}
	var raws [][]byte
	g := &txGen{chainID: "bench", window: 100}
	for range verifyBatch {
		_, key, err := ed25519.GenerateKey(rand.Reader)
		if err != nil {
			return res, err
		}
		s := chain.NewSigner(key)
		tx, _, err := g.anchor(benchSigner{id: s.ID(), signer: s})
		if err != nil {
			return res, err
		}
		raw, err := chain.EncodeTx(tx)
		if err != nil {
			return res, err
		}
		raws = append(raws, raw)
	}
	fresh := func() ([]*chain.Tx, error) {
		txs := make([]*chain.Tx, len(raws))
		for i, b := range raws {
			tx, err := chain.DecodeTx(b)
			if err != nil {
				return nil, err
			}
			txs[i] = tx
		}
		return txs, nil
	}
	var single, batch []float64
	for range max(rounds, 1) {
		if err := ctx.Err(); err != nil {
			return res, err
		}
		txs, err := fresh()
		if err != nil {
			return res, err
		}
		start := time.Now()
		for _, tx := range txs {
			if err := tx.VerifySignatures(); err != nil {
				return res, fmt.Errorf("bench verify: %w", err)
			}
		}
		single = append(single, float64(time.Since(start).Microseconds())/float64(len(txs)))
		if txs, err = fresh(); err != nil {
			return res, err
		}
		start = time.Now()
		for _, err := range chain.VerifyTxs(txs) {
			if err != nil {
				return res, fmt.Errorf("bench verify: %w", err)
			}
		}
		batch = append(batch, float64(time.Since(start).Microseconds())/float64(len(txs)))
	}
	slices.Sort(single)
	slices.Sort(batch)
	res.SingleMicros, res.BatchMicros = single[len(single)/2], batch[len(batch)/2]
	ceiling := func(us float64) float64 { return float64(res.Cores) / (float64(validators) * us / 1e6) }
	res.CeilingSingle, res.CeilingBatch = ceiling(res.SingleMicros), ceiling(res.BatchMicros)
	return res, nil
}
