// Package pbft is auditnet's consensus core: PBFT over the chain's
// blocks, as a deterministic state machine with no goroutines, clock,
// randomness or I/O (the shape of etcd-io/raft's RawNode). The node feeds
// it peer messages (Step), blocks fetched from peers (StepSync), client
// transactions (Submit) and the time in ms (Tick), and carries out what
// Ready returns: persist Records and store Committed blocks first, then
// send Messages, then fetch what Sync asks for, then call Advance.
//
// Signatures are the costly part, and the core runs on one goroutine, so
// a node checks them before the core sees them, in parallel, with a
// Verifier (one per node, safe for concurrent use): in the goroutine that
// reads a peer's stream, Verifier.DecodeMessage (it decodes and verifies
// each transaction once however many messages bring it) then
// VerifyMessage, then hands the message to the core's goroutine for Step;
// for clients' transactions, Verifier.VerifyTxs in batches, then
// SubmitBatch. What a Verifier passed carries a mark no encoding can
// carry, and the core skips it; everything else the core checks itself, so
// Step and Submit are safe without a Verifier (the simulator calls them
// directly). Messages of forwarded transactions (Message.Txs) are best
// verified by one worker per node rather than by the peers' readers, and
// consensus messages stepped before them, so that a burst of transactions
// neither holds up a vote nor takes every CPU from the core.
//
// The protocol, for a validator set of n with f = ⌊(n−1)/3⌋ and quorum
// q = ⌈(n+f+1)/2⌉ (chain.Quorum):
//
//   - Transactions a validator admits from its clients go to every other
//     validator in one message per Ready (Message.Txs).
//   - One block in flight. The leader of view v (valIDs[v mod n] of the
//     epoch) proposes the next height as soon as the previous block
//     commits and transactions wait, batching up to the genesis limits; on
//     an idle chain it proposes an empty block only while a deadline
//     counted in blocks is pending (an authorised access awaiting service,
//     a validator-set change), paced by IdleBlockIntervalMs.
//   - A proposal is the block and the leader's PREPARE vote. A backup
//     checks the header (chain, epoch, height, previous block, proposer,
//     time after the previous block's and at most Δ ahead of its clock),
//     executes the block on a clone of its state, checks every root, and
//     only then signs PREPARE. With q PREPAREs for the block a validator
//     holds a prepared certificate, persists it and signs COMMIT; q
//     COMMITs in one view commit the block, and they are its certificate.
//     Every vote signs (chain, epoch, view, sequence, phase, block CID)
//     under "auditnet/vote/v1".
//   - View change: a validator whose proposal does not commit in time,
//     whose leader is silent (no proposal nor heartbeat), or whose oldest
//     valid transaction waits too long or too many blocks (transactions
//     are forwarded to every validator, so a censoring leader is suspected
//     by all), signs a VIEW-CHANGE for v+1 carrying its last commit
//     certificate and its prepared certificate with the block. f+1 view
//     changes above a validator's view make it join the smallest; a view
//     is left on timeout only if a quorum asked for it or a later one, so
//     no validator runs ahead alone. The new leader sends a NEW-VIEW with
//     q view changes and the commit certificate of the highest block they
//     know; it must propose the highest-view prepared block at the next
//     height byte for byte, or else a fresh block, and every backup
//     re-derives that from the view changes before it votes.
//   - Checkpoints every CheckpointInterval blocks: a committed block at a
//     checkpoint height is stable (its certificate is a quorum's
//     signature over a header carrying the state root, which each of them
//     computed); validators also sign CHECKPOINT messages. The low
//     watermark follows, messages outside the window are dropped, and the
//     logs below it are collected (Ready.StableCheckpoint tells the node
//     when its write-ahead log may be truncated).
//   - Epochs: validator-set changes take effect at the first checkpoint
//     at least L blocks after they commit (chain.Machine tracks them); the
//     last block of an epoch names the next set in NextValidators. A view
//     change signs its epoch, and a set counts only its own epoch's: a
//     validator that commits the last block of an epoch while changing
//     view signs its view change again, for the same view, in the new
//     epoch (on a restart too, if its log lost that second one).
//   - Rejoining a view: a validator that missed a NEW-VIEW (it was down,
//     paused or cut off when the leader sent it) gets it from any
//     validator in that view, which sends it when the laggard's heartbeat
//     shows an earlier view or a view change to this one still under way
//     (Heartbeat.Changing), or its view change asks for a view already
//     started. The NEW-VIEW proves itself: the laggard checks it in full,
//     as it would the leader's, fetches the blocks it lacks and starts
//     the view (even past the view's first block), and votes again
//     without the others changing view. One that has asked for a later
//     view alone does not go back, having promised not to vote below it:
//     it waits for the others to come to its view.
//   - Equivocation: two votes of one validator for one slot and different
//     blocks become an Evidence transaction (one per validator and epoch),
//     which the chain records.
//   - Followers (non-validators) run the same core without voting: they
//     commit blocks from the same messages, and learn their lag from the
//     validators' signed heartbeats.
//
// Everything a restarted node needs so that it never signs two different
// blocks for one slot is in Ready.Persist: its votes (with the block of a
// PREPARE), its prepared certificates and its view changes. Restore
// rebuilds a core from the stored blocks and those records.
//
// The package's tests include a deterministic simulator (seeded: a
// failing seed replays exactly) with message loss, duplication, delay,
// replay, partitions, crashes and restarts, clock skew and Byzantine
// validators, and a checker of PBFT's invariants after every step.
package pbft
