// Package p2p is auditnet's network layer: the libp2p host with its
// identity, transports, resource limits and connection gating; the private
// Kademlia DHT (protocol prefix /auditnet) through which nodes find who
// holds a dataset; and the wire protocols, one file each. fetch.go is
// /auditnet/fetch/1, the verified transfer of a dataset's DAG; pbft.go is
// /auditnet/pbft/1, the consensus messages (one long-lived stream per peer
// with a bounded send queue that never blocks the core); tx.go is
// /auditnet/tx/1, transactions submitted to a validator; sync.go is
// /auditnet/sync/1, committed blocks and certificates for catch-up. The
// chain's payloads are opaque here: node encodes and decodes them.
//
// Drive it from node: build a Host with NewHost, a DHT with NewDHT, a
// FetchService with NewFetchService (registered on the host) and a Fetcher
// with NewFetcher; Consensus, TxService and SyncService each have a
// Run(ctx) that returns once their goroutines have exited. Beyond those
// and the ones go-libp2p runs for the host, the package starts no
// goroutine, and a Close stops each part.
package p2p
