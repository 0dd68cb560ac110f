// Package unixfs imports files and directories as UnixFS DAGs and reads
// them back.
//
// The importer gives the CIDs of kubo's `ipfs add --cid-version=1`: 256 KiB
// chunks as raw leaves, the balanced layout with at most 174 links per
// node, dag-pb directories, and HAMT-sharded directories (fanout 256,
// murmur3-x64-64) once a directory's link names and CIDs exceed 256 KiB.
// Leaves are hashed on every core while one goroutine reads the input and
// the caller's goroutine builds the tree and stores blocks in order, so
// memory stays at a few chunks per core whatever the file size.
//
// Reading (FileReader, ReadDir, Resolve, Extract) fetches leaves ahead on
// several goroutines from a Getter that checks every block against its CID,
// and checks that every node's declared sizes add up.
package unixfs
