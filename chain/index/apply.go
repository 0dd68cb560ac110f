package index

import (
	"bytes"
	"fmt"
	"math"

	"github.com/syndtr/goleveldb/leveldb"

	"auditnet/chain"
)

// Apply records every event of the committed block blk at height, given
// the outcomes chain.Machine.Execute returned for it, in one synced batch
// with the new last indexed height. A height already indexed is a no-op;
// one past LastHeight()+1 is ErrGap. The header's height must be height,
// its time after the previous block's, and its results root that of
// outcomes.
//
// Outcomes are matched to transactions by their Tx link; a non-service
// outcome settles an access request of an earlier block (or of this one),
// whose event gives the non-service its dataset, auditor and agency.
func (ix *Index) Apply(height uint64, blk *chain.Block, outcomes []chain.Outcome) error {
	if err := ix.enter(); err != nil {
		return err
	}
	defer ix.exit()
	ix.applyMu.Lock()
	defer ix.applyMu.Unlock()

	last := ix.last.Load()
	switch {
	case height <= last:
		return nil
	case height != last+1:
		return fmt.Errorf("%w: block %d, last indexed %d", ErrGap, height, last)
	case blk == nil:
		return fmt.Errorf("index: block %d is nil", height)
	case blk.Header.Height != height:
		return fmt.Errorf("index: block %d has header height %d", height, blk.Header.Height)
	case last > 0 && blk.Header.Time <= ix.lastTime:
		return fmt.Errorf("index: block %d time %d is not after block %d's %d", height, blk.Header.Time, last, ix.lastTime)
	case uint64(len(outcomes)) > math.MaxUint32:
		return fmt.Errorf("index: block %d has %d outcomes", height, len(outcomes))
	}
	root, err := chain.ResultsRoot(outcomes)
	if err != nil {
		return fmt.Errorf("index: block %d results root: %w", height, err)
	}
	if !bytes.Equal(root, blk.Header.ResultsRoot) {
		return fmt.Errorf("index: block %d: the outcomes given are not those of its results root", height)
	}
	b := &blockEvents{db: ix.db, height: height, time: blk.Header.Time, pending: map[string]*Event{}}
	events, err := b.build(blk.Txs, outcomes)
	if err != nil {
		return fmt.Errorf("index: block %d: %w", height, err)
	}
	batch := &ix.wb
	batch.Reset()
	for i := range events {
		if err := putEvent(batch, &events[i]); err != nil {
			return fmt.Errorf("index: block %d: %w", height, err)
		}
	}
	batch.Put(timeKey(blk.Header.Time, height), nil)
	batch.Put(keyLast, lastRecord(height, blk.Header.Time))
	// Not synced: the index is derived from the chain store, and a block
	// lost from it in a crash is applied again from the store when the
	// node starts (the batch carries keyLast, so it is all or nothing).
	if err := ix.db.Write(batch, nil); err != nil {
		return fmt.Errorf("index: write block %d: %w", height, err)
	}
	ix.lastTime = blk.Header.Time
	ix.last.Store(height)
	return nil
}

// putEvent adds an event and its secondary entries to batch. A secondary
// entry's value is the event's kind, so that a query filtering by kind
// reads only the events it returns.
func putEvent(batch *leveldb.Batch, ev *Event) error {
	raw, err := encodeEvent(ev)
	if err != nil {
		return err
	}
	p := place{height: ev.Height, pos: ev.Pos}
	pb := p.bytes()
	kind := []byte(ev.Kind)
	batch.Put(eventKey(p), raw)
	if ev.Dataset != nil {
		batch.Put(append(secondaryPrefix(prefixDataset, ev.Dataset.Root.Bytes()), pb...), kind)
	}
	if len(ev.Auditor) > 0 {
		batch.Put(append(secondaryPrefix(prefixAuditor, ev.Auditor), pb...), kind)
	}
	if len(ev.Agency) > 0 {
		batch.Put(append(secondaryPrefix(prefixAgency, ev.Agency), pb...), kind)
	}
	if ev.Kind == KindAccess {
		// Only a Served or a non-service looks a transaction up: its
		// request's event, for the dataset, parties and purpose it
		// settles.
		batch.Put(txKey(ev.Tx.Bytes()), pb)
	}
	return nil
}
