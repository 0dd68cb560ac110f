package main

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"auditnet/chain"
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
