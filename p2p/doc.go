// Package p2p is auditnet's network layer: the libp2p host with its
// identity, transports, resource limits and connection gating; the private
// Kademlia DHT (protocol prefix /auditnet) through which nodes find who
// holds a dataset; and the wire protocols, one file each. fetch.go is
// /auditnet/fetch/1, the verified transfer of a dataset's DAG.
//
// Drive it from node: build a Host with NewHost, a DHT with NewDHT, a
// FetchService with NewFetchService (registered on the host) and a Fetcher
// with NewFetcher. The package starts no goroutine of its own beyond those
// go-libp2p runs for the host, and a Close stops each part.
package p2p
