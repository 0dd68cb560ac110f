package chain

import (
	"encoding/binary"
	"fmt"

	"github.com/ipfs/go-cid"

	"auditnet/internal/dagcbor"
)

// State records: what the state machine keeps, each as canonical DAG-CBOR
// under a key of its own. The blocks are the access log; the state holds
// only what later transactions are decided against.

// MemberRecord is a member of the network.
type MemberRecord struct {
	Role      string `cbor:"role"`
	Name      string `cbor:"name"`
	Validator bool   `cbor:"validator"`
}

// DatasetRecord is an anchored dataset.
type DatasetRecord struct {
	Size   uint64 `cbor:"size"`
	Name   string `cbor:"name"`
	Policy Policy `cbor:"policy"`
	Height uint64 `cbor:"height"`
	Time   int64  `cbor:"time"`
}

// GrantRecord is a grant in force.
type GrantRecord struct {
	// Grantor is the owner that granted it; empty for a grant by admins.
	Grantor []byte `cbor:"grantor"`
	Expires int64  `cbor:"expires"`
	Height  uint64 `cbor:"height"`
	// Revoked keeps a revoked grant, so a later request is denied as
	// revoked rather than never granted.
	Revoked bool `cbor:"revoked,omitempty"`
}

// AccessRecord is an authorised access request that no Served has
// settled yet: it is in the state from its block until a Served for it
// commits, or until its deadline T+1 blocks later makes it a non-service.
// Either way it then leaves the state (DESIGN.md: the state holds the
// mutable facts, the blocks are the access log), so the state holds the
// open requests of the last T blocks, not every request ever made.
type AccessRecord struct {
	Auditor  []byte  `cbor:"auditor"`
	Dataset  Dataset `cbor:"dataset"`
	Provider []byte  `cbor:"provider"`
	Height   uint64  `cbor:"height"`
}

// txList is a list of transaction IDs kept under one key (the accesses
// falling due at a height, the replay entries one height committed that
// expire at another).
type txList struct {
	IDs []dagcbor.Link `cbor:"ids"`
}

// heightList lists the heights that committed transactions expiring at
// one height.
type heightList struct {
	Heights []uint64 `cbor:"heights"`
}

func memberKey(p []byte) []byte { return append([]byte(MemberKeyPrefix), p...) }

func datasetKey(d Dataset) []byte {
	k := append([]byte(DatasetKeyPrefix), lengthPrefixed(d.Owner)...)
	return append(k, d.Root.Bytes()...)
}

func grantKey(d Dataset, auditor []byte) []byte {
	k := append([]byte("grant/"), lengthPrefixed(d.Owner)...)
	k = append(k, lengthPrefixed(d.Root.Bytes())...)
	return append(k, auditor...)
}

func accessKey(id cid.Cid) []byte { return append([]byte("access/"), id.Bytes()...) }

// evidenceKey names an equivocation: its signer and slot, whichever two
// votes show it.
func evidenceKey(v *SignedVote) []byte {
	k := append([]byte("evidence/"), lengthPrefixed(v.Signer)...)
	for _, x := range []uint64{v.Vote.Epoch, v.Vote.View, v.Vote.Seq} {
		k = append(k, uint64Bytes(x)...)
	}
	return append(k, v.Vote.Phase...)
}

func heightKey(prefix string, h uint64) []byte {
	return binary.BigEndian.AppendUint64([]byte(prefix), h)
}

// expiringKey names the list of transactions committed at height h that
// expire at height e.
func expiringKey(e, h uint64) []byte {
	return binary.BigEndian.AppendUint64(heightKey("expiring/", e), h)
}

func rateKey(auditor []byte, window uint64) []byte {
	return binary.BigEndian.AppendUint64(append([]byte("rate/"), lengthPrefixed(auditor)...), window)
}

var paramsKey = []byte("params")

func lengthPrefixed(b []byte) []byte {
	return append(binary.AppendUvarint(nil, uint64(len(b))), b...)
}

// getRecord reads a record; ok is false if there is none.
func getRecord(s State, key []byte, v any) (bool, error) {
	raw, ok := s.Get(key)
	if !ok {
		return false, nil
	}
	if err := dagcbor.Unmarshal(raw, v); err != nil {
		return false, fmt.Errorf("chain: state record %q: %w", key, err)
	}
	return true, nil
}

func putRecord(s State, key []byte, v any) error {
	raw, err := dagcbor.Marshal(v)
	if err != nil {
		return err
	}
	s.Set(key, raw)
	return nil
}

// Roles, as DESIGN.md names them (node.Role spells the same strings).
type role string

const (
	roleAgency     role = "agency"
	roleDatacenter role = "datacenter"
	roleOffice     role = "office"
	roleAuditor    role = "auditor"
)

func validRole(r string) bool {
	switch role(r) {
	case roleAgency, roleDatacenter, roleOffice, roleAuditor:
		return true
	}
	return false
}

func uint64Bytes(v uint64) []byte     { return binary.BigEndian.AppendUint64(nil, v) }
func uint64FromBytes(b []byte) uint64 { return binary.BigEndian.Uint64(b) }
