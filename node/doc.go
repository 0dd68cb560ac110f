// Package node composes storage (and, in later issues, the network and the
// chain) into a running auditnet node for a role. For now it owns the repo
// (config.json, the block store, and the flock that keeps two processes
// from using one repo) and the local operations the CLI runs on it: add,
// cat, get, ls, pins, CAR export and import.
package node
