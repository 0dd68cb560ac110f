package p2p

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"math"
	"sync"
	"time"

	"github.com/libp2p/go-libp2p/core/host"
	"github.com/libp2p/go-libp2p/core/network"
	"github.com/libp2p/go-libp2p/core/peer"

	"auditnet/chain"
	"auditnet/internal/dagcbor"
)

// SyncProtocol serves committed blocks and their certificates for
// catch-up: the request is one frame {from, max}; the reply is a frame per
// block, {height, block, cert}, at consecutive heights from `from`, then
// the end of the stream. Fewer blocks than asked (none, past the server's
// height) is a complete answer. All canonical DAG-CBOR.
const SyncProtocol = "/auditnet/sync/1"

// Defaults and bounds of the sync protocol.
const (
	DefaultSyncMaxBlocks = 256
	DefaultSyncMaxBytes  = 64 << 20
	// MaxSyncBytes bounds what FetchCommitted accepts in one reply, and so
	// SyncServiceConfig.MaxBytes.
	MaxSyncBytes          = 256 << 20
	DefaultSyncTimeout    = 30 * time.Second
	DefaultSyncConcurrent = 16

	maxSyncRequestSize = 64
	// maxSyncFrameSize bounds one reply frame: a block, a certificate and
	// the map around them.
	maxSyncFrameSize = chain.MaxBlockSize + chain.MaxCertSize + 64
)

// SyncSource is where the sync service reads committed blocks: the
// committed height, and a block and its commit certificate in their
// canonical encodings.
type SyncSource interface {
	Height() uint64
	RawCommitted(h uint64) (block, cert []byte, err error)
}

// SyncedBlock is a committed block as a peer sent it; the caller decodes
// it and verifies its certificate.
type SyncedBlock struct {
	Height uint64 `cbor:"height"`
	Block  []byte `cbor:"block"`
	Cert   []byte `cbor:"cert"`
}

type syncRequest struct {
	From uint64 `cbor:"from"`
	Max  uint32 `cbor:"max"`
}

func (r syncRequest) check() error {
	if r.From == 0 {
		return errors.New("sync from height 0: blocks start at 1")
	}
	if r.Max == 0 {
		return errors.New("sync of 0 blocks")
	}
	return nil
}

// decodeSyncRequest decodes a request strictly.
func decodeSyncRequest(b []byte) (syncRequest, error) {
	var r syncRequest
	if len(b) > maxSyncRequestSize {
		return r, fmt.Errorf("sync request of %d bytes", len(b))
	}
	if err := dagcbor.Unmarshal(b, &r); err != nil {
		return syncRequest{}, err
	}
	if err := r.check(); err != nil {
		return syncRequest{}, err
	}
	return r, nil
}

func checkSyncedBlock(sb *SyncedBlock) error {
	switch {
	case len(sb.Block) == 0 || len(sb.Block) > chain.MaxBlockSize:
		return fmt.Errorf("block %d of %d bytes, want 1 to %d", sb.Height, len(sb.Block), chain.MaxBlockSize)
	case len(sb.Cert) == 0 || len(sb.Cert) > chain.MaxCertSize:
		return fmt.Errorf("certificate %d of %d bytes, want 1 to %d", sb.Height, len(sb.Cert), chain.MaxCertSize)
	}
	return nil
}

// decodeSyncedBlock decodes a reply frame strictly.
func decodeSyncedBlock(b []byte) (SyncedBlock, error) {
	var sb SyncedBlock
	if len(b) > maxSyncFrameSize {
		return sb, fmt.Errorf("sync frame of %d bytes", len(b))
	}
	if err := dagcbor.Unmarshal(b, &sb); err != nil {
		return SyncedBlock{}, err
	}
	if err := checkSyncedBlock(&sb); err != nil {
		return SyncedBlock{}, err
	}
	return sb, nil
}

// SyncServiceConfig configures NewSyncService.
type SyncServiceConfig struct {
	Host   *Host
	Source SyncSource
	// MaxBlocks bounds the blocks of one reply (default 256), MaxBytes
	// their encoded size (default 64 MiB, at most MaxSyncBytes); a reply
	// holds at least one block when there is one.
	MaxBlocks int
	MaxBytes  int64
	// Timeout bounds reading a request and each write of the reply
	// (default 30 s).
	Timeout time.Duration
	// MaxConcurrent bounds the requests served at once (default 16); past
	// it a stream is reset at once.
	MaxConcurrent int
	Logger        *slog.Logger
}

