package main

import (
	"bytes"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"auditnet/chain"
	"auditnet/node"
)

// End-to-end tests of the chain: real daemons as separate processes on
// 127.0.0.1 (chainproc_test.go), driven through the CLI and the HTTP API,
// asserting on what the chain holds.

// TestChainAgreement: four validators and a follower commit what each of
// them is given; every node holds the same block (CID, header, state
// root) at every height, the follower's lag is 0, and a receipt the
// follower exports verifies offline against genesis.json.
func TestChainAgreement(t *testing.T) {
	skipShort(t)
	c := newChainNet(t, 4, 1)
	c.startAll(t)
	fol := c.followers()[0]

	var txs []committedTx
	for _, via := range c.nodes { // every validator, and the follower, which forwards
		txs = append(txs, c.commit(t, via, 10)...)
	}
	heights := c.waitTxs(t, c.nodes, txIDs(txs))
	for _, tx := range txs {
		if heights[tx.ID] != tx.Height {
			t.Fatalf("tx %s: submit said height %d, the chain says %d", tx.ID, tx.Height, heights[tx.ID])
		}
	}
	h := c.agree(t, c.nodes...)
	if h < uint64(len(c.nodes)) {
		t.Fatalf("height %d after %d batches each waited for", h, len(c.nodes))
	}

	// The follower knows it is up to date, through the API and the CLI.
	eventually(t, "the follower's lag to be 0", chainWait, func() (bool, string) {
		st := fol.mustStatus(t)
		return st.Height == h && st.KnownHeight == h && st.Lag == 0, fmt.Sprintf("height %d known %d lag %d", st.Height, st.KnownHeight, st.Lag)
	})
	var st node.ChainStatus
	if err := json.Unmarshal([]byte(mustCLI(t, "--repo", fol.Dir, "status", "--json")), &st); err != nil {
		t.Fatal(err)
	}
	if st.Validator || st.Height != h || st.Lag != 0 || st.ChainID != c.genesis.ChainID || !st.HasQuorum {
		t.Fatalf("follower's status --json: %+v", st)
	}

	// Each transaction is in the block its lookup names, and a receipt from
	// the follower proves it offline.
	anchor, err := chain.AnchorFromGenesis(c.genesis)
	if err != nil {
		t.Fatal(err)
	}
	for i, tx := range txs {
		tl, err := fol.tx(t, tx.ID)
		if err != nil {
			t.Fatal(err)
		}
		b, err := fol.block(t, tl.Height)
		if err != nil {
			t.Fatal(err)
		}
		if tl.Index >= len(b.Txs) || b.Txs[tl.Index].ID != tx.ID {
			t.Fatalf("block %d does not hold tx %s at index %d", tl.Height, tx.ID, tl.Index)
		}
		if i%10 != 0 {
			continue
		}
		rc, err := fol.receipt(t, tx.ID)
		if err != nil {
			t.Fatalf("receipt of %s: %v", tx.ID, err)
		}
		p, err := chain.VerifyReceipt(rc, anchor)
		if err != nil {
			t.Fatalf("receipt of %s does not verify: %v", tx.ID, err)
		}
		if p.Tx.String() != tx.ID || p.Height != tx.Height || p.Block.String() != b.CID || p.Code != chain.OutcomeOK {
			t.Fatalf("receipt of %s proves %+v", tx.ID, p)
		}
	}
}

