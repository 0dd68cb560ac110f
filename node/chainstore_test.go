package node

import (
	"context"
	"testing"
)

// TestWaitStoredFollowsThePublishedState: a holder that found a request
// in the published state, one block ahead of the status, waits for the
// store to hold that block before reading the request from it.
func TestWaitStoredFollowsThePublishedState(t *testing.T) {
	c := &chainNode{storedCh: make(chan struct{})}
	c.status.Store(&ChainStatus{Height: 5})
	c.state.Store(&stateBox{height: 6})
	c.setStored(5)
	go c.setStored(6)
	c.waitStored(context.Background(), 6)
	if got := c.stored.Load(); got != 6 {
		t.Fatalf("waitStored(6) returned with the store at height %d", got)
	}
	// A height nothing has committed yet is not waited for.
	c.waitStored(context.Background(), 9)
}
