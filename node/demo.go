package node

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"time"

	"github.com/ipfs/go-cid"

	"auditnet/chain"
	"auditnet/chain/index"
)

// DemoOptions configure RunDemo.
type DemoOptions struct {
	// Dir holds the demo's repos and files (it must not exist yet).
	Dir string
	// BasePort is the first of the loopback ports the nodes use: swarm
	// ports from BasePort, API ports from BasePort+100.
	BasePort int
	// SizeMiB is the size of each agency's dataset.
	SizeMiB int
	Out     io.Writer
}

// demoNode is one node of the demo network, running in this process.
type demoNode struct {
	TestnetNode
	client *Client
}

// RunDemo runs the default testnet on this machine and walks through
// what auditnet guarantees: the audit office's validators (the data
// center, office-1, office-2) and an agency validator, a follower agency
// and an auditor, as daemons on 127.0.0.1. Each agency adds a dataset,
// which is anchored on the chain; the auditor's fetches are access
// requests the chain decides before a byte leaves the holder, and the
// services are recorded with the auditor's acknowledgement; a revoked
// auditor is refused, on the chain; a receipt is exported and checked
// offline against the genesis; a non-member is refused at the door. It
// ends with the audit trail and the data center's disk beside the data
// the agencies hold, and stops every node before it returns.
func RunDemo(ctx context.Context, opts DemoOptions) (err error) {
	out := opts.Out
	say := func(format string, args ...any) { fmt.Fprintf(out, format+"\n", args...) }
	start := time.Now()
	if _, err := os.Stat(opts.Dir); err == nil {
		return fmt.Errorf("demo: %s exists", opts.Dir)
	}
	tn, err := CreateTestnet(TestnetOptions{Dir: opts.Dir, Validators: 4, ByRole: true, Agencies: 2, Auditors: 1,
		BasePort: opts.BasePort, BenchSenders: 1})
	if err != nil {
		return err
	}
	genesis, err := chain.ReadGenesis(tn.Genesis)
	if err != nil {
		return err
	}
	say("auditnet demo: a network of %d nodes on 127.0.0.1, chain %s (repos in %s)", len(tn.Nodes), tn.ChainID, opts.Dir)

	ctx, cancel := context.WithCancel(ctx)
	done := make(chan error, len(tn.Nodes)+1)
	running := 0
	defer func() {
		cancel()
		for range running {
			err = errors.Join(err, <-done)
		}
	}()
	nodes := map[string]*demoNode{}
	for _, n := range tn.Nodes {
		ready := make(chan struct{})
		running++
		go func() { done <- RunDaemon(ctx, n.Dir, DaemonOptions{Ready: func(string) { close(ready) }}) }()
		select {
		case <-ready:
		case err := <-done:
			running--
			return fmt.Errorf("start %s: %w", n.Name, err)
		}
		c, err := DialDaemon(ctx, n.Dir)
		if err != nil {
			return err
		}
		nodes[n.Name] = &demoNode{TestnetNode: n, client: c}
		what := "follows the chain"
		if n.Validator {
			what = "validator"
		}
		say("  %-10s %-10s %-17s %s", n.Name, n.Role, what, n.PeerID)
	}
	dc, agency1, agency2, auditor := nodes["datacenter"], nodes["agency-1"], nodes["agency-2"], nodes["auditor-1"]
	if err := demoWait(ctx, 60*time.Second, "a quorum of validators", func() bool {
		for _, n := range nodes {
			if st, err := n.client.ChainStatus(ctx); err != nil || !st.HasQuorum {
				return false
			}
		}
		return true
	}); err != nil {
		return err
	}

	say("\n1. Each agency keeps its own data and anchors it on the chain (the data never leaves it):")
	type dataset struct {
		src  string
		root cid.Cid
		tx   string
	}
	sets := map[string]*dataset{}
	for _, a := range []struct {
		node, name, policy string
		seed               uint64
	}{{"agency-1", "budget-2026", "restricted", 1}, {"agency-2", "procurement-2026", "restricted", 2}, {"agency-2", "annual-report-2026", "open", 3}} {
		src := filepath.Join(opts.Dir, "data", a.name)
		size := opts.SizeMiB
		if a.policy == "open" {
			size = 1
		}
		if err := writeDemoDataset(src, a.node, size, a.seed); err != nil {
			return err
		}
		res, err := nodes[a.node].client.Add(ctx, AddRequest{Paths: []string{src}, Recursive: true, Policy: a.policy}, nil, nil)
		if err != nil {
			return err
		}
		r := res.Roots[0]
		sets[a.name] = &dataset{src: src, root: r.Cid, tx: r.Anchor.Tx}
		say("   %s adds %-19s %s, %s: anchored at height %d", a.node, a.name, r.Cid, r.Anchor.Policy, r.Anchor.Height)
	}

	say("\n2. The owners grant auditor-1 access to their restricted datasets:")
	for _, g := range []struct{ node, set string }{{"agency-1", "budget-2026"}, {"agency-2", "procurement-2026"}} {
		done, err := nodes[g.node].client.Grant(ctx, GrantRequest{Dataset: sets[g.set].root.String(), Auditor: auditor.PeerID})
		if err != nil {
			return err
		}
		say("   %s grants %s to auditor-1: height %d", g.node, g.set, done.Height)
	}

	say("\n3. auditor-1 fetches budget-2026: its signed access request goes on the chain first, which authorises it;")
	say("   only then does agency-1 (the holder the chain names) stream it, and every block is checked against the CID:")
	budget := sets["budget-2026"]
	if err := os.MkdirAll(filepath.Join(opts.Dir, "fetched"), 0o755); err != nil {
		return err
	}
	dst := filepath.Join(opts.Dir, "fetched", "budget-2026")
	took := time.Now()
	got, err := auditor.client.Get(ctx, GetRequest{Ref: budget.root.String(), Output: dst, Purpose: "annual audit 2026", Case: "AUD-2026-017"}, nil)
	if err != nil {
		return err
	}
	same, err := sameTree(budget.src, dst)
	if err != nil {
		return err
	}
	say("   %d bytes in %d blocks in %s, access request %s; identical to agency-1's original: %v",
		got.Fetched.Bytes, got.Fetched.Blocks, time.Since(took).Round(time.Millisecond), got.Fetched.Request, same)
	if !same {
		return errors.New("demo: the fetched dataset differs from the original")
	}
	rep, err := auditor.client.VerifyDataset(ctx, budget.root.String())
	if err != nil {
		return err
	}
	say("   auditor-1 verifies it end to end: %d blocks re-hashed, the anchor's commit certificate (%d validators) checked", rep.Blocks, rep.Anchors[0].Signers)
	var report bytes.Buffer
	if err := auditor.client.Cat(ctx, sets["annual-report-2026"].root.String()+"/README.txt", &report, AccessOptions{Purpose: "background"}); err != nil {
		return err
	}
	say("   an open dataset needs no grant, but its read is on the chain too: %q", strings.TrimSpace(report.String()))

	say("\n4. agency-2 revokes auditor-1's grant; the chain refuses the next request, and records the refusal:")
	procurement := sets["procurement-2026"]
	if _, err := agency2.client.Revoke(ctx, GrantRequest{Dataset: procurement.root.String(), Auditor: auditor.PeerID}); err != nil {
		return err
	}
	_, err = auditor.client.Get(ctx, GetRequest{Ref: procurement.root.String(), Output: filepath.Join(opts.Dir, "fetched", "procurement-2026"), Purpose: "annual audit 2026"}, nil)
	if err == nil || !strings.Contains(err.Error(), "denied by the chain: "+chain.ReasonRevoked) {
		return fmt.Errorf("demo: a revoked auditor's fetch: %v", err)
	}
	say("   %s", err)

	say("\n5. A receipt of the access, checked offline against genesis.json with no node involved:")
	raw, err := auditor.client.Proof(ctx, got.Fetched.Request)
	if err != nil {
		return err
	}
	receipt := filepath.Join(opts.Dir, "access-receipt.json")
	if err := os.WriteFile(receipt, raw, 0o644); err != nil {
		return err
	}
	rc, err := chain.DecodeReceiptJSON(bytes.TrimSpace(raw))
	if err != nil {
		return err
	}
	anchor, err := chain.AnchorFromGenesis(genesis)
	if err != nil {
		return err
	}
	proven, err := chain.VerifyReceipt(rc, anchor)
	if err != nil {
		return err
	}
	say("   %s (%d bytes): %s committed at height %d, outcome %s, signed by auditor-1, certified by %d validators",
		filepath.Base(receipt), len(raw), proven.Kind, proven.Height, proven.Code, len(rc.Cert.Votes))
	tampered := bytes.Replace(bytes.TrimSpace(raw), []byte(`"annual audit 2026"`), []byte(`"annual audit 2027"`), 1)
	if rc2, err := chain.DecodeReceiptJSON(tampered); err == nil {
		if _, err := chain.VerifyReceipt(rc2, anchor); err == nil {
			return errors.New("demo: a tampered receipt verified")
		}
	}
	say("   the same receipt with its purpose changed fails verification")

	say("\n6. A node outside the membership is refused at the door:")
	if err := demoOutsider(ctx, opts, agency1, say); err != nil {
		return err
	}

	var trail []LogEntry
	if err := demoWait(ctx, 60*time.Second, "the services to be recorded", func() bool {
		trail, err = dc.client.Log(ctx, LogQuery{Auditor: auditor.PeerID})
		n := 0
		for _, e := range trail {
			if e.Kind == string(index.KindServed) {
				n++
			}
		}
		return err == nil && n >= 2
	}); err != nil {
		return err
	}
	say("\n7. The audit trail, as the data center's node reads it from the chain:")
	datasets, err := dc.client.Datasets(ctx, "")
	if err != nil {
		return err
	}
	names := map[string]string{}
	for _, n := range tn.Nodes {
		names[n.PeerID] = n.Name
	}
	for _, d := range datasets {
		say("   dataset %-19s %s  %8d bytes  %-10s held by %s", d.Name, d.Root, d.Size, d.Policy, names[d.Owner])
	}
	for _, e := range trail {
		outcome := e.Code
		if e.Reason != "" {
			outcome += " (" + e.Reason + ")"
		}
		extra := ""
		if e.Kind == string(index.KindServed) {
			extra = fmt.Sprintf(", %d bytes acknowledged", e.Bytes)
		}
		say("   height %3d  %-8s %-22s %s%s", e.Height, e.Kind, outcome, e.Dataset, extra)
	}

	held, err := dirSize(filepath.Join(agency1.Dir, blocksDir))
	if err != nil {
		return err
	}
	held2, err := dirSize(filepath.Join(agency2.Dir, blocksDir))
	if err != nil {
		return err
	}
	var center int64
	for _, part := range []string{chainDir, blocksDir, dhtDir} {
		n, err := dirSize(filepath.Join(dc.Dir, part))
		if err != nil {
			return err
		}
		center += n
	}
	say("\n8. The data center keeps the chain, not the data: its node stores %s (blocks, certificates, state, WAL,", humanBytes(center))
	say("   audit index, DHT records), while the agencies hold %s of data. It grows with events, not with data.", humanBytes(held+held2))
	say("\nstopping the nodes (demo took %s)", time.Since(start).Round(100*time.Millisecond))
	return nil
}

