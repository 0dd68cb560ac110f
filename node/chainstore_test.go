package node

import (
	"context"
	"testing"
	"time"
)

// TestWaitStoredFollowsThePublishedState: a holder that found a request
// in the published state, one block ahead of the status, waits for the
// store to hold that block before reading the request from it; a height
// nothing has committed is not waited for.
func TestWaitStoredFollowsThePublishedState(t *testing.T) {
	c := &chainNode{storedCh: make(chan struct{})}
	c.status.Store(&ChainStatus{Height: 5})
	c.state.Store(&stateBox{height: 6})
	c.setStored(5)

	// The store stays at 5: the wait lasts until the caller gives up.
	ctx, cancel := context.WithTimeout(context.Background(), 100*time.Millisecond)
	defer cancel()
	c.waitStored(ctx, 6)
	if ctx.Err() == nil {
		t.Fatalf("waitStored(6) returned with the store at height %d", c.stored.Load())
	}
	// Once the store reaches 6, it returns.
	go c.setStored(6)
	c.waitStored(context.Background(), 6)
	if got := c.stored.Load(); got != 6 {
		t.Fatalf("waitStored(6) returned with the store at height %d", got)
	}
	// A height beyond what the state holds returns at once.
	ctx, cancel = context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	c.waitStored(ctx, 9)
	if ctx.Err() != nil {
		t.Fatal("waitStored waited for a height nothing has committed")
	}
}
