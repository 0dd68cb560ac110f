package main

import (
	"encoding/base64"
	"encoding/binary"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/ipfs/go-cid"

	"auditnet/chain"
	"auditnet/internal/dagcbor"
	"auditnet/node"
)

// anchorLine is what `add` prints for an anchored root.
type anchorLine struct {
	cid, tx, policy string
	height          uint64
	existing        bool
}

// parseAnchor finds the anchor line of root in add's output.
func parseAnchor(t *testing.T, out, root string) anchorLine {
	t.Helper()
	for _, line := range strings.Split(out, "\n") {
		var a anchorLine
		rest, ok := strings.CutPrefix(line, "anchored "+root+" ")
		if !ok {
			continue
		}
		a.cid = root
		if r, ok := strings.CutPrefix(rest, "already "); ok {
			rest, a.existing = r, true
		}
		var tail string
		if _, err := fmt.Sscanf(rest, "at height %d (tx %s %s", &a.height, &a.tx, &tail); err != nil {
			t.Fatalf("anchor line %q: %v", line, err)
		}
		a.tx = strings.TrimSuffix(a.tx, ",")
		a.policy = strings.TrimSuffix(tail, ")")
		return a
	}
	t.Fatalf("add printed no anchor for %s:\n%s", root, out)
	return anchorLine{}
}