// TestChainValidatorFaults runs one network of four validators and a
// follower through crashes and stalls of single validators; after each,
// the faulty one comes back and holds the same chain as the others.
func TestChainValidatorFaults(t *testing.T) {
	skipShort(t)
	c := newChainNet(t, 4, 1)
	c.startAll(t)
	vals := c.validators()
	c.commit(t, vals[0], 5)
	c.agree(t, c.nodes...)

	// SIGKILL of a backup: three of four are a quorum, so what is
	// submitted commits; restarted from its WAL and store, it catches up.
	ok := t.Run("kill a backup", func(t *testing.T) {
		leader, _ := c.leader(t, vals)
		victim := without(vals, leader)[0]
		victim.kill(t)
		live := without(c.nodes, victim)
		via := without(vals, leader, victim)[0]
		txs := c.commit(t, via, 10)
		c.waitTxs(t, live, txIDs(txs))
		victim.restart(t, nil)
		c.waitTxs(t, []*netNode{victim}, txIDs(txs))
		c.agree(t, c.nodes...)
		c.needsVote(t, victim)
	})

	// SIGKILL of the leader: the others change view and commit what is
	// submitted afterwards.
	ok = ok && t.Run("kill the leader", func(t *testing.T) {
		leader, view := c.leader(t, vals)
		survivors := without(vals, leader)
		h0 := c.sameHead(t, c.nodes)
		killed := time.Now()
		leader.kill(t)
		ids := c.submitOnly(t, survivors[0], 10)
		eventually(t, "a commit after the leader's death", chainWait, func() (bool, string) {
			st := survivors[0].mustStatus(t)
			return st.Height > h0, fmt.Sprintf("height %d view %d changing %v", st.Height, st.View, st.ViewChanging)
		})
		t.Logf("view change: %v from SIGKILL of the leader to the first commit after it (view-change timeout %v)", time.Since(killed).Round(time.Millisecond), chainVCTimeout)
		c.waitTxs(t, without(c.nodes, leader), ids)
		for _, n := range survivors {
			if st := n.mustStatus(t); st.View <= view || st.Leader == leader.PeerID {
				t.Fatalf("%s: view %d leader %s after the leader of view %d died", n.Name, st.View, st.Leader, view)
			}
		}
		leader.restart(t, nil)
		c.agree(t, c.nodes...)
		// On an idle chain, before anything commits: joining the view
		// commits no block, and its status must still show it.
		t.Run("the restarted validator joins the current view", func(t *testing.T) {
			c.allInView(t, vals, 5*chainVCTimeout)
		})
		c.waitTxs(t, c.nodes, txIDs(c.commit(t, leader, 5)))
		c.needsVote(t, leader)
	})

	// SIGSTOP of a backup for longer than a view change: the chain goes
	// on without it; after SIGCONT it catches up and takes part again.
	_ = ok && t.Run("stop a backup", func(t *testing.T) {
		leader, _ := c.leader(t, vals)
		victim := without(vals, leader)[0]
		others := without(vals, victim)
		victim.signal(t, syscall.SIGSTOP)
		stopped := true
		defer func() {
			if stopped {
				victim.signal(t, syscall.SIGCONT)
			}
		}()
		txs := c.commit(t, others[0], 10)
		c.waitTxs(t, without(c.nodes, victim), txIDs(txs))
		eventually(t, "the others to miss the stopped validator for longer than a view change", chainWait, func() (bool, string) {
			var seen []string
			for _, n := range others {
				for _, v := range n.mustStatus(t).Validators {
					if v.PeerID == victim.PeerID {
						seen = append(seen, fmt.Sprintf("%s: last seen %d ms ago", n.Name, v.LastSeenMs))
						if v.Live || v.LastSeenMs < chainVCTimeout.Milliseconds() {
							return false, strings.Join(seen, "; ")
						}
					}
				}
			}
			return true, ""
		})
		more := c.commit(t, others[1], 10)
		victim.signal(t, syscall.SIGCONT)
		stopped = false
		c.waitTxs(t, []*netNode{victim}, txIDs(append(txs, more...)))
		c.agree(t, c.nodes...)
		c.waitTxs(t, c.nodes, txIDs(c.commit(t, victim, 5)))

		t.Run("the resumed validator stays in the current view", func(t *testing.T) {
			c.allInView(t, vals, 5*chainVCTimeout)
		})
		// It votes again (after the others joined its view change, if it
		// asked for one).
		c.needsVote(t, victim)
	})
}

