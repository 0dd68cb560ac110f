// Package store keeps the committed chain on goleveldb: every block with
// its commit certificate and outcomes, an index from transaction to
// block, every validator-set change (for receipts) and the state after
// the last block, so that a node restarts from its last block
// (pbft.RestoreSnapshot) instead of re-executing the chain from genesis.
//
// Drive it from the loop that carries out the consensus core's Ready:
//
//	st, err := store.Open(store.Config{Dir: dir, Genesis: g})
//	...
//	snap, err := st.Snapshot() // the zero Snapshot at height 0
//	core, err := pbft.RestoreSnapshot(cfg, now, snap, wal)
//	...
//	for _, c := range rd.Committed {
//		if err := st.Commit(c); err != nil { // durable before anything is sent
//			return fmt.Errorf("store block: %w", err)
//		}
//	}
//
// # Atomicity
//
// Commit writes one block in one synced goleveldb batch: the block, its
// certificate, its outcomes, its transactions' index entries, the state
// changes since the previous block, the epoch change if the block ends
// its epoch, and the head record. goleveldb applies
// a batch whole or not at all, so a crash at any point leaves the store at
// a block boundary: the head names block h, blocks 1..h are stored whole
// with their index entries, the stored state is the state after h and
// nothing of h+1 is there. The state changes are found by diffing the
// block's state (pbft.Committed.State) against the previous one, which
// the store keeps in memory; the two share every trie node the block did
// not change, so the diff costs O(changes·log n) (chain.MemState.Diff).
//
// Open checks what it finds before anything uses it: the format and the
// genesis the store was made for, that the head record names the last
// block stored and that block 1 is the first, that the last block's
// certificate is its own, that the state loaded from disk has the root
// the last header commits to, and that there is one epoch change per
// epoch before the state's, the last naming the state's validator set. It
// says which of these fails.
//
// A Commit that fails after its checks (a goleveldb error, a full disk)
// leaves the store refusing every later Commit: the node stops, and a
// restart reopens the store at its last whole block.
//
// # Key layout
//
// Heights are big-endian, so blocks are stored in height order; variable
// parts carry a uvarint length prefix, so no key prefix is another key's.
//
//	m/format            "auditnet/store/v2"
//	m/genesis           the genesis CID
//	m/head              height ‖ block time ‖ block CID of the last block
//	b/<height>          the block, canonical DAG-CBOR (its CID is its header's)
//	c/<height>          its commit certificate, canonical DAG-CBOR
//	o/<height>          its outcomes, DAG-CBOR
//	x/<len‖tx CID>      height ‖ index of the tx in its block (uint32)
//	e/<epoch>           the chain.EpochChange ending that epoch, DAG-CBOR
//	s/<state key>       the state value after the last block
//
// Stored values are decoded with limits and checked; a value that does not
// decode is an error naming the block it belongs to, never a panic.
package store
