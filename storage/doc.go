// Package storage is auditnet's content-addressed block store: the place an
// agency node keeps its audit data.
//
// # Layout
//
// Blocks live in append-only pack files (packs/NNNNNNNN.pack, up to 256 MiB
// each); a goleveldb index maps each block's multihash to its pack, offset
// and length, records how much of each pack is committed, and holds the pins.
// Keeping 256 KiB values out of leveldb spares the data the LSM tree's
// compaction rewrites (WiscKey's design; docs/benchmarks.md has the
// measurement that chose it). Keying by multihash stores a raw block and a
// dag-pb block with the same bytes once.
//
// # Durability
//
// A Writer appends blocks to a pack, then Flush or Commit fsyncs the pack
// (and, for a new pack, its directory) before writing the index entries,
// the pack's new committed length and any pins in one synced leveldb batch.
// Only then is anything acknowledged. Open cuts every pack back to its
// committed length and deletes packs the index never recorded, so a crash
// at any point reopens to the last acknowledged state. Both the packs and
// the index go through an FS; tests run them on a file system that forgets
// unsynced writes and cut the power at every operation.
//
// # Reading
//
// Get re-hashes every block against its CID and returns a *CorruptError on
// a mismatch: disk corruption is reported, never passed on.
//
// # Pins, leases and GC
//
// Pins are recursive. GC marks what the pins reach, deletes the rest in
// small batches, then, in packs more than 1/32 dead, punches holes over the
// dead records (fallocate), as WiscKey's value-log GC does: nothing is
// copied and no free space is needed. Where the file system cannot punch
// holes, the pack's live records are rewritten into another pack instead.
// Readers and writers carry on throughout. An add in flight holds a Lease
// on every block it writes or relies on, so GC never deletes a block an
// unfinished add needs.
//
// An index write that fails stops the store's writes until it is reopened
// (ErrFailed): its outcome is unknown, and goleveldb forgets a failed
// fsync.
//
// Subpackages: dagpb (the dag-pb codec), unixfs (import and export of files
// and directories with kubo's CIDs), car (CAR v1 archives).
package storage