// needsVote stops (SIGSTOP) a validator other than n and the leader, so
// that no quorum forms without n's vote, and checks that transactions
// still commit; then it resumes the stopped one and checks that every
// node holds them.
func (c *chainNet) needsVote(t *testing.T, n *netNode) {
	t.Helper()
	vals := c.validators()
	leader := c.byPeer(t, without(vals, n)[0].mustStatus(t).Leader)
	other := without(vals, n, leader)[0]
	other.signal(t, syscall.SIGSTOP)
	stopped := true
	defer func() {
		if stopped {
			other.signal(t, syscall.SIGCONT)
		}
	}()
	start := time.Now()
	txs := c.commit(t, n, 5)
	t.Logf("commit needing %s's vote (%s stopped): %v", n.Name, other.Name, time.Since(start).Round(time.Millisecond))
	other.signal(t, syscall.SIGCONT)
	stopped = false
	c.waitTxs(t, c.nodes, txIDs(txs))
	c.agree(t, c.nodes...)
}

// TestChainPartitions cuts links between the four validators of one
// network with the daemons' test-only partition switch
// (AUDITNET_TEST_HOOKS=1, POST /api/v0/test/partition).
func TestChainPartitions(t *testing.T) {
	skipShort(t)
	c := newChainNet(t, 4, 0)
	c.startAll(t)
	vals := c.validators()
	c.commit(t, vals[0], 5)
	c.agree(t, vals...)
	heal := func(t *testing.T) {
		for _, n := range vals {
			n.partition(t, "heal")
		}
	}

	// The leader cut off from everyone: the other three change view and
	// commit; healed, the old leader catches up and commits again.
	ok := t.Run("isolate the leader", func(t *testing.T) {
		leader, view := c.leader(t, vals)
		others := without(vals, leader)
		h0 := c.sameHead(t, vals)
		for _, n := range others {
			n.partition(t, "both", leader)
		}
		leader.partition(t, "both", others...)
		ids := c.submitOnly(t, others[0], 10)
		c.waitTxs(t, others, ids)
		for _, n := range others {
			if st := n.mustStatus(t); st.View <= view || st.Leader == leader.PeerID {
				t.Fatalf("%s: view %d leader %s with the leader of view %d cut off", n.Name, st.View, st.Leader, view)
			}
		}
		if st := leader.mustStatus(t); st.Height != h0 {
			t.Fatalf("the isolated leader's height moved from %d to %d", h0, st.Height)
		}
		heal(t)
		c.waitTxs(t, []*netNode{leader}, ids)
		c.agree(t, vals...)
		c.waitTxs(t, vals, txIDs(c.commit(t, leader, 5)))
		c.needsVote(t, leader)
	})

	// Two against two: no side has a quorum, so nothing commits while
	// split (watched over several view-change timeouts) and every node
	// says it has no quorum; healed, what was submitted commits.
	ok = ok && t.Run("split two and two", func(t *testing.T) {
		h0 := c.sameHead(t, vals)
		a, b := vals[:2], vals[2:]
		for _, n := range a {
			n.partition(t, "both", b...)
		}
		for _, n := range b {
			n.partition(t, "both", a...)
		}
		ids := append(c.submitOnly(t, a[0], 5), c.submitOnly(t, b[0], 5)...)
		window := 3 * chainVCTimeout
		split := time.Now()
		noQuorum := map[string]bool{}
		tick := time.NewTicker(pollEvery)
		defer tick.Stop()
		for ; time.Since(split) < window || len(noQuorum) < len(vals); <-tick.C {
			if time.Since(split) > chainWait {
				t.Fatalf("after %v of the split only %v say they have no quorum", chainWait, noQuorum)
			}
			for _, n := range vals {
				st := n.mustStatus(t)
				if st.Height != h0 {
					t.Fatalf("%s committed height %d during a 2-2 split (was %d)", n.Name, st.Height, h0)
				}
				if !st.HasQuorum {
					noQuorum[n.Name] = true
				}
			}
		}
		t.Logf("no commit in %v of a 2-2 split", time.Since(split).Round(time.Millisecond))
		heal(t)
		healed := time.Now()
		c.waitTxs(t, vals, ids)
		t.Logf("commit %v after the heal", time.Since(healed).Round(time.Millisecond))
		c.agree(t, vals...)
	})

	// The leader's outgoing consensus frames dropped (it still hears the
	// others): they change view and the chain goes on; healed, all agree.
	_ = ok && t.Run("one-way link from the leader", func(t *testing.T) {
		leader, view := c.leader(t, vals)
		others := without(vals, leader)
		leader.partition(t, "out", others...)
		ids := c.submitOnly(t, others[0], 10)
		c.waitTxs(t, others, ids)
		if st := others[0].mustStatus(t); st.View <= view {
			t.Fatalf("%s: view %d, want past %d with the leader unheard", others[0].Name, st.View, view)
		}
		more := c.commit(t, others[1], 5)
		heal(t)
		c.waitTxs(t, vals, append(ids, txIDs(more)...))
		c.waitTxs(t, vals, txIDs(c.commit(t, leader, 5)))
		c.agree(t, vals...)
	})
}

