package chain

import (
	"bytes"
	"encoding/binary"
	"fmt"

	"github.com/ipfs/go-cid"

	"auditnet/internal/dagcbor"
)

// Read-only lookups in a committed state, for the node: the connection
// gater asks who is a member, the API what a member's role is. They may
// run concurrently with each other on a state nobody writes (a clone the
// node keeps of the last committed state).

// LookupMember returns the member record of peer p in s.
func LookupMember(s State, p []byte) (MemberRecord, bool, error) {
	var r MemberRecord
	ok, err := getRecord(s, memberKey(p), &r)
	return r, ok, err
}

// LookupDataset returns the anchor record of dataset d in s.
func LookupDataset(s State, d Dataset) (DatasetRecord, bool, error) {
	var r DatasetRecord
	ok, err := getRecord(s, datasetKey(d), &r)
	return r, ok, err
}

// LookupParams returns the parameters in force in s.
func LookupParams(s State) (Params, error) {
	var p Params
	ok, err := getRecord(s, paramsKey, &p)
	if err == nil && !ok {
		err = fmt.Errorf("chain: no params in state")
	}
	return p, err
}

// LookupGrant returns the grant on dataset d to auditor in s.
func LookupGrant(s State, d Dataset, auditor []byte) (GrantRecord, bool, error) {
	var r GrantRecord
	ok, err := getRecord(s, grantKey(d, auditor), &r)
	return r, ok, err
}

// State key prefixes of the records the node lists: members and
// datasets.
const (
	MemberKeyPrefix  = "member/"
	DatasetKeyPrefix = "dataset/"
)

// DecodeMemberEntry reads a member record's state key and value.
func DecodeMemberEntry(key, value []byte) ([]byte, MemberRecord, error) {
	var r MemberRecord
	p, ok := bytes.CutPrefix(key, []byte(MemberKeyPrefix))
	if !ok {
		return nil, r, fmt.Errorf("chain: %q is not a member key", key)
	}
	if err := dagcbor.Unmarshal(value, &r); err != nil {
		return nil, r, fmt.Errorf("chain: member record of %x: %w", p, err)
	}
	return p, r, nil
}

// DecodeDatasetEntry reads a dataset record's state key and value.
func DecodeDatasetEntry(key, value []byte) (Dataset, DatasetRecord, error) {
	var d Dataset
	var r DatasetRecord
	rest, ok := bytes.CutPrefix(key, []byte(DatasetKeyPrefix))
	if !ok {
		return d, r, fmt.Errorf("chain: %q is not a dataset key", key)
	}
	n, k := binary.Uvarint(rest)
	if k <= 0 || n > uint64(len(rest)-k) {
		return d, r, fmt.Errorf("chain: dataset key %x: bad owner length", key)
	}
	d.Owner = rest[k : k+int(n)]
	root, err := cid.Cast(rest[k+int(n):])
	if err != nil {
		return d, r, fmt.Errorf("chain: dataset key %x: root: %w", key, err)
	}
	d.Root = dagcbor.Link{Cid: root}
	if err := dagcbor.Unmarshal(value, &r); err != nil {
		return d, r, fmt.Errorf("chain: dataset record %s: %w", root, err)
	}
	return d, r, nil
}

// LookupAccess returns the record of the access request with ID id.
func LookupAccess(s State, id cid.Cid) (AccessRecord, bool, error) {
	var r AccessRecord
	ok, err := getRecord(s, accessKey(id), &r)
	return r, ok, err
}
