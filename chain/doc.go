// Package chain defines what auditnet's PBFT chain records and how it is
// encoded: transactions (the kinds of DESIGN.md, each signed by its sender,
// admin transactions by k of m admins), blocks and their headers, votes and
// commit certificates, and the genesis. Every type is encoded as canonical
// DAG-CBOR (internal/dagcbor), so one value has one encoding, one CID and
// one signature, and any IPLD tool reads the chain. Signatures are made
// over "auditnet/<type>/v1" followed by the canonical bytes of what is
// signed, and every signed type carries the chain id.
//
// This package holds no state and does no I/O: the state machine, the
// consensus core (chain/pbft) and the block store (chain/store) build on
// it.
package chain
