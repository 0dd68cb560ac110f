package wal

import (
	"errors"
	"fmt"
	"math"

	"auditnet/chain"
	"auditnet/chain/pbft"
)

// EncodeRecord returns a record as an entry: its canonical DAG-CBOR
// bytes, tagged with the height the record is about (a vote's sequence,
// a prepared certificate's sequence, a view change's committed height + 1,
// a checkpoint's height).
func EncodeRecord(r pbft.Record) (Entry, error) {
	h, err := checkRecord(&r)
	if err != nil {
		return Entry{}, fmt.Errorf("encode wal record: %w", err)
	}
	b, err := chain.Marshal(&r)
	if err != nil {
		return Entry{}, fmt.Errorf("encode wal record: %w: %v", ErrBadRecord, err)
	}
	if len(b) > MaxEntrySize {
		return Entry{}, fmt.Errorf("encode wal record: %w: %d bytes, at most %d", ErrBadRecord, len(b), MaxEntrySize)
	}
	return Entry{Height: h, Data: b}, nil
}

// DecodeRecord decodes an entry EncodeRecord made. It accepts only the
// canonical bytes of a well-formed record of at most MaxEntrySize bytes,
// about the height the entry is tagged with.
func DecodeRecord(e Entry) (pbft.Record, error) {
	var r pbft.Record
	if err := chain.Decode(e.Data, MaxEntrySize, &r); err != nil {
		return pbft.Record{}, fmt.Errorf("decode wal record: %w: %v", ErrBadRecord, err)
	}
	h, err := checkRecord(&r)
	if err != nil {
		return pbft.Record{}, fmt.Errorf("decode wal record: %w", err)
	}
	if h != e.Height {
		return pbft.Record{}, fmt.Errorf("decode wal record: %w: a record about height %d tagged %d", ErrBadRecord, h, e.Height)
	}
	return r, nil
}

// checkRecord checks a record's shape, the way the core's messages are
// checked, and returns the height it is about.
func checkRecord(r *pbft.Record) (uint64, error) {
	h, err := recordHeight(r)
	if err != nil {
		return 0, fmt.Errorf("%w: %v", ErrBadRecord, err)
	}
	return h, nil
}

func recordHeight(r *pbft.Record) (uint64, error) {
	kinds := 0
	for _, set := range []bool{r.Vote != nil, r.Prepared != nil, r.ViewChange != nil, r.Checkpoint != nil} {
		if set {
			kinds++
		}
	}
	if kinds != 1 {
		return 0, fmt.Errorf("record with %d kinds, want 1", kinds)
	}
	if r.Block != nil {
		if r.Vote == nil && r.Prepared == nil {
			return 0, errors.New("block beside a record that has none")
		}
		if err := checkBlock(r.Block); err != nil {
			return 0, err
		}
	}
	switch {
	case r.Vote != nil:
		return r.Vote.Vote.Seq, nil
	case r.Prepared != nil:
		return preparedHeight(r.Prepared)
	case r.ViewChange != nil:
		vc := r.ViewChange
		if c := vc.ViewChange.Cert; c != nil && len(c.Votes) > chain.MaxValidators {
			return 0, fmt.Errorf("view change certificate with %d votes", len(c.Votes))
		}
		if p := vc.ViewChange.Prepared; p != nil {
			if _, err := preparedHeight(p); err != nil {
				return 0, fmt.Errorf("view change: %w", err)
			}
		}
		if vc.Block != nil {
			if err := checkBlock(vc.Block); err != nil {
				return 0, fmt.Errorf("view change: %w", err)
			}
		}
		if vc.ViewChange.Height == math.MaxUint64 {
			return 0, errors.New("view change at the last height there is")
		}
		return vc.ViewChange.Height + 1, nil
	}
	return r.Checkpoint.Checkpoint.Height, nil
}

// preparedHeight is the sequence a prepared certificate's votes share.
func preparedHeight(p *pbft.PreparedCert) (uint64, error) {
	if len(p.Votes) == 0 || len(p.Votes) > chain.MaxValidators {
		return 0, fmt.Errorf("prepared certificate with %d votes", len(p.Votes))
	}
	seq := p.Votes[0].Vote.Seq
	for i := range p.Votes {
		if p.Votes[i].Vote.Seq != seq {
			return 0, fmt.Errorf("prepared certificate with votes for sequences %d and %d", seq, p.Votes[i].Vote.Seq)
		}
	}
	return seq, nil
}

func checkBlock(b *chain.Block) error {
	if len(b.Txs) > chain.MaxTxsPerBlk {
		return fmt.Errorf("block with %d txs", len(b.Txs))
	}
	for i := range b.Txs {
		if err := b.Txs[i].Validate(); err != nil {
			return fmt.Errorf("block tx %d: %w", i, err)
		}
	}
	return nil
}
