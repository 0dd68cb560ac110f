package node

import (
	"context"
	"encoding/json"
	"errors"
	"log/slog"
	"os"
	"path/filepath"
	"sync"
	"testing"
	"testing/synctest"
	"time"

	"github.com/ipfs/go-cid"
	mh "github.com/multiformats/go-multihash"

	"auditnet/storage"
)

// fakeRoots holds the local roots; it also claims a fetched one, which must
// never be announced.
type fakeRoots []cid.Cid

func (f fakeRoots) PinsOf(_ context.Context, origin storage.PinOrigin) ([]cid.Cid, error) {
	if origin == storage.PinFetched {
		return []cid.Cid{testCid("fetched")}, nil
	}
	return f, nil
}

// fakeDHT records announcements; it fails while down is set.
type fakeDHT struct {
	mu       sync.Mutex
	down     bool
	provided []cid.Cid
}

func (d *fakeDHT) Provide(_ context.Context, c cid.Cid) error {
	d.mu.Lock()
	defer d.mu.Unlock()
	if d.down {
		return errors.New("no peers")
	}
	d.provided = append(d.provided, c)
	return nil
}

func (d *fakeDHT) count() int {
	d.mu.Lock()
	defer d.mu.Unlock()
	return len(d.provided)
}

func testCid(s string) cid.Cid {
	h, _ := mh.Sum([]byte(s), mh.SHA2_256, -1)
	return cid.NewCidV1(cid.Raw, h)
}

func writeState(t *testing.T, path string, st reprovideState) {
	t.Helper()
	raw, _ := json.Marshal(st)
	if err := os.WriteFile(path, raw, 0o600); err != nil {
		t.Fatal(err)
	}
}

// TestReprovideScheduleSurvivesRestart checks the schedule kept in
// reprovide.json: a node restarted soon after a round waits out the rest of
// the interval instead of announcing again; one that was down longer than
// the interval announces at once; roots still pending at the restart are
// announced at once; and failed announcements are retried.
func TestReprovideScheduleSurvivesRestart(t *testing.T) {
	roots := fakeRoots{testCid("a"), testCid("b")}
	const interval = 12 * time.Hour
	synctest.Test(t, func(t *testing.T) {
		path := filepath.Join(t.TempDir(), "reprovide.json")
		writeState(t, path, reprovideState{LastRound: time.Now().Add(-time.Hour), Pending: []string{testCid("new").String()}})
		dht := &fakeDHT{}
		r := newReprovider(path, interval, roots, dht, discard())
		ctx, cancel := context.WithCancel(context.Background())
		done := make(chan error)
		go func() { done <- r.run(ctx) }()
		synctest.Wait()
		if got := dht.count(); got != 1 {
			t.Fatalf("restart an hour after a round: %d announcements, want only the pending root", got)
		}
		time.Sleep(interval - time.Hour - time.Minute) // fake time: just before the round is due
		synctest.Wait()
		if got := dht.count(); got != 1 {
			t.Fatalf("before the round is due: %d announcements", got)
		}
		time.Sleep(2 * time.Minute)
		synctest.Wait()
		if got := dht.count(); got != 3 {
			t.Fatalf("after the round: %d announcements, want 3", got)
		}
		cancel()
		if err := <-done; err != nil {
			t.Fatal(err)
		}
		for _, c := range dht.provided {
			if c.Equals(testCid("fetched")) {
				t.Fatal("a fetched root was announced")
			}
		}
		var st reprovideState
		raw, _ := os.ReadFile(path)
		json.Unmarshal(raw, &st)
		if time.Since(st.LastRound) > 2*time.Minute || len(st.Pending) != 0 {
			t.Fatalf("saved state %+v", st)
		}
	})
	synctest.Test(t, func(t *testing.T) {
		path := filepath.Join(t.TempDir(), "reprovide.json")
		writeState(t, path, reprovideState{LastRound: time.Now().Add(-2 * interval)})
		dht := &fakeDHT{down: true}
		r := newReprovider(path, interval, roots, dht, discard())
		ctx, cancel := context.WithCancel(context.Background())
		done := make(chan error)
		go func() { done <- r.run(ctx) }()
		synctest.Wait()
		if got := dht.count(); got != 0 {
			t.Fatalf("DHT down: %d announcements", got)
		}
		dht.mu.Lock()
		dht.down = false
		dht.mu.Unlock()
		time.Sleep(r.retry + time.Second)
		synctest.Wait()
		if got := dht.count(); got != 2 {
			t.Fatalf("after the retry: %d announcements, want 2", got)
		}
		cancel()
		<-done
	})
}

func discard() *slog.Logger { return slog.New(slog.DiscardHandler) }

// TestReprovideOnlyAllowedRoots: with a filter (on the chain: datasets
// anchored open), a full round and the queue of new roots both announce
// only the roots it allows, and a refused root leaves the queue.
func TestReprovideOnlyAllowedRoots(t *testing.T) {
	open, restricted := testCid("open"), testCid("restricted")
	synctest.Test(t, func(t *testing.T) {
		path := filepath.Join(t.TempDir(), "reprovide.json")
		writeState(t, path, reprovideState{LastRound: time.Now().Add(-48 * time.Hour)})
		dht := &fakeDHT{}
		r := newReprovider(path, 12*time.Hour, fakeRoots{open, restricted}, dht, discard())
		r.allowed = func(c cid.Cid) bool { return c.Equals(open) }
		ctx, cancel := context.WithCancel(context.Background())
		done := make(chan error)
		go func() { done <- r.run(ctx) }()
		synctest.Wait()
		r.announce(restricted)
		synctest.Wait()
		cancel()
		if err := <-done; err != nil {
			t.Fatal(err)
		}
		if len(dht.provided) != 1 || !dht.provided[0].Equals(open) {
			t.Fatalf("announced %v, want only the open root", dht.provided)
		}
		r.mu.Lock()
		left := len(r.pending)
		r.mu.Unlock()
		if left != 0 {
			t.Fatalf("%d roots left queued", left)
		}
	})
}