// SyncService serves /auditnet/sync/1 from a SyncSource.
type SyncService struct {
	cfg   SyncServiceConfig
	slots chan struct{}

	mu       sync.Mutex
	started  bool
	stopping bool
	wg       sync.WaitGroup
}

// NewSyncService returns the service; Run registers it on the host.
func NewSyncService(cfg SyncServiceConfig) (*SyncService, error) {
	if cfg.Host == nil || cfg.Source == nil {
		return nil, errors.New("p2p: sync service needs a host and a source")
	}
	if cfg.MaxBlocks == 0 {
		cfg.MaxBlocks = DefaultSyncMaxBlocks
	}
	if cfg.MaxBytes == 0 {
		cfg.MaxBytes = DefaultSyncMaxBytes
	}
	if cfg.Timeout == 0 {
		cfg.Timeout = DefaultSyncTimeout
	}
	if cfg.MaxConcurrent == 0 {
		cfg.MaxConcurrent = DefaultSyncConcurrent
	}
	switch {
	case cfg.MaxBlocks < 0 || cfg.MaxBlocks > math.MaxUint32 || cfg.Timeout < 0 || cfg.MaxConcurrent < 0:
		return nil, errors.New("p2p: sync service limits out of range")
	case cfg.MaxBytes < 0 || cfg.MaxBytes > MaxSyncBytes:
		return nil, fmt.Errorf("p2p: sync service MaxBytes %d, at most %d (what a client accepts)", cfg.MaxBytes, MaxSyncBytes)
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.DiscardHandler)
	}
	return &SyncService{cfg: cfg, slots: make(chan struct{}, cfg.MaxConcurrent)}, nil
}

// Run serves until ctx ends, then removes the handler, resets the streams
// being served and returns nil once their handlers have returned. Run may
// be called once.
func (s *SyncService) Run(ctx context.Context) error {
	s.mu.Lock()
	if s.started {
		s.mu.Unlock()
		return errors.New("p2p: sync service already ran")
	}
	s.started = true
	s.mu.Unlock()
	s.cfg.Host.SetStreamHandler(SyncProtocol, func(st network.Stream) { s.handle(ctx, st) })
	<-ctx.Done()
	s.cfg.Host.RemoveStreamHandler(SyncProtocol)
	s.mu.Lock()
	s.stopping = true
	s.mu.Unlock()
	s.wg.Wait()
	return nil
}

func (s *SyncService) handle(ctx context.Context, st network.Stream) {
	s.mu.Lock()
	if s.stopping {
		s.mu.Unlock()
		st.Reset()
		return
	}
	s.wg.Add(1)
	s.mu.Unlock()
	defer s.wg.Done()
	from := st.Conn().RemotePeer()
	select {
	case s.slots <- struct{}{}:
		defer func() { <-s.slots }()
	default:
		s.cfg.Logger.Debug("sync request refused: too many running", "peer", from)
		st.Reset()
		return
	}
	stop := context.AfterFunc(ctx, func() { st.Reset() })
	defer stop()
	if err := s.serve(st, from); err != nil {
		if errors.Is(err, ErrProtocol) {
			s.cfg.Logger.Warn("bad sync request", "peer", from, "err", err)
		} else {
			s.cfg.Logger.Debug("sync stream ended with an error", "peer", from, "err", err)
		}
		st.Reset()
		return
	}
	st.Close()
}

