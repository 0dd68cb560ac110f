package main

import (
	"bytes"
	"crypto/rand"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/ipfs/go-cid"

	"auditnet/chain"
	"auditnet/internal/dagcbor"
	"auditnet/node"
)

// TestAccessDecidedByChain: an auditor's get and cat are accesses the
// chain decides before a byte leaves the holder. Without a grant the
// request is denied, on the chain, and the auditor is told why; with one
// it is authorised, the holder the chain names serves it, every byte
// arrives, and the service with the auditor's acknowledgement is recorded;
// an open dataset needs no grant; a revoked grant is refused.
func TestAccessDecidedByChain(t *testing.T) {
	skipShort(t)
	c := newChainNet(t, 4, 2)
	c.startAll(t)
	agency, auditor, office := c.roles(t)
	dir := t.TempDir()
	ledger := make([]byte, 1<<20+12345)
	rand.Read(ledger)
	files := map[string][]byte{"ledger.bin": ledger, "open.txt": []byte("published figures\n"), "minutes.txt": []byte("board minutes\n")}
	roots := map[string]string{}
	for name, data := range files {
		p := filepath.Join(dir, name)
		if err := os.WriteFile(p, data, 0o600); err != nil {
			t.Fatal(err)
		}
		policy := "restricted"
		if name == "open.txt" {
			policy = "open"
		}
		roots[name] = strings.TrimSpace(mustCLI(t, "add", "-Q", "--only-hash", p))
		mustCLI(t, "--repo", agency.Dir, "add", "--policy", policy, p)
	}
	out := filepath.Join(t.TempDir(), "got")

	failCLI(t, "denied by the chain: no-grant", "--repo", auditor.Dir, "get", roots["ledger.bin"], "-o", out)
	if _, err := os.Stat(out); err == nil {
		t.Fatal("a denied get wrote its output")
	}
	mustCLI(t, "--repo", agency.Dir, "grant", roots["ledger.bin"], auditor.PeerID)
	_, errOut, code := cli(t, nil, "--repo", auditor.Dir, "get", "--purpose", "annual audit", "--case", "C-42", roots["ledger.bin"], "-o", out)
	if code != 0 || !strings.Contains(errOut, "access recorded on the chain: request ") {
		t.Fatalf("granted get: exit %d: %s", code, errOut)
	}
	if got, err := os.ReadFile(out); err != nil || !bytes.Equal(got, ledger) {
		t.Fatalf("got %d bytes (%v), want the ledger's %d", len(got), err, len(ledger))
	}

	// A path within a directory dataset, a file of several blocks: the
	// holder serves the path's subtree and nothing else.
	records := filepath.Join(dir, "records")
	os.MkdirAll(filepath.Join(records, "2025"), 0o755)
	os.WriteFile(filepath.Join(records, "2025", "ledger.bin"), ledger[:700_000], 0o600)
	os.WriteFile(filepath.Join(records, "notes.txt"), []byte("not asked for\n"), 0o600)
	recordsRoot := strings.TrimSpace(mustCLI(t, "--repo", agency.Dir, "add", "-Q", "-r", records))
	mustCLI(t, "--repo", agency.Dir, "grant", recordsRoot, auditor.PeerID)
	part := filepath.Join(t.TempDir(), "ledger-2025.bin")
	mustCLI(t, "--repo", auditor.Dir, "get", recordsRoot+"/2025/ledger.bin", "-o", part)
	if got, err := os.ReadFile(part); err != nil || !bytes.Equal(got, ledger[:700_000]) {
		t.Fatalf("get of a path: %d bytes (%v), want 700000", len(got), err)
	}

	// The open dataset: any auditor, no grant.
	if got := mustCLI(t, "--repo", auditor.Dir, "cat", roots["open.txt"]); got != "published figures\n" {
		t.Fatalf("cat of the open dataset: %q", got)
	}
	// One request, one service: the holder refuses to serve it again, and
	// a request is for its own dataset only.
	var openAccess []node.LogEntry
	json.Unmarshal([]byte(mustCLI(t, "--repo", auditor.Dir, "log", "--dataset", roots["open.txt"], "--kind", "access", "--json")), &openAccess)
	if len(openAccess) != 1 {
		t.Fatalf("%d access events for the open dataset", len(openAccess))
	}
	failCLI(t, "served", "--repo", auditor.Dir, "cat", "--request", openAccess[0].Tx, roots["open.txt"])
	failCLI(t, "is for "+roots["open.txt"], "--repo", auditor.Dir, "cat", "--request", openAccess[0].Tx, roots["minutes.txt"])
	// Once its service is on the chain the request leaves the state; its
	// block still gives the reasons.
	eventually(t, "the open dataset's service on the chain", chainWait, func() (bool, string) {
		var evs []node.LogEntry
		json.Unmarshal([]byte(mustCLI(t, "--repo", auditor.Dir, "log", "--dataset", roots["open.txt"], "--kind", "served", "--json")), &evs)
		return len(evs) == 1, fmt.Sprint(evs)
	})
	failCLI(t, "served already", "--repo", auditor.Dir, "cat", "--request", openAccess[0].Tx, roots["open.txt"])
	failCLI(t, "is for "+roots["open.txt"], "--repo", auditor.Dir, "cat", "--request", openAccess[0].Tx, roots["minutes.txt"])
	// A revoked grant is refused.
	mustCLI(t, "--repo", agency.Dir, "grant", roots["minutes.txt"], auditor.PeerID)
	mustCLI(t, "--repo", agency.Dir, "revoke", roots["minutes.txt"], auditor.PeerID)
	failCLI(t, "denied by the chain: revoked", "--repo", auditor.Dir, "cat", roots["minutes.txt"])
	// The revoke committed in a block before the request's, and decided it.
	var minutes []node.LogEntry
	json.Unmarshal([]byte(mustCLI(t, "--repo", auditor.Dir, "log", "--dataset", roots["minutes.txt"], "--json")), &minutes)
	if n := len(minutes); n < 3 || minutes[n-2].Kind != "revoke" || minutes[n-1].Kind != "access" || minutes[n-1].Reason != chain.ReasonRevoked ||
		minutes[n-2].Height >= minutes[n-1].Height {
		t.Fatalf("the minutes' trail: %+v", minutes)
	}

	// The trail: every decision, and the services with the auditor's
	// acknowledgement of what it received.
	eventually(t, "the services on the chain", chainWait, func() (bool, string) {
		var evs []node.LogEntry
		json.Unmarshal([]byte(mustCLI(t, "--repo", office.Dir, "log", "--auditor", auditor.PeerID, "--json")), &evs)
		var got []string
		var served *node.LogEntry
		for i, e := range evs {
			got = append(got, e.Kind+"/"+e.Code+"/"+e.Reason)
			if e.Kind == "served" && e.Dataset == roots["ledger.bin"] {
				served = &evs[i]
			}
		}
		if served == nil || len(evs) < 6 {
			return false, strings.Join(got, " ")
		}
		if served.Code != chain.OutcomeServed || served.Bytes < uint64(len(ledger)) || served.Provider != "" && served.Provider != agency.PeerID {
			t.Fatalf("served event %+v", *served)
		}
		return true, ""
	})
	// Receipts: the anchor's and the access's, checked offline against
	// the genesis; one byte changed anywhere fails.
	proofDir := t.TempDir()
	anchorReceipt, accessReceipt := filepath.Join(proofDir, "anchor.json"), filepath.Join(proofDir, "access.json")
	mustCLI(t, "--repo", agency.Dir, "proof", roots["ledger.bin"], "-o", anchorReceipt)
	proven := mustCLI(t, "verify-proof", anchorReceipt, "--genesis", c.tn.Genesis)
	if !strings.Contains(proven, "it anchors dataset "+roots["ledger.bin"]) || !strings.Contains(proven, "with outcome ok") ||
		!strings.Contains(proven, "sent and signed by "+agency.PeerID) {
		t.Fatalf("verify-proof of the anchor:\n%s", proven)
	}
	var authorised []node.LogEntry
	json.Unmarshal([]byte(mustCLI(t, "--repo", office.Dir, "log", "--dataset", roots["ledger.bin"], "--kind", "access", "--json")), &authorised)
	request := authorised[len(authorised)-1].Tx
	mustCLI(t, "--repo", office.Dir, "proof", roots["ledger.bin"], "--access", request, "-o", accessReceipt)
	proven = mustCLI(t, "verify-proof", accessReceipt, "--genesis", c.tn.Genesis)
	if !strings.Contains(proven, "with outcome authorised") || !strings.Contains(proven, `purpose "annual audit", case "C-42"`) {
		t.Fatalf("verify-proof of the access:\n%s", proven)
	}
	raw, _ := os.ReadFile(accessReceipt)
	raw = bytes.TrimRight(raw, "\n")
	for i := range raw {
		bad := bytes.Clone(raw)
		bad[i] ^= 0x01
		p := filepath.Join(proofDir, "bad.json")
		os.WriteFile(p, bad, 0o600)
		if out, _, code := cli(t, nil, "verify-proof", p, "--genesis", c.tn.Genesis); code == 0 {
			t.Fatalf("a receipt with byte %d changed (%q to %q, in %s) verified:\n%s", i, raw[i], bad[i], raw[max(0, i-80):min(len(raw), i+20)], out)
		}
	}
	// verify: the holder's copy and the auditor's, end to end.
	for _, n := range []*netNode{agency, auditor} {
		out := mustCLI(t, "--repo", n.Dir, "verify", roots["ledger.bin"])
		if !strings.Contains(out, "anchored by "+agency.PeerID) || !strings.Contains(out, "certificate of") {
			t.Fatalf("verify on %s:\n%s", n.Name, out)
		}
	}
	failCLI(t, "block not found", "--repo", office.Dir, "verify", roots["ledger.bin"])
	unanchored := filepath.Join(dir, "office-notes.txt")
	os.WriteFile(unanchored, []byte("notes the office keeps\n"), 0o600)
	failCLI(t, "not anchored", "--repo", office.Dir, "verify", strings.TrimSpace(mustCLI(t, "--repo", office.Dir, "add", "-Q", unanchored)))

	// With no quorum, a fetch fails closed, at once and clearly; the
	// holder serves nothing.
	vals := c.validators()
	vals[0].stop(t)
	vals[1].stop(t)
	failCLI(t, "no quorum", "--repo", auditor.Dir, "cat", roots["open.txt"])
	c.startAll(t, vals[0], vals[1])

	// Only the holder the chain records serves: a request naming the
	// auditor's node, which holds a fetched copy, is denied on the chain
	// (and that node would refuse it too: fetched data is never served).
	owner, _ := chain.ParsePeerID(agency.PeerID)
	rootCid, _ := cid.Decode(roots["ledger.bin"])
	auditorID, _ := chain.ParsePeerID(auditor.PeerID)
	ds := chain.Dataset{Owner: owner, Root: dagcbor.Link{Cid: rootCid}}
	if o := c.accessFrom(t, office, c.auditors[0], ds, auditorID); o.Code != chain.OutcomeDenied || o.Reason != chain.ReasonNotHolder {
		t.Fatalf("a request naming the auditor's node as provider: %+v", o)
	}

	// The holder killed: the authorised fetch fails with a clear error,
	// and nothing on the chain is lost.
	mustCLI(t, "--repo", agency.Dir, "grant", roots["minutes.txt"], auditor.PeerID)
	before := office.mustStatus(t).Height
	agency.kill(t)
	_, errOut, code = cli(t, nil, "--repo", auditor.Dir, "cat", roots["minutes.txt"])
	if code == 0 || !strings.Contains(errOut, "the holder "+agency.PeerID+" did not serve") {
		t.Fatalf("a fetch from a killed holder: exit %d: %s", code, errOut)
	}
	if h := office.mustStatus(t).Height; h <= before {
		t.Fatalf("height %d after the access request, %d before", h, before)
	}
	// Back up, the holder serves that authorised request when the auditor
	// finishes the fetch under it; no new request goes on the chain.
	pending := pendingRequest(errOut)
	if _, err := cid.Decode(pending); err != nil {
		t.Fatalf("no request id in %q", errOut)
	}
	agency.restart(t, nil)
	agency.waitReady(t)
	eventually(t, "the restarted holder to serve the pending request", chainWait, func() (bool, string) {
		out, errOut, code := cli(t, nil, "--repo", auditor.Dir, "cat", "--request", pending, roots["minutes.txt"])
		return code == 0 && out == "board minutes\n", errOut
	})

	var accesses []node.LogEntry
	json.Unmarshal([]byte(mustCLI(t, "--repo", office.Dir, "log", "--dataset", roots["ledger.bin"], "--kind", "access", "--json")), &accesses)
	if len(accesses) != 3 || accesses[0].Reason != chain.ReasonNoGrant || accesses[1].Code != chain.OutcomeAuthorised ||
		accesses[1].Purpose != "annual audit" || accesses[1].Case != "C-42" || accesses[1].Provider != agency.PeerID {
		t.Fatalf("access events: %+v", accesses)
	}
}
