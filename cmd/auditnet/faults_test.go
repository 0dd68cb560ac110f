package main

import (
	"bytes"

	"crypto/rand"
	"net/http"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"auditnet/chain"
	"auditnet/node"
)

// attempt is one `cat` the auditor ran while faults came and went.
type attempt struct {
	dataset        string
	start, end     time.Time
	out, errOut    string
	code           int
	duringNoQuorum bool
}

// TestServedOnlyUnderAuthorisedRequests is the checker run under faults:
// while the auditor fetches in a loop, a validator is killed, the holder
// is killed after a request is authorised, and quorum is lost. Afterwards
// the holder's own journal of what it served is checked against the
// chain: every stream that carried a byte did so under a committed,
// authorised request of the same auditor for the same dataset, committed
// before the stream began; while the holder saw no quorum, nothing was
// served, and every fetch failed with nothing written.
func TestServedOnlyUnderAuthorisedRequests(t *testing.T) {
	skipShort(t)
	c := newChainNet(t, 4, 2)
	c.startAll(t)
	agency, auditor, office := c.roles(t)
	vals := without(c.validators(), office)

	// Two granted datasets and one the auditor has no grant for.
	dir := t.TempDir()
	data := map[string][]byte{}
	var granted []string
	for i, size := range []int{300_000, 40_000, 5_000} {
		b := make([]byte, size)
		rand.Read(b)
		p := filepath.Join(dir, strings.Repeat("d", i+1))
		os.WriteFile(p, b, 0o600)
		root := strings.TrimSpace(mustCLI(t, "--repo", agency.Dir, "add", "-Q", p))
		data[root] = b
		if i < 2 {
			mustCLI(t, "--repo", agency.Dir, "grant", root, auditor.PeerID)
			granted = append(granted, root)
		}
	}
	roots := make([]string, 0, len(data))
	for r := range data {
		roots = append(roots, r)
	}

	// The fetch loop, owned by this test and stopped before the checks.
	// It holds turn for each attempt: the test takes turn to pause it.
	var (
		mu       sync.Mutex
		attempts []attempt
		noQuorum bool
		turn     = make(chan struct{}, 1)
		stop     = make(chan struct{})
		loopDone = make(chan struct{})
	)
	successes := func() int {
		mu.Lock()
		defer mu.Unlock()
		n := 0
		for _, a := range attempts {
			if a.code == 0 {
				n++
			}
		}
		return n
	}
	fetchOnce := func(root string, args ...string) attempt {
		mu.Lock()
		nq := noQuorum
		mu.Unlock()
		a := attempt{dataset: root, start: time.Now(), duringNoQuorum: nq}
		var out, errOut bytes.Buffer
		a.code = run(append([]string{"--repo", auditor.Dir, "cat", "--purpose", "fault check"}, append(args, root)...), strings.NewReader(""), &out, &errOut)
		a.end, a.out, a.errOut = time.Now(), out.String(), errOut.String()
		mu.Lock()
		if noQuorum != nq {
			a.duringNoQuorum = false // the phase changed under it: not counted either way
		}
		attempts = append(attempts, a)
		mu.Unlock()
		return a
	}
	go func() {
		defer close(loopDone)
		for i := 0; ; i++ {
			select {
			case <-stop:
				return
			case turn <- struct{}{}:
			}
			fetchOnce(roots[i%len(roots)])
			<-turn
		}
	}()
	stopLoop := func() {
		select {
		case <-stop:
		default:
			close(stop)
		}
		<-loopDone
	}
	defer stopLoop()
	pause := func() { turn <- struct{}{} } // once the attempt under way ends
	resume := func() { <-turn }
	progress := func(what string) {
		t.Helper()
		n := successes()
		eventually(t, what, chainWait, func() (bool, string) { return successes() >= n+2, "" })
	}
	progress("fetches on a healthy network")

	// A validator killed: f = 1, the chain and the fetches go on.
	vals[0].kill(t)
	progress("fetches with a validator down")
	vals[0].restart(t, nil)

	// The holder killed after authorisations: fetches fail, naming it,
	// until it is back. Its journal so far is kept before it goes.
	journal := servedJournal(t, agency)
	killed := time.Now()
	agency.kill(t)
	eventually(t, "a fetch to fail on the killed holder", chainWait, func() (bool, string) {
		mu.Lock()
		defer mu.Unlock()
		last := attempts[len(attempts)-1]
		return last.start.After(killed) && strings.Contains(last.errOut, "the holder "+agency.PeerID), last.errOut
	})
	agency.restart(t, nil)
	progress("fetches after the holder's restart")

	// An authorised request its holder never served, made with the loop
	// paused, so that few blocks of its access window pass (the loop
	// makes dozens of blocks a second): the holder is killed again.
	pause()
	journal = append(journal, servedJournal(t, agency)...)
	agency.kill(t)
	failed := fetchOnce(granted[0])
	pending := pendingRequest(failed.errOut)
	if failed.code == 0 || !strings.Contains(failed.errOut, "the holder "+agency.PeerID) || pending == "" {
		t.Fatalf("a fetch from the killed holder: exit %d: %s", failed.code, failed.errOut)
	}
	agency.restart(t, nil)

	// No quorum: two of four validators stopped. From when the holder
	// itself sees no quorum until they are back, nothing may be served.
	vals[0].stop(t)
	vals[1].stop(t)
	eventually(t, "the holder to see no quorum", chainWait, func() (bool, string) {
		st, err := agency.status(t)
		return err == nil && !st.HasQuorum, ""
	})
	mu.Lock()
	noQuorum = true
	mu.Unlock()
	quorumLost := time.Now()
	resume()
	eventually(t, "fetches attempted without a quorum", chainWait, func() (bool, string) {
		mu.Lock()
		defer mu.Unlock()
		n := 0
		for _, a := range attempts {
			if a.duringNoQuorum {
				n++
			}
		}
		return n >= 3, ""
	})
	pause()
	// The pending request is still authorised and unserved on the chain,
	// but the holder, seeing no quorum, refuses it.
	if a := fetchOnce(granted[0], "--request", pending); a.code == 0 || !strings.Contains(a.errOut, "not fresh") {
		t.Fatalf("a fetch under a pending request without a quorum: exit %d: %s", a.code, a.errOut)
	}
	mu.Lock()
	noQuorum = false
	mu.Unlock()
	quorumBack := time.Now()
	c.startAll(t, vals[0], vals[1])
	eventually(t, "the holder to serve the pending request with the quorum back", chainWait, func() (bool, string) {
		a := fetchOnce(granted[0], "--request", pending)
		return a.code == 0, a.errOut
	})
	resume()
	progress("fetches with the quorum back")
	stopLoop()
	journal = append(journal, servedJournal(t, agency)...)

	// The auditor's side: a fetch either printed the whole dataset or
	// failed with nothing; the ungranted one never printed anything; and
	// without a quorum every fetch failed closed.
	failedClosed := 0
	for _, a := range attempts {
		switch {
		case a.code == 0 && a.out != string(data[a.dataset]):
			t.Fatalf("a fetch of %s succeeded with %d bytes of %d", a.dataset, len(a.out), len(data[a.dataset]))
		case a.code != 0 && a.out != "":
			t.Fatalf("a failed fetch of %s printed %d bytes: %s", a.dataset, len(a.out), a.errOut)
		case a.code == 0 && !slices.Contains(granted, a.dataset):
			t.Fatalf("the ungranted dataset %s was fetched", a.dataset)
		case a.duringNoQuorum && a.code == 0:
			t.Fatalf("a fetch of %s succeeded without a quorum (%v to %v)", a.dataset, a.start, a.end)
		}
		if a.duringNoQuorum {
			failedClosed++
		}
	}

	// The holder's side: every stream that carried bytes ran under a
	// committed, authorised request of the stream's auditor, for its
	// dataset, that the holder saw committed before the stream began.
	servedBytes := 0
	for _, s := range journal {
		if s.Bytes == 0 {
			continue
		}
		servedBytes++
		tl, err := office.tx(t, s.Request)
		if err != nil {
			t.Fatalf("stream %+v: its request is not on the chain: %v", s, err)
		}
		blk, err := office.block(t, tl.Height)
		if err != nil {
			t.Fatal(err)
		}
		switch {
		case tl.Outcome == nil || tl.Outcome.Code != chain.OutcomeAuthorised:
			t.Fatalf("stream %+v: its request's outcome is %+v", s, tl.Outcome)
		case tl.Tx.Body.Kind != chain.KindAccess || chain.PeerIDString(tl.Tx.Body.Sender) != s.Auditor:
			t.Fatalf("stream %+v: request %s is a %s from %x", s, s.Request, tl.Tx.Body.Kind, tl.Tx.Body.Sender)
		case tl.Tx.Body.Access.Dataset.Root.Cid.String() != s.Root || chain.PeerIDString(tl.Tx.Body.Access.Provider) != agency.PeerID:
			t.Fatalf("stream %+v: request %s is for %s from %x", s, s.Request, tl.Tx.Body.Access.Dataset.Root.Cid, tl.Tx.Body.Access.Provider)
		case s.RequestHeight != tl.Height || s.ViewHeight < tl.Height:
			t.Fatalf("stream %+v: the request committed at height %d", s, tl.Height)
		case !time.UnixMilli(blk.Header.Time).Before(s.Started.Add(time.Millisecond)):
			t.Fatalf("stream %+v began before its request's block time %v", s, time.UnixMilli(blk.Header.Time))
		case s.Started.After(quorumLost) && s.Started.Before(quorumBack):
			t.Fatalf("stream %+v served while the holder saw no quorum (%v to %v)", s, quorumLost, quorumBack)
		}
	}
	if servedBytes < 6 || failedClosed < 3 {
		t.Fatalf("the checker saw %d streams with data and %d fetches without a quorum: too few to mean anything", servedBytes, failedClosed)
	}
}

// pendingRequest is the access request a failed fetch names ("… under
// access request ID …"), or "".
func pendingRequest(errOut string) string {
	_, after, ok := strings.Cut(errOut, "under access request ")
	if !ok {
		return ""
	}
	return strings.Trim(strings.Fields(after + " .")[0], ".,:;")
}

// servedJournal is the holder's journal of the streams it served.
func servedJournal(t *testing.T, n *netNode) []node.ServedStream {
	t.Helper()
	var out struct{ Streams []node.ServedStream }
	if err := n.client(t).do(apiTimeout, http.MethodGet, "served", nil, nil, &out); err != nil {
		t.Fatalf("%s: served: %v", n.Name, err)
	}
	return out.Streams
}