// TestChainClockSkew runs a network whose first leader's chain clock is
// off by five minutes (AUDITNET_TEST_CLOCK_OFFSET), ahead in one run and
// behind in another: the chain keeps committing, and every block time is
// within Δ (genesis MaxClockSkewMs) of the honest clocks, here the test's
// own, which the honest daemons share.
func TestChainClockSkew(t *testing.T) {
	skipShort(t)
	for _, tc := range []struct {
		name, offset string
		ahead        bool
	}{
		{"leader 5m ahead", "+5m", true},
		{"leader 5m behind", "-5m", false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			c := newChainNet(t, 4, 0)
			vals := c.validators()
			skewed := c.viewLeader(t, 0)
			honest := without(vals, skewed)
			// The skewed node starts first, so that it still leads when the
			// first transactions arrive.
			skewed.start(t, []string{"AUDITNET_TEST_CLOCK_OFFSET=" + tc.offset})
			skewed.waitReady(t)
			c.startAll(t, honest...)
			if st := honest[0].mustStatus(t); st.View != 0 || st.Leader != skewed.PeerID || st.Height != 0 {
				t.Fatalf("want the skewed validator %s to lead view 0 of an empty chain: view %d leader %s height %d",
					skewed.PeerID, st.View, st.Leader, st.Height)
			}

			// Each block committed between a batch's submission and its
			// answer, by the honest clock. The batches go on for a few Δ, so
			// that a block time that stood still would fall behind.
			delta := time.Duration(c.genesis.Params.MaxClockSkewMs) * time.Millisecond
			type window struct{ from, to time.Time }
			when := map[uint64]window{}
			start := time.Now()
			for i := 0; i < 4 || time.Since(start) < 3*delta; i++ {
				from := time.Now()
				txs := c.commit(t, honest[i%len(honest)], 5)
				to := time.Now()
				for _, tx := range txs {
					when[tx.Height] = window{from, to}
				}
			}
			h := c.agree(t, vals...)
			var blocks []node.BlockInfo
			var prevTime int64
			bySkewed := 0
			for height := uint64(1); height <= h; height++ {
				b, err := honest[0].block(t, height)
				if err != nil {
					t.Fatal(err)
				}
				w, ok := when[height]
				if !ok {
					t.Fatalf("block %d holds none of the test's transactions", height)
				}
				bt := time.UnixMilli(b.Header.Time)
				if b.Header.Time <= prevTime {
					t.Fatalf("block %d time %d not after the previous block's %d", height, b.Header.Time, prevTime)
				}
				prevTime = b.Header.Time
				if ahead := bt.Sub(w.to); ahead > delta {
					t.Fatalf("block %d time %v is %v ahead of the honest clocks (Δ %v)", height, bt, ahead, delta)
				}
				if chain.PeerIDString(b.Header.Proposer) == skewed.PeerID {
					bySkewed++
				}
				blocks = append(blocks, b)
			}
			behind := func(t *testing.T) {
				late, worst := 0, time.Duration(0)
				for _, b := range blocks {
					if lag := when[b.Height].from.Sub(time.UnixMilli(b.Header.Time)); lag > delta {
						late, worst = late+1, max(worst, lag)
					}
				}
				if late > 0 {
					t.Fatalf("%d of %d block times are more than Δ %v behind the honest clocks, up to %v", late, len(blocks), delta, worst.Round(time.Millisecond))
				}
			}
			if tc.ahead {
				// Its proposals are refused, so another leader took over.
				if bySkewed > 0 {
					t.Fatalf("%d blocks proposed by the validator 5 minutes ahead committed", bySkewed)
				}
				if st := honest[0].mustStatus(t); st.View == 0 {
					t.Fatal("still in view 0 under a leader whose blocks cannot commit")
				}
				behind(t)
				return
			}
			t.Logf("%d of %d blocks proposed by the validator 5 minutes behind", bySkewed, h)
			t.Run("block times not behind the honest clocks", func(t *testing.T) {
				behind(t)
			})
		})
	}
}

