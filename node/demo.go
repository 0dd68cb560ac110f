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
)

// DemoOptions configure RunDemo.
type DemoOptions struct {
	// Dir holds the demo's repos and files (it must not exist yet).
	Dir string
	// BasePort is the first of the loopback ports the nodes use: swarm
	// ports from BasePort, API ports from BasePort+100.
	BasePort int
	// SizeMiB is the size of the demo dataset's large file.
	SizeMiB int
	Out     io.Writer
}

// RunDemo runs a small auditnet network on this machine and walks through
// what the network layer guarantees: three agencies and an auditor, all
// members, as daemons on 127.0.0.1; two agencies hold the same dataset and
// the auditor finds both in the DHT and fetches from both at once,
// verifying every block; a node outside the membership is refused. It
// stops every node before it returns.
func RunDemo(ctx context.Context, opts DemoOptions) (err error) {
	out := opts.Out
	say := func(format string, args ...any) { fmt.Fprintf(out, format+"\n", args...) }
	if _, err := os.Stat(opts.Dir); err == nil {
		return fmt.Errorf("demo: %s exists", opts.Dir)
	}
	names := []string{"agency-1", "agency-2", "agency-3", "auditor-1", "outsider"}
	ids := make([]string, len(names))
	repos := make([]string, len(names))
	for i, name := range names {
		role := RoleAgency
		if strings.HasPrefix(name, "auditor") {
			role = RoleAuditor
		}
		repos[i] = filepath.Join(opts.Dir, name)
		port := opts.BasePort + i
		err := InitRepo(repos[i], InitOptions{
			Role:   role,
			Listen: []string{fmt.Sprintf("/ip4/127.0.0.1/tcp/%d", port), fmt.Sprintf("/ip4/127.0.0.1/udp/%d/quic-v1", port)},
			API:    fmt.Sprintf("127.0.0.1:%d", opts.BasePort+100+i),
		})
		if err != nil {
			return err
		}
		c, err := ReadConfig(repos[i])
		if err != nil {
			return err
		}
		ids[i] = c.Identity.PeerID
	}
	boot := fmt.Sprintf(`["/ip4/127.0.0.1/tcp/%d/p2p/%s"]`, opts.BasePort, ids[0])
	for i := range names {
		members := slices.Delete(slices.Clone(ids[:4]), min(i, 4), min(i+1, 4))
		if names[i] == "outsider" {
			members = ids[:1] // it would like to talk to agency-1, which does not know it
		}
		raw, _ := json.Marshal(members)
		if err := SetConfigValue(repos[i], "Members", string(raw), true); err != nil {
			return err
		}
		if i > 0 {
			if err := SetConfigValue(repos[i], "Bootstrap", boot, true); err != nil {
				return err
			}
		}
	}
	say("auditnet demo: 3 agencies and 1 auditor, members of one network, on 127.0.0.1 (repos in %s)", opts.Dir)

	ctx, cancel := context.WithCancel(ctx)
	done := make(chan error, len(names))
	running := 0
	defer func() {
		cancel()
		for range running {
			err = errors.Join(err, <-done)
		}
	}()
	clients := make([]*Client, len(names))
	for i, name := range names {
		ready := make(chan struct{})
		running++
		go func() { done <- RunDaemon(ctx, repos[i], DaemonOptions{Ready: func(string) { close(ready) }}) }()
		select {
		case <-ready:
		case err := <-done:
			running--
			return fmt.Errorf("start %s: %w", name, err)
		}
		if clients[i], err = DialDaemon(ctx, repos[i]); err != nil {
			return err
		}
		say("  %-9s %s", name, ids[i])
	}

	src := filepath.Join(opts.Dir, "dataset")
	if err := writeDemoDataset(src, opts.SizeMiB); err != nil {
		return err
	}
	res, err := clients[0].Add(ctx, AddRequest{Paths: []string{src}, Recursive: true}, nil, nil)
	if err != nil {
		return err
	}
	root := res.Roots[0].Cid
	say("\n1. agency-1 adds a dataset of %d MiB: %s", opts.SizeMiB, root)
	res2, err := clients[1].Add(ctx, AddRequest{Paths: []string{src}, Recursive: true}, nil, nil)
	if err != nil {
		return err
	}
	say("2. agency-2 adds the same bytes and gets the same CID (content addressing): %v", res2.Roots[0].Cid.Equals(root))
	say("   both announce it in the private DHT (/auditnet/kad/1.0.0, never the public one)")

	var provs []ProviderInfo
	deadline := time.Now().Add(60 * time.Second)
	for {
		if provs, err = clients[3].Providers(ctx, root.String()); err == nil && len(provs) >= 2 {
			break
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("demo: the auditor found %d providers of %s", len(provs), root)
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(100 * time.Millisecond):
		}
	}
	say("3. auditor-1 asks the DHT who holds it: %d providers", len(provs))
	for _, p := range provs {
		say("     %s (%s)", p.ID, names[slices.Index(ids, p.ID)])
	}

	dst := filepath.Join(opts.Dir, "fetched")
	start := time.Now()
	got, err := clients[3].Get(ctx, GetRequest{Ref: root.String(), Output: dst}, nil)
	if err != nil {
		return err
	}
	took := time.Since(start)
	say("4. auditor-1 fetches it with signed requests, from both at once, checking every block against the traversal from the root:")
	say("     %d bytes in %d blocks, %d requests, %.0f MB/s", got.Fetched.Bytes, got.Fetched.Blocks, got.Fetched.Requests, float64(got.Fetched.Bytes)/took.Seconds()/1e6)
	for p, n := range got.Fetched.FromProvider {
		say("     %d bytes from %s", n, names[slices.Index(ids, p)])
	}
	same, err := sameTree(src, dst)
	if err != nil {
		return err
	}
	say("     the files written out equal the agency's originals: %v", same)

	var note bytes.Buffer
	if err := clients[3].Cat(ctx, root.String()+"/README.txt", &note, AccessOptions{}); err != nil {
		return err
	}
	say("5. auditor-1 reads one file by path, %s/README.txt: %q", root, strings.TrimSpace(note.String()))

	clients[4].Connect(ctx, fmt.Sprintf("/ip4/127.0.0.1/tcp/%d/p2p/%s", opts.BasePort, ids[0]))
	peers, err := clients[0].Peers(ctx)
	if err != nil {
		return err
	}
	admitted := slices.ContainsFunc(peers, func(p PeerInfo) bool { return p.Peer == ids[4] })
	say("6. a node outside the membership dials agency-1, whose gater drops it after the handshake proves who it is: admitted %v", admitted)
	err = clients[0].Connect(ctx, fmt.Sprintf("/ip4/127.0.0.1/tcp/%d/p2p/%s", opts.BasePort+4, ids[4]))
	say("   agency-1 dials it: %s", refusal(err))
	if admitted || err == nil {
		return errors.New("demo: a non-member got through the gater")
	}
	say("\nstopping the nodes")
	if !same {
		return errors.New("demo: the fetched dataset differs from the original")
	}
	return nil
}

func refusal(err error) string {
	if err == nil {
		return "connected (unexpected!)"
	}
	return "refused (" + err.Error() + ")"
}

// writeDemoDataset writes a directory of made-up audit records.
func writeDemoDataset(dir string, sizeMiB int) error {
	if err := os.MkdirAll(filepath.Join(dir, "invoices"), 0o755); err != nil {
		return err
	}
	r := rand.New(rand.NewPCG(2026, 11))
	var b bytes.Buffer
	b.WriteString("invoice,agency,supplier,amount_eur,date\n")
	for i := 0; b.Len() < sizeMiB<<20; i++ {
		fmt.Fprintf(&b, "INV-%08d,agency-1,supplier-%04d,%d.%02d,2026-%02d-%02d\n", i, r.IntN(5000), r.IntN(1_000_000), r.IntN(100), 1+r.IntN(12), 1+r.IntN(28))
	}
	files := map[string][]byte{
		"README.txt":             []byte("Ledger of agency-1 for the 2026 audit.\n"),
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