// demoOutsider starts a node that is not in the genesis and shows that
// agency-1 refuses it both ways.
func demoOutsider(ctx context.Context, opts DemoOptions, agency *demoNode, say func(string, ...any)) error {
	dir := filepath.Join(opts.Dir, "outsider")
	port := opts.BasePort + 90
	if err := InitRepo(dir, InitOptions{Role: RoleAuditor, API: fmt.Sprintf("127.0.0.1:%d", opts.BasePort+190),
		Listen: []string{fmt.Sprintf("/ip4/127.0.0.1/tcp/%d", port)}}); err != nil {
		return err
	}
	cfg, err := ReadConfig(dir)
	if err != nil {
		return err
	}
	raw, _ := json.Marshal([]string{agency.PeerID})
	if err := SetConfigValue(dir, "Members", string(raw), true); err != nil {
		return err
	}
	ctx, cancel := context.WithCancel(ctx)
	ready, done := make(chan struct{}), make(chan error, 1)
	go func() { done <- RunDaemon(ctx, dir, DaemonOptions{Ready: func(string) { close(ready) }}) }()
	defer func() {
		cancel()
		<-done
	}()
	select {
	case <-ready:
	case err := <-done:
		done <- err // for the deferred wait, which would block for ever otherwise
		return fmt.Errorf("start the outsider: %w", err)
	}
	c, err := DialDaemon(ctx, dir)
	if err != nil {
		return err
	}
	c.Connect(ctx, agency.Swarm+"/p2p/"+agency.PeerID)
	peers, err := agency.client.Peers(ctx)
	if err != nil {
		return err
	}
	admitted := slices.ContainsFunc(peers, func(p PeerInfo) bool { return p.Peer == cfg.Identity.PeerID })
	say("   it dials agency-1, whose gater (membership from the chain) drops it once the handshake proves who it is: admitted %v", admitted)
	err = agency.client.Connect(ctx, fmt.Sprintf("/ip4/127.0.0.1/tcp/%d/p2p/%s", port, cfg.Identity.PeerID))
	say("   agency-1 dials it: %s", refusal(err))
	if admitted || err == nil {
		return errors.New("demo: a non-member got through the gater")
	}
	return nil
}

