// Package index keeps the audit trail's query indexes: every event of every
// committed block (anchors, grants, revokes, access requests and how they
// were decided, Served, non-services, membership, parameters, evidence),
// found by dataset, auditor, agency and block time, for `auditnet log`.
//
// The indexes are derived from the blocks and their outcomes and are no
// part of the state root: a lost or stale index is rebuilt by replaying
// the committed blocks from LastHeight()+1.
//
// Drive it from the loop that applies committed blocks:
//
//	ix, err := index.Open(dir)
//	...
//	outcomes, err := machine.Execute(h, blk.Header.Time, blk.Txs)
//	...
//	if err := ix.Apply(h, blk, outcomes); err != nil { // in height order
//		return fmt.Errorf("index block %d: %w", h, err)
//	}
//	events, err := ix.Query(index.Filter{Auditor: id, Since: t0})
//
// Apply checks the outcomes against the header's results root and writes
// one goleveldb batch per block, synced: the block's events, their
// secondary entries and the new last indexed height, so that a crash
// leaves the index at a block boundary. Applying a height already indexed
// does nothing; skipping one is ErrGap.
//
// # Key layout
//
// Heights and positions are big-endian, times big-endian with the sign
// bit flipped, so that every range scan runs in (height, position) order.
// A position is the index of the event's outcome in the block's results
// (deadlines first, then one per transaction), so it is also the leaf a
// receipt proves. Variable-length parts (peer IDs, CIDs) carry a uvarint
// length prefix, so that no key prefix is another key's.
//
//	m/format                          "auditnet/index/v1"
//	m/last                            last indexed height ‖ its block time
//	e/<height><pos>                   the event, DAG-CBOR
//	d/<len‖root CID><height><pos>     kind   by dataset root (any owner)
//	a/<len‖auditor><height><pos>      kind   by auditor
//	g/<len‖agency><height><pos>       kind   by agency (the dataset's owner)
//	x/<len‖tx CID>                    <height><pos> of an access request's event
//	t/<time><height>                  ""     one per block: heights by time
//
// Block times strictly increase with height (DESIGN.md, "Time"; Apply
// refuses a block that breaks this), so a time range is a height range:
// Query turns Since and Until into heights through t/ and bounds every
// scan with them. A query naming several of dataset, auditor and agency
// walks those secondary indexes together, each seeking to the furthest
// position any of them has reached (a leapfrog join), so it costs about
// as much as the most selective one; a query naming none scans e/ over the
// height range.
//
// # Encoding
//
// An event is stored as canonical DAG-CBOR (auditnet/internal/dagcbor) of
// Event; its height and position are the key's. The format of the whole
// database is versioned by m/format: Open refuses another version, and the
// caller rebuilds. A stored value that does not decode is reported as an
// error naming its key, never a panic.
package index