// TestChainRestartAll stops every validator with SIGTERM and starts them
// again: they come back at the height they stopped at, with the same
// blocks and state roots, and commit new transactions.
func TestChainRestartAll(t *testing.T) {
	skipShort(t)
	c := newChainNet(t, 4, 0)
	c.startAll(t)
	vals := c.validators()
	for _, via := range vals {
		c.commit(t, via, 5)
	}
	h := c.agree(t, vals...)
	before := map[uint64]node.BlockInfo{}
	for height := uint64(1); height <= h; height++ {
		b, err := vals[0].block(t, height)
		if err != nil {
			t.Fatal(err)
		}
		before[height] = b
	}
	for _, n := range vals {
		n.stop(t)
	}
	c.startAll(t, vals...)
	// They restart at h. If the stops, one after the other, left a view
	// change under way, its new view may already have committed an empty
	// block beyond h; nothing else may be there, since nothing was
	// submitted.
	for _, n := range vals {
		st := n.mustStatus(t)
		if st.Height < h {
			t.Fatalf("%s restarted at height %d, stopped at %d", n.Name, st.Height, h)
		}
		for height := uint64(1); height <= st.Height; height++ {
			b, err := n.block(t, height)
			if err != nil {
				t.Fatalf("%s: block %d after the restart: %v", n.Name, height, err)
			}
			if height > h {
				if len(b.Txs) > 0 {
					t.Fatalf("%s: block %d after the restart holds %d txs, none was submitted", n.Name, height, len(b.Txs))
				}
				t.Logf("%s: empty block %d (view %d) committed after the restart", n.Name, height, b.Header.View)
				continue
			}
			if want := before[height]; b.CID != want.CID || !bytes.Equal(b.Header.StateRoot, want.Header.StateRoot) {
				t.Fatalf("%s: block %d is %s after the restart, was %s", n.Name, height, b.CID, want.CID)
			}
		}
	}
	var txs []committedTx
	for _, via := range vals {
		txs = append(txs, c.commit(t, via, 5)...)
	}
	c.waitTxs(t, vals, txIDs(txs))
	if got := c.agree(t, vals...); got < h+uint64(len(vals)) {
		t.Fatalf("height %d after %d more batches from %d", got, len(vals), h)
	}
}

// TestChainFollowerCatchUp stops a follower while the chain grows by at
// least 50 blocks; started again, it catches up: lag 0 and the same blocks
// as the validators.
func TestChainFollowerCatchUp(t *testing.T) {
	skipShort(t)
	c := newChainNet(t, 4, 1)
	c.startAll(t)
	vals, fol := c.validators(), c.followers()[0]
	c.commit(t, vals[0], 5)
	c.agree(t, c.nodes...)
	fol.stop(t)
	h0 := vals[0].mustStatus(t).Height
	var ids []string
	for i := 0; vals[0].mustStatus(t).Height < h0+50; i++ {
		ids = append(ids, txIDs(c.commit(t, vals[i%len(vals)], 2))...)
	}
	fol.restart(t, nil)
	h := c.agree(t, c.nodes...)
	eventually(t, "the follower's lag to be 0", chainWait, func() (bool, string) {
		st := fol.mustStatus(t)
		return st.Height >= h && st.Lag == 0, fmt.Sprintf("height %d known %d lag %d", st.Height, st.KnownHeight, st.Lag)
	})
	c.waitTxs(t, []*netNode{fol}, ids)
	t.Logf("follower caught up %d blocks", h-h0)
}

