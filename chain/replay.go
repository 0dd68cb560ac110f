package chain

import (
	"bytes"
	"fmt"
	"sync"

	"auditnet/internal/dagcbor"
)

// ReplayCache keeps the replay set's lists decoded, as sets of
// transaction IDs, so that checking a transaction against the replay set
// does not decode thousands of IDs. An entry is used only for the very
// bytes it was decoded from, so a cache shared by machines over different
// states (a committed state and the clones blocks are tried on) never
// gives one of them another's answer. It is safe for concurrent use.
type ReplayCache struct {
	mu sync.Mutex
	// lists holds, by expiry height and then committing height, the
	// decoding of one list.
	lists map[uint64]map[uint64]*replayList
	size  int
}

type replayList struct {
	raw []byte
	ids map[string]bool
}

// maxReplayLists bounds the lists a ReplayCache keeps; past it, it starts
// again empty. A chain whose clients set expiries as the bench does keeps
// a few per expiry height.
const maxReplayLists = 16384

// NewReplayCache returns an empty cache.
func NewReplayCache() *ReplayCache {
	return &ReplayCache{lists: map[uint64]map[uint64]*replayList{}}
}

// list returns the IDs (by Cid.KeyString) in raw, the list of
// transactions committed at height h that expire at height e. State
// values are never changed in place, so the same slice means the same
// bytes; other bytes are compared before a decoding is reused.
func (c *ReplayCache) list(e, h uint64, raw []byte) (map[string]bool, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if l := c.lists[e][h]; l != nil && len(l.raw) == len(raw) && len(raw) > 0 &&
		(&l.raw[0] == &raw[0] || bytes.Equal(l.raw, raw)) {
		return l.ids, nil
	}
	var decoded txList
	if err := dagcbor.Unmarshal(raw, &decoded); err != nil {
		return nil, fmt.Errorf("chain: replay list of height %d expiring at %d: %w", h, e, err)
	}
	ids := make(map[string]bool, len(decoded.IDs))
	for _, id := range decoded.IDs {
		ids[id.Cid.KeyString()] = true
	}
	if c.size >= maxReplayLists {
		c.lists, c.size = map[uint64]map[uint64]*replayList{}, 0
	}
	byHeight := c.lists[e]
	if byHeight == nil {
		byHeight = map[uint64]*replayList{}
		c.lists[e] = byHeight
	}
	if byHeight[h] == nil {
		c.size++
	}
	byHeight[h] = &replayList{raw: raw, ids: ids}
	return ids, nil
}

// forget drops the lists of transactions expiring at e.
func (c *ReplayCache) forget(e uint64) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.size -= len(c.lists[e])
	delete(c.lists, e)
}
