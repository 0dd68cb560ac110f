package unixfs

import (
	"context"
	"fmt"
	"sync"

	"github.com/ipfs/go-cid"
)

// memSink is an in-memory block store for tests: it keeps every block and
// the order they came in.
type memSink struct {
	mu     sync.Mutex
	blocks map[string][]byte
	order  []cid.Cid
}

func (s *memSink) Put(c cid.Cid, data []byte) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.blocks == nil {
		s.blocks = make(map[string][]byte)
	}
	s.blocks[string(c.Hash())] = append([]byte(nil), data...)
	s.order = append(s.order, c)
	return nil
}

func (s *memSink) Get(_ context.Context, c cid.Cid) ([]byte, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	b, ok := s.blocks[string(c.Hash())]
	if !ok {
		return nil, fmt.Errorf("block %s not found", c)
	}
	return b, nil
}
