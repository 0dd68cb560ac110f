// Package chain defines what auditnet's PBFT chain records and decides:
//
//   - the types and their encoding: transactions of every kind in DESIGN.md
//     (each signed by its sender's node key, admin transactions by k of m
//     admins), votes, headers, blocks, commit certificates and the genesis,
//     all canonical DAG-CBOR (internal/dagcbor), so that one value has one
//     encoding, one CID and one signature, and any IPLD tool reads the
//     chain; signatures cover "auditnet/<type>/v1" followed by the canonical
//     bytes of what is signed, which carries the chain id;
//   - Ed25519 keys and their libp2p peer IDs (keys.go: Signer, and peer
//     IDs read, printed and turned back into keys without libp2p, so that
//     chain/pbft builds without the network stack), and one rule for
//     verifying signatures, one at a time or in batches (verify.go:
//     VerifyTxs; txcache.go: TxCache, which decodes and verifies each
//     transaction once however often a node meets it);
//   - sealed transactions (txseal.go): a decoded transaction keeps its
//     encoding and ID, and the mark that its signatures passed;
//   - RFC 6962 Merkle roots and inclusion proofs (merkle.go), quorums and
//     commit-certificate verification (quorum.go);
//   - the state (State, MemState: key-values under an authenticated root
//     that an update rehashes in O(log n)) and the state machine (Machine:
//     Check decides whether a transaction may enter a block, Execute
//     applies a block and returns each outcome for the results root),
//     including epochs: validator-set changes taking effect at a
//     checkpoint L blocks on (epochs.go);
//   - receipts (receipt.go): a transaction and its outcome proven offline
//     from the genesis or a trusted checkpoint, through the block's roots,
//     its commit certificate and every validator-set change since.
//
// It holds no goroutine and does no I/O. The consensus core (chain/pbft),
// the audit trail's query indexes (chain/index) and the block store
// (chain/store) build on it.
package chain