// demoWait polls cond until it holds, or fails after within.
func demoWait(ctx context.Context, within time.Duration, what string, cond func() bool) error {
	deadline := time.Now().Add(within)
	for !cond() {
		if time.Now().After(deadline) {
			return fmt.Errorf("demo: timed out waiting for %s", what)
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(100 * time.Millisecond):
		}
	}
	return nil
}

// dirSize is the bytes of the files under dir.
func dirSize(dir string) (int64, error) {
	var n int64
	err := filepath.WalkDir(dir, func(_ string, d os.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return err
		}
		info, err := d.Info()
		if err != nil {
			return err
		}
		n += info.Size()
		return nil
	})
	return n, err
}

func humanBytes(n int64) string {
	switch {
	case n >= 1<<20:
		return fmt.Sprintf("%.1f MiB", float64(n)/(1<<20))
	case n >= 1<<10:
		return fmt.Sprintf("%.1f KiB", float64(n)/(1<<10))
	}
	return fmt.Sprintf("%d B", n)
}

func refusal(err error) string {
	if err == nil {
		return "connected (unexpected!)"
	}
	return "refused (" + err.Error() + ")"
}

// writeDemoDataset writes a directory of made-up audit records of an
// agency.
func writeDemoDataset(dir, agency string, sizeMiB int, seed uint64) error {
	if err := os.MkdirAll(filepath.Join(dir, "invoices"), 0o755); err != nil {
		return err
	}
	r := rand.New(rand.NewPCG(2026, seed))
	var b bytes.Buffer
	b.WriteString("invoice,agency,supplier,amount_eur,date\n")
	for i := 0; b.Len() < sizeMiB<<20; i++ {
		fmt.Fprintf(&b, "INV-%08d,%s,supplier-%04d,%d.%02d,2026-%02d-%02d\n", i, agency, r.IntN(5000), r.IntN(1_000_000), r.IntN(100), 1+r.IntN(12), 1+r.IntN(28))
	}
	files := map[string][]byte{
		"README.txt":             []byte("Records of " + agency + " for the 2026 audit.\n"),
		"invoices/2026.csv":      b.Bytes(),
		"invoices/summary.json":  []byte(`{"year": 2026, "currency": "EUR"}` + "\n"),
		"invoices/signature.txt": []byte("signed by the agency's accounting officer\n"),
	}
	for name, data := range files {
		if err := os.WriteFile(filepath.Join(dir, name), data, 0o644); err != nil {
			return err
		}
	}
	return nil
}

// sameTree compares two directory trees by the hashes of their files.
func sameTree(a, b string) (bool, error) {
	ha, err := treeHashes(a)
	if err != nil {
		return false, err
	}
	hb, err := treeHashes(b)
	if err != nil {
		return false, err
	}
	if len(ha) != len(hb) {
		return false, nil
	}
	for k, v := range ha {
		if hb[k] != v {
			return false, nil
		}
	}
	return true, nil
}

func treeHashes(root string) (map[string][32]byte, error) {
	out := map[string][32]byte{}
	err := filepath.WalkDir(root, func(path string, d os.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return err
		}
		data, err := os.ReadFile(path)
		if err != nil {
			return err
		}
		rel, _ := filepath.Rel(root, path)
		out[rel] = sha256.Sum256(data)
		return nil
	})
	return out, err
}