// TestChainWALMissing deletes a stopped validator's chain/wal: the daemon
// refuses to start and says why, and starts with --recover-wal, catches
// up, commits and votes.
func TestChainWALMissing(t *testing.T) {
	skipShort(t)
	c := newChainNet(t, 4, 0)
	c.startAll(t)
	vals := c.validators()
	c.commit(t, vals[0], 5)
	c.agree(t, vals...)
	leader, _ := c.leader(t, vals)
	victim := without(vals, leader)[0]
	victim.stop(t)
	walDir := filepath.Join(victim.Dir, "chain", "wal")
	if _, err := os.Stat(walDir); err != nil {
		t.Fatalf("no WAL where the test expects one: %v", err)
	}
	if err := os.RemoveAll(walDir); err != nil {
		t.Fatal(err)
	}
	txs := c.commit(t, leader, 5) // the chain goes on meanwhile

	p := victim.start(t, nil)
	select {
	case <-p.done:
	case <-time.After(chainWait):
		t.Fatalf("a validator without its WAL did not refuse to start\n%s", p.tail(20))
	}
	out := p.out.String()
	if p.err == nil || !strings.Contains(out, "Error: chain data exists but its write-ahead log is missing") || !strings.Contains(out, "--recover-wal") {
		t.Fatalf("start without a WAL: exit %v, output:\n%s", p.err, p.tail(20))
	}
	if strings.Contains(out, "Daemon is ready") {
		t.Fatal("the daemon said it was ready before refusing")
	}
	if _, err := os.Stat(walDir); !os.IsNotExist(err) {
		t.Fatalf("the refused start left a WAL directory behind (a second start would not refuse): %v", err)
	}

	victim.restart(t, nil, "--recover-wal")
	c.waitTxs(t, []*netNode{victim}, txIDs(txs))
	c.waitTxs(t, vals, txIDs(c.commit(t, victim, 5)))
	c.agree(t, vals...)
	c.needsVote(t, victim)
}

// TestBenchChain runs `bench chain` briefly in each mix against a running
// testnet: what it reports committed did commit, and in the access mix
// every request it sent completes as an access event, its Served on the
// chain beside it.
func TestBenchChain(t *testing.T) {
	skipShort(t)
	c := newChainNet(t, 4, 0)
	c.startAll(t)
	for _, mix := range []string{node.MixAnchor, node.MixAudit, node.MixAccess} {
		var res node.BenchResult
		out := mustCLI(t, "bench", "chain", "--testnet", c.dir, "--rate", "200", "--duration", "1s", "--mix", mix, "--json")
		if err := json.Unmarshal([]byte(out), &res); err != nil {
			t.Fatalf("%s: %v: %s", mix, err, out)
		}
		if res.Refused != 0 || res.Committed < 150 || res.Committed != res.Accepted || res.FirstRefuse != "" {
			t.Fatalf("%s: %+v", mix, res)
		}
		if mix == node.MixAccess && (res.Served < 150 || res.Committed != 2*res.Served) {
			t.Fatalf("access mix: %d requests and Served committed, %d access events completed: %+v", res.Committed, res.Served, res)
		}
	}
	var served []node.LogEntry
	json.Unmarshal([]byte(mustCLI(t, "--repo", c.validators()[0].Dir, "log", "--kind", "served", "--json")), &served)
	if len(served) < 150 || served[0].Code != chain.OutcomeServed || served[0].Bytes == 0 {
		t.Fatalf("%d served events on the chain, the first %+v", len(served), served[0:min(1, len(served))])
	}
}