// TestAddAnchors: `add` on an agency's daemon anchors the dataset and
// returns once the anchor has committed, on a validator agency and on a
// follower agency alike; the anchor on the chain holds the root, the
// encoded size, the name and the policy; adding the same bytes again
// anchors nothing; another agency's anchor of the same bytes is its own
// dataset; only the open dataset is announced in the DHT.
func TestAddAnchors(t *testing.T) {
	skipShort(t)
	c := newChainNet(t, 4, 1)
	c.startAll(t)
	var validatorAgency, followerAgency, office *netNode
	for _, n := range c.nodes {
		switch {
		case n.Role == "agency" && n.Validator:
			validatorAgency = n
		case n.Role == "agency":
			followerAgency = n
		case n.Role == "office":
			office = n
		}
	}
	dir := t.TempDir()
	openFile, restrictedFile := filepath.Join(dir, "ledger-2025.csv"), filepath.Join(dir, "payroll.csv")
	if err := os.WriteFile(openFile, []byte(strings.Repeat("account,amount\n", 40_000)), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(restrictedFile, []byte("name,salary\nA,1\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	openRoot := strings.TrimSpace(mustCLI(t, "add", "-Q", "--only-hash", openFile))
	restrictedRoot := strings.TrimSpace(mustCLI(t, "add", "-Q", "--only-hash", restrictedFile))

	first := parseAnchor(t, mustCLI(t, "--repo", followerAgency.Dir, "add", "--policy", "open", openFile), openRoot)
	if first.existing || first.policy != "open" || first.height == 0 {
		t.Fatalf("first add: %+v", first)
	}
	// The add returned after the commit: a validator has it now.
	lookup, err := office.tx(t, first.tx)
	if err != nil {
		t.Fatalf("the anchor %s is not on the chain when add returns: %v", first.tx, err)
	}
	body := lookup.Tx.Body
	switch {
	case lookup.Height != first.height || lookup.Outcome == nil || lookup.Outcome.Code != chain.OutcomeOK:
		t.Fatalf("anchor tx at height %d with outcome %+v, add said %d", lookup.Height, lookup.Outcome, first.height)
	case body.Kind != chain.KindAnchor || body.Anchor.Root.Cid.String() != openRoot || chain.PeerIDString(body.Sender) != followerAgency.PeerID:
		t.Fatalf("anchor tx %+v", body)
	case body.Anchor.Name != "ledger-2025.csv" || body.Anchor.Policy != chain.PolicyOpen:
		t.Fatalf("anchor of %q, policy %s", body.Anchor.Name, body.Anchor.Policy)
	case body.Anchor.Size <= 40_000*15: // the encoded DAG: content and its nodes
		t.Fatalf("anchored size %d for %d content bytes", body.Anchor.Size, 40_000*15)
	}

	again := parseAnchor(t, mustCLI(t, "--repo", followerAgency.Dir, "add", "--policy", "restricted", openFile), openRoot)
	if !again.existing || again.tx != first.tx || again.height != first.height || again.policy != "open" {
		t.Fatalf("re-add: %+v, first %+v", again, first)
	}

	restricted := parseAnchor(t, mustCLI(t, "--repo", validatorAgency.Dir, "add", restrictedFile), restrictedRoot)
	if restricted.existing || restricted.policy != "restricted" {
		t.Fatalf("validator agency's add: %+v", restricted)
	}
	other := parseAnchor(t, mustCLI(t, "--repo", validatorAgency.Dir, "add", "--policy", "open", openFile), openRoot)
	if other.existing || other.tx == first.tx {
		t.Fatalf("another agency's anchor of the same bytes: %+v, first %+v", other, first)
	}

	// Only open datasets are announced: both agencies announce the open
	// root; neither announces the restricted one.
	providers := func(root string) string {
		out, _, _ := cli(t, nil, "--repo", office.Dir, "providers", root)
		return out
	}
	eventually(t, "both agencies provide the open dataset", chainWait, func() (bool, string) {
		out := providers(openRoot)
		return strings.Contains(out, followerAgency.PeerID) && strings.Contains(out, validatorAgency.PeerID), out
	})
	// The restricted root was added before the validator agency's open
	// one, so had it been announced it would be found by now.
	if out := providers(restrictedRoot); strings.Contains(out, validatorAgency.PeerID) {
		t.Fatalf("the restricted dataset is announced in the DHT: %s", out)
	}

	// A node that is not an agency stores what it adds and anchors nothing.
	out := mustCLI(t, "--repo", office.Dir, "add", restrictedFile)
	if strings.Contains(out, "anchored") {
		t.Fatalf("an office node anchored: %s", out)
	}
}

// roles returns the nodes the audit tests drive: the agency that follows
// the chain (the holder), the auditor (nil in a net without one), and an
// audit-office validator (the last).
func (c *chainNet) roles(t *testing.T) (agency, auditor, office *netNode) {
	t.Helper()
	for _, n := range c.nodes {
		switch {
		case n.Role == "agency" && !n.Validator:
			agency = n
		case n.Role == "auditor":
			auditor = n
		case n.Role == "office":
			office = n
		}
	}
	if agency == nil || office == nil {
		t.Fatal("the testnet has no follower agency or no office node")
	}
	return agency, auditor, office
}

// access submits an access request of auditor for ds from its owner
// through via, and returns its outcome once committed.
func (c *chainNet) access(t *testing.T, via *netNode, auditor chain.Signer, ds chain.Dataset) chain.Outcome {
	t.Helper()
	return c.accessFrom(t, via, auditor, ds, ds.Owner)
}

// accessFrom is access naming provider as the holder to serve it.
func (c *chainNet) accessFrom(t *testing.T, via *netNode, auditor chain.Signer, ds chain.Dataset, provider []byte) chain.Outcome {
	t.Helper()
	nonce := c.nonce.Add(1)
	tx := &chain.Tx{Body: chain.TxBody{
		Chain: c.genesis.ChainID, Kind: chain.KindAccess, Sender: auditor.ID(),
		Expires: via.mustStatus(t).Height + c.genesis.Params.ReplayWindow/2, Nonce: nonce,
		Access: &chain.AccessRequest{Dataset: ds, Provider: provider, Nonce: binary.BigEndian.AppendUint64(nil, nonce), Purpose: "test"},
	}}
	if err := tx.Sign(auditor); err != nil {
		t.Fatal(err)
	}
	raw, err := chain.EncodeTx(tx)
	if err != nil {
		t.Fatal(err)
	}
	res := via.submit(t, [][]byte{raw}, true)
	if res[0].Commit == nil || res[0].Commit.Outcome == nil {
		t.Fatalf("access request not committed: %+v", res[0])
	}
	return *res[0].Commit.Outcome
}

// TestGrantRevokeAndUnpin: `grant` and `revoke` on the owner's daemon
// decide what the chain answers an auditor's access requests (no grant,
// authorised, revoked, expired); the chain's rules are checked before
// anything is sent; a dataset the node anchored is not unpinned without
// --force, with the daemon running or not.
func TestGrantRevokeAndUnpin(t *testing.T) {
	skipShort(t)
	c := newChainNet(t, 4, 1)
	c.startAll(t)
	agency, _, office := c.roles(t)
	dir := t.TempDir()
	file, other := filepath.Join(dir, "contracts.csv"), filepath.Join(dir, "minutes.txt")
	os.WriteFile(file, []byte("id,amount\n1,100\n"), 0o600)
	os.WriteFile(other, []byte("minutes of the board\n"), 0o600)
	root := strings.TrimSpace(mustCLI(t, "add", "-Q", "--only-hash", file))
	mustCLI(t, "--repo", agency.Dir, "add", file)
	rootCid, err := cid.Decode(root)
	if err != nil {
		t.Fatal(err)
	}
	owner, _ := chain.ParsePeerID(agency.PeerID)
	ds := chain.Dataset{Owner: owner, Root: dagcbor.Link{Cid: rootCid}}
	auditor := c.auditors[0]
	auditorID := chain.PeerIDString(auditor.ID())
	want := func(o chain.Outcome, code, reason string) {
		t.Helper()
		if o.Code != code || o.Reason != reason {
			t.Fatalf("access outcome %s/%s, want %s/%s", o.Code, o.Reason, code, reason)
		}
	}

	want(c.access(t, office, auditor, ds), chain.OutcomeDenied, chain.ReasonNoGrant)
	out := mustCLI(t, "--repo", agency.Dir, "grant", root, auditorID)
	if !strings.HasPrefix(out, "granted "+root+" to "+auditorID+" at height ") {
		t.Fatalf("grant printed %q", out)
	}
	want(c.access(t, office, auditor, ds), chain.OutcomeAuthorised, "")
	mustCLI(t, "--repo", agency.Dir, "revoke", root, auditorID)
	want(c.access(t, office, auditor, ds), chain.OutcomeDenied, chain.ReasonRevoked)

	// A grant that ends two seconds from now: authorised until a block's
	// time passes it, then expired.
	mustCLI(t, "--repo", agency.Dir, "grant", "--expires", "2s", root, auditorID)
	eventually(t, "the grant to expire", chainWait, func() (bool, string) {
		o := c.access(t, office, auditor, ds)
		if o.Code != chain.OutcomeAuthorised {
			want(o, chain.OutcomeDenied, chain.ReasonExpired)
			return true, ""
		}
		return false, "still authorised"
	})

	// The audit trail of the dataset, as the chain recorded it.
	wantTrail := []string{"anchor/ok", "access/denied/no-grant", "grant/ok", "access/authorised", "revoke/ok", "access/denied/revoked", "grant/ok"}
	eventually(t, "the audit trail", chainWait, func() (bool, string) {
		var evs []node.LogEntry
		if err := json.Unmarshal([]byte(mustCLI(t, "--repo", office.Dir, "log", "--dataset", root, "--json")), &evs); err != nil {
			t.Fatal(err)
		}
		var got []string
		for _, e := range evs {
			got = append(got, strings.TrimSuffix(e.Kind+"/"+e.Code+"/"+e.Reason, "/"))
		}
		if len(got) < len(wantTrail)+2 || !slices.Equal(got[:len(wantTrail)], wantTrail) ||
			got[len(got)-1] != "access/denied/expired" || evs[1].Auditor != auditorID || evs[0].Agency != agency.PeerID {
			return false, strings.Join(got, " ")
		}
		return true, ""
	})
	var accesses []node.LogEntry
	json.Unmarshal([]byte(mustCLI(t, "--repo", office.Dir, "log", "--auditor", auditorID, "--kind", "access", "--json")), &accesses)
	for _, e := range accesses {
		if e.Kind != "access" || e.Auditor != auditorID || e.Dataset != root || e.Purpose != "test" {
			t.Fatalf("log --auditor --kind access gave %+v", e)
		}
	}
	var members []node.MemberInfo
	json.Unmarshal([]byte(mustCLI(t, "--repo", office.Dir, "members", "--json")), &members)
	roles := map[string]string{}
	for _, m := range members {
		roles[m.PeerID] = m.Role
		if m.PeerID == office.PeerID && !m.Validator || m.PeerID == agency.PeerID && m.Validator {
			t.Fatalf("members: %+v", m)
		}
	}
	if roles[agency.PeerID] != "agency" || roles[auditorID] != "auditor" || roles[office.PeerID] != "office" {
		t.Fatalf("members: %v", roles)
	}
	var datasets []node.DatasetInfo
	json.Unmarshal([]byte(mustCLI(t, "--repo", office.Dir, "datasets", "--agency", agency.PeerID, "--json")), &datasets)
	if len(datasets) != 1 || datasets[0].Root != root || datasets[0].Name != "contracts.csv" || datasets[0].Policy != chain.PolicyRestricted {
		t.Fatalf("datasets --agency: %+v", datasets)
	}
	if out := mustCLI(t, "--repo", office.Dir, "log", "--dataset", root); !strings.Contains(out, "denied (revoked)") {
		t.Fatalf("log's table does not show the revoked denial:\n%s", out)
	}

	// An admin grant, k = 2 of m = 3: refused with fewer signatures.
	auditor2 := chain.PeerIDString(c.auditors[1].ID())
	txFile := filepath.Join(dir, "grant.json")
	mustCLI(t, "--repo", office.Dir, "admin", "new", "grant", root, auditor2, "-o", txFile)
	failCLI(t, "no admin signatures yet", "--repo", office.Dir, "admin", "submit", txFile)
	mustCLI(t, "admin", "sign", txFile, "--key", c.tn.Admins[0])
	failCLI(t, "already carries the signature", "admin", "sign", txFile, "--key", c.tn.Admins[0])
	failCLI(t, "1 admin signatures, 2 needed", "--repo", office.Dir, "admin", "submit", txFile)
	mustCLI(t, "admin", "sign", txFile, "--key", c.tn.Admins[2])
	if out := mustCLI(t, "--repo", office.Dir, "admin", "submit", txFile); !strings.Contains(out, "with 2 admin signatures, outcome ok") {
		t.Fatalf("admin submit: %s", out)
	}
	want(c.access(t, office, c.auditors[1], ds), chain.OutcomeAuthorised, "")
	var f map[string]any
	raw, _ := os.ReadFile(txFile)
	json.Unmarshal(raw, &f)
	body, _ := base64.StdEncoding.DecodeString(f["Body"].(string))
	body[len(body)-3] ^= 1 // a byte of the nonce: still a valid body, no longer the one signed
	f["Body"] = body
	raw, _ = json.Marshal(f)
	os.WriteFile(txFile, raw, 0o600)
	if _, _, code := cli(t, nil, "admin", "sign", txFile, "--key", c.tn.Admins[1]); code == 0 {
		t.Fatal("a tampered admin transaction was signed")
	}

	// An authorised access nobody served: once its window of T blocks has
	// passed, the chain records a non-service against the holder.
	var authorised []node.LogEntry
	json.Unmarshal([]byte(mustCLI(t, "--repo", office.Dir, "log", "--dataset", root, "--kind", "access", "--json")), &authorised)
	var first node.LogEntry
	for _, e := range authorised {
		if e.Code == chain.OutcomeAuthorised {
			first = e
			break
		}
	}
	for office.mustStatus(t).Height <= first.Height+c.genesis.Params.AccessWindow+1 {
		c.commit(t, office, 1)
	}
	eventually(t, "the non-service", chainWait, func() (bool, string) {
		var evs []node.LogEntry
		json.Unmarshal([]byte(mustCLI(t, "--repo", office.Dir, "log", "--dataset", root, "--kind", "non-service", "--json")), &evs)
		for _, e := range evs {
			if e.Tx == first.Tx && e.Code == chain.OutcomeNonService && e.Agency == agency.PeerID {
				return true, ""
			}
		}
		return false, fmt.Sprint(len(evs), " non-services")
	})

	// Refused before anything is sent.
	otherRoot := strings.TrimSpace(mustCLI(t, "add", "-Q", "--only-hash", other))
	failCLI(t, "not a dataset this node anchored", "--repo", agency.Dir, "grant", otherRoot, auditorID)
	failCLI(t, "not an auditor", "--repo", agency.Dir, "grant", root, office.PeerID)
	failCLI(t, "no grant in force", "--repo", agency.Dir, "revoke", root, chain.PeerIDString(c.auditors[2].ID()))
	failCLI(t, "made by the admins; only they revoke it", "--repo", agency.Dir, "revoke", root, auditor2)
	failCLI(t, "--expires", "--repo", agency.Dir, "grant", "--expires", "yesterday", root, auditorID)

	// Unpinning what the node anchored: refused, then forced.
	failCLI(t, "anchored on the chain", "--repo", agency.Dir, "pin", "rm", root)
	_, errOut, code := cli(t, nil, "--repo", agency.Dir, "pin", "rm", "--force", root)
	if code != 0 || !strings.Contains(errOut, "warning: "+root+" is anchored") {
		t.Fatalf("pin rm --force: exit %d, stderr %q", code, errOut)
	}
	// The same without the daemon, from the chain index on disk.
	mustCLI(t, "--repo", agency.Dir, "add", other)
	agency.stop(t)
	failCLI(t, "anchored on the chain", "--repo", agency.Dir, "pin", "rm", otherRoot)
	if _, errOut, code := cli(t, nil, "--repo", agency.Dir, "pin", "rm", "--force", otherRoot); code != 0 || !strings.Contains(errOut, "warning:") {
		t.Fatalf("offline pin rm --force: exit %d, stderr %q", code, errOut)
	}
}
