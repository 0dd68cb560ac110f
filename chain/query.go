package chain

import "fmt"

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
