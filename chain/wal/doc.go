// Package wal is the write-ahead log of a validator's consensus records:
// what chain/pbft's Ready.Persist asks to have on stable storage before any
// message of the same Ready leaves the node, so that a validator that
// restarts never signs two different things for the same slot.
//
// Driving it (the node's loop):
//
//	w, entries, err := wal.Open(wal.Config{Dir: dir, Logger: l})
//	// decode each entry with DecodeRecord and hand them to pbft.Restore
//	for each Ready rd {
//		for _, r := range rd.Persist {
//			e, err := wal.EncodeRecord(r)
//			w.Append(e) // buffered, no syscall
//		}
//		w.Sync() // one write and one fsync per Ready; then send
//		if rd.StableCheckpoint > 0 {
//			w.Release(rd.StableCheckpoint)
//		}
//	}
//
// Any error of a write, fsync, truncate, rename or remove is sticky: every
// later Append, Sync and Release returns it, because a node that cannot
// persist what it signs must stop signing.
//
// # On disk
//
// The log is a directory of segment files named by a sequence number, zero
// padded to 20 digits: 00000000000000000000.wal, 00000000000000000001.wal…
// The numbers are consecutive; the oldest segments are deleted by Release,
// so the first need not be 0. Every integer is little-endian.
//
// A segment starts with a 24-byte header:
//
//	magic    8 bytes  "auditwal"
//	version  uint32   1
//	sequence uint64   the number in the file name
//	crc      uint32   CRC-32C (Castagnoli) of the 20 bytes before it
//
// and holds frames, one per entry, back to back:
//
//	length   uint32   bytes of payload, at most MaxEntrySize
//	crc      uint32   CRC-32C of height and payload
//	height   uint64   the entry's Height
//	payload  length bytes
//
// A new segment is written as NAME.tmp, fsynced, renamed into place and
// the directory fsynced, so a segment never exists without its header.
// Sync starts a new segment first when the current one holds a frame and
// the batch would take it past Config.SegmentBytes; a batch is never split
// across segments.
//
// # Recovery
//
// Open reads every segment in order. Damage where a crash can leave it
// (the end of the last segment, written after the last fsync) is a torn
// tail: an incomplete frame, a zero-filled tail, or a frame whose checksum
// fails with no valid frame anywhere after it. Open truncates it, logs a
// warning naming the segment, the offset and the bytes dropped, and
// returns the entries before it; appends then go on from there. A last
// segment whose header is incomplete or all zeros holds nothing and is
// rewritten with a fresh header. Anything else is a *CorruptError
// (errors.Is(err, ErrCorrupt)) and Open refuses to go on: a bad frame
// followed by a valid one, a bad or incomplete frame in any segment but
// the last, a bad header, a gap in the segment numbers. An entry that was
// once valid is never dropped silently.
//
// # Release
//
// Release(h) ends the current segment (when it holds a frame) and deletes,
// oldest first, the segments whose entries all have Height ≤ h, stopping
// at the first that does not: segments are only ever removed from the
// front, each removal followed by a directory fsync, so the numbers stay
// consecutive even if a crash or a power cut interrupts it.
//
// # Records
//
// EncodeRecord and DecodeRecord turn a pbft.Record into an Entry and back:
// the payload is the record's canonical DAG-CBOR (chain.Encode), and the
// Height is the slot the record is about (a vote's sequence, a prepared
// certificate's sequence, a view change's committed height + 1, a
// checkpoint's height). DecodeRecord accepts only canonical bytes of a
// well-formed record whose height matches its tag.
//
// # Crash testing
//
// Every write point calls internal/failpoint.Hit, so a test can stop the
// process there the way kill -9 would: wal/before-write, wal/mid-frame
// (half of a batch written), wal/after-write (written, not fsynced),
// wal/after-sync, wal/segment-before-rename (a new segment's temporary
// file written and fsynced, not yet renamed), wal/release-after-new-segment,
// wal/release-before-delete (before each deletion) and
// wal/release-after-delete (after each deletion, before its directory
// fsync).
package wal