func (s *SyncService) serve(st network.Stream, from peer.ID) error {
	st.SetReadDeadline(time.Now().Add(s.cfg.Timeout))
	raw, err := newFrameReader(st, nil, maxSyncRequestSize, 0, false).next()
	if err != nil {
		return fmt.Errorf("read sync request: %w", err)
	}
	req, err := decodeSyncRequest(raw)
	if err != nil {
		return protocolError("sync request: %v", err)
	}
	top := s.cfg.Source.Height()
	last := top
	if n := uint64(min(int(req.Max), s.cfg.MaxBlocks)); req.From <= top && top-req.From >= n {
		last = req.From + n - 1
	}
	bw := bufio.NewWriterSize(&deadlineWriter{st: st, idle: s.cfg.Timeout, now: time.Now}, 256<<10)
	var sent int64
	blocks := 0
	for h := req.From; h <= last; h++ {
		blk, cert, err := s.cfg.Source.RawCommitted(h)
		sb := SyncedBlock{Height: h, Block: blk, Cert: cert}
		if err == nil {
			err = checkSyncedBlock(&sb)
		}
		if err != nil {
			// The blocks before it are a valid answer: send them, and let
			// the client ask another peer for the rest.
			s.cfg.Logger.Error("a committed block this node serves is unreadable", "height", h, "err", err)
			break
		}
		b, err := dagcbor.Marshal(sb)
		if err != nil {
			return err
		}
		if blocks > 0 && sent+int64(len(b)) > s.cfg.MaxBytes {
			break
		}
		if err := putFrame(bw, b); err != nil {
			return err
		}
		sent += int64(len(b))
		blocks++
	}
	if err := bw.Flush(); err != nil {
		return err
	}
	s.cfg.Logger.Debug("served sync", "peer", from, "height", req.From, "blocks", blocks, "bytes", sent)
	return st.CloseWrite()
}

// syncDialTimeout bounds the dial of a sync stream. A node syncs from one
// peer at a time, and the peer it picked (the leader whose heartbeat
// showed a new height, say) may just have died: a dial to it fails at once
// over TCP but waits out QUIC's 5 s handshake timeout, and a validator a
// block behind cannot vote meanwhile. The core asks again, from a live
// peer, once the dial fails.
const syncDialTimeout = 2 * time.Second

// FetchCommitted asks from for up to max committed blocks from height
// start and returns those it sends, which may be fewer (none when start is
// past its height). It checks that heights are consecutive from start and
// that each block and certificate, and the reply (MaxSyncBytes), are
// within bounds; the caller decodes the blocks and verifies their
// certificates. On an error after some blocks arrived, those blocks are
// returned with it. Without a deadline in ctx, each read is bounded by
// DefaultSyncTimeout.
func FetchCommitted(ctx context.Context, h host.Host, from peer.ID, start uint64, max int) ([]SyncedBlock, error) {
	req := syncRequest{From: start, Max: uint32(min(max, math.MaxUint32))}
	if max <= 0 {
		req.Max = 0
	}
	if err := req.check(); err != nil {
		return nil, fmt.Errorf("fetch committed blocks: %w", err)
	}
	raw, err := dagcbor.Marshal(req)
	if err != nil {
		return nil, err
	}
	st, err := h.NewStream(network.WithDialPeerTimeout(ctx, syncDialTimeout), from, SyncProtocol)
	if err != nil {
		return nil, fmt.Errorf("open sync stream to %s: %w", from, err)
	}
	stop := context.AfterFunc(ctx, func() { st.Reset() })
	defer stop()
	blocks, err := readSynced(st, raw, req)
	if err != nil {
		st.Reset()
		if ctx.Err() != nil {
			err = fmt.Errorf("%w (%w)", ctx.Err(), err)
		}
		return blocks, fmt.Errorf("fetch committed blocks from %s at %d: %w", from, start+uint64(len(blocks)), err)
	}
	st.Close()
	return blocks, nil
}

func readSynced(st network.Stream, raw []byte, req syncRequest) ([]SyncedBlock, error) {
	st.SetWriteDeadline(time.Now().Add(DefaultSyncTimeout))
	if err := writeOneFrame(st, raw); err != nil {
		return nil, err
	}
	fr := newFrameReader(st, st, maxSyncFrameSize, DefaultSyncTimeout, false)
	var (
		out   []SyncedBlock
		total int64
	)
	for {
		b, err := fr.next()
		if errors.Is(err, io.EOF) {
			return out, nil
		}
		if err != nil {
			return out, err
		}
		if len(out) == int(req.Max) {
			return out, protocolError("more than the %d blocks asked for", req.Max)
		}
		if total += int64(len(b)); total > MaxSyncBytes {
			return out, protocolError("reply over %d bytes", MaxSyncBytes)
		}
		sb, err := decodeSyncedBlock(b)
		if err != nil {
			return out, protocolError("sync frame: %v", err)
		}
		if want := req.From + uint64(len(out)); sb.Height != want {
			return out, protocolError("block at height %d where %d belongs", sb.Height, want)
		}
		out = append(out, sb)
	}
}
