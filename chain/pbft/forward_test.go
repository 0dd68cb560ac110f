package pbft

import (
	"errors"
	"testing"

	"auditnet/chain"
)

// forwardNet drives a verifyNet's four cores by hand, in steps of simulated
// time, with a filter that may drop a message on its way.
type forwardNet struct {
	t  *testing.T
	vn *verifyNet
	// drop, if set, is asked about every message: true loses it.
	drop func(from, to int, m *Message) bool
}

// run steps the network in 10 ms ticks until done returns true or ms of
// simulated time have passed; it reports whether done held.
func (f *forwardNet) run(ms int64, done func() bool) bool {
	net := f.vn.net
	end := net.now + ms
	for net.now < end {
		if done() {
			return true
		}
		type delivery struct {
			from, to int
			m        *Message
		}
		var out []delivery
		for i, c := range net.cores {
			for c.HasReady() {
				rd := c.Ready()
				c.Advance()
				for _, o := range rd.Messages {
					for j := range net.cores {
						if j == i || (o.To != nil && net.ids[string(o.To)] != j) {
							continue
						}
						if f.drop != nil && f.drop(i, j, o.Msg) {
							continue
						}
						out = append(out, delivery{i, j, wire(f.t, o.Msg)})
					}
				}
			}
		}
		for _, d := range out {
			_ = net.cores[d.to].Step(net.cores[d.from].ID(), d.m)
		}
		net.now += 10
		for _, c := range net.cores {
			c.Tick(net.now)
		}
	}
	return done()
}

func (f *forwardNet) views() []uint64 {
	var vs []uint64
	for _, c := range f.vn.net.cores {
		v, _ := c.View()
		vs = append(vs, v)
	}
	return vs
}

// TestLostForwardIsSentAgainBeforeSuspicion: forwarding a client's
// transaction to the other validators is best effort (a saturated node
// drops what it cannot verify in time). A validator whose transaction
// waited a request timeout forwards it again before it suspects the
// leader, so one lost forward costs a delay, not a view change; a leader
// that still leaves it out is suspected after a second wait.
func TestLostForwardIsSentAgainBeforeSuspicion(t *testing.T) {
	t.Run("one lost forward", func(t *testing.T) {
		vn := newVerifyNet(t)
		f := &forwardNet{t: t, vn: vn}
		holder := vn.net.cores[vn.backup]
		tx := vn.load.next(probePick, 500)
		id, _ := tx.ID()
		forwards := 0
		f.drop = func(from, to int, m *Message) bool {
			if from != vn.backup || len(m.Txs) == 0 {
				return false
			}
			if to == (vn.backup+1)%4 {
				forwards++ // counted once per message
			}
			return forwards == 1
		}
		if err := holder.Submit(tx); err != nil {
			t.Fatal(err)
		}
		committed := func() bool {
			return vn.net.cores[vn.leader].Height() > 0 && !holder.mempool.has(id) && holder.Height() > 0
		}
		if !f.run(3*DefaultRequestTimeoutMs, committed) {
			t.Fatalf("not committed within %d ms (views %v, holder's mempool %d)", 3*DefaultRequestTimeoutMs, f.views(), holder.mempool.len())
		}
		if forwards != 2 {
			t.Fatalf("the holder forwarded it %d times, want 2 (the lost one and once more)", forwards)
		}
		for i, v := range f.views() {
			if v != 0 {
				t.Fatalf("validator %d is in view %d: one lost forward changed the view", i, v)
			}
		}
	})
	t.Run("a leader that never takes it", func(t *testing.T) {
		vn := newVerifyNet(t)
		f := &forwardNet{t: t, vn: vn}
		holder := vn.net.cores[vn.backup]
		tx := vn.load.next(probePick, 500)
		f.drop = func(from, to int, m *Message) bool { return from == vn.backup && len(m.Txs) > 0 }
		if err := holder.Submit(tx); err != nil {
			t.Fatal(err)
		}
		moved := func() bool { v, _ := holder.View(); return v > 0 }
		if !f.run(3*DefaultRequestTimeoutMs, moved) {
			t.Fatalf("the holder never suspected a leader that left its transaction out (views %v)", f.views())
		}
	})
}

// TestForwardedTxsBeyondClientLimit: the mempool limit refuses clients
// (busy), but a transaction another validator forwarded, which it admitted
// under its own limit, is taken up to validators times the limit, so the
// leader holds what every validator holds and none waits in vain.
func TestForwardedTxsBeyondClientLimit(t *testing.T) {
	vn := newVerifyNet(t)
	c := vn.net.cores[vn.backup]
	c.mempool.max = 2
	for range 2 {
		if err := c.Submit(vn.load.next(probePick, 500)); err != nil {
			t.Fatal(err)
		}
	}
	if err := c.Submit(vn.load.next(probePick, 500)); !errors.Is(err, ErrBusy) {
		t.Fatalf("a client's transaction beyond the limit: %v, want ErrBusy", err)
	}
	var fwd []chain.Tx
	for range 7 {
		fwd = append(fwd, *vn.load.next(probePick, 500))
	}
	peer := vn.net.cores[vn.leader].ID()
	err := c.Step(peer, wire(t, &Message{Txs: fwd}))
	if !errors.Is(err, ErrBusy) {
		t.Fatalf("7 forwarded onto 2 with room for 8: %v, want the last refused busy", err)
	}
	if n := c.mempool.len(); n != 8 {
		t.Fatalf("mempool holds %d, want 8 (4 validators × 2)", n)
	}
}
