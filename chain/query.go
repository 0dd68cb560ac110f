package chain

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
