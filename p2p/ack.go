package p2p

import (
	"bufio"
	"context"
	"fmt"
	"io"
	"log/slog"
	"sync"
	"time"

	"github.com/libp2p/go-libp2p/core/host"
	"github.com/libp2p/go-libp2p/core/network"
	"github.com/libp2p/go-libp2p/core/peer"

	"auditnet/chain"
	"auditnet/internal/dagcbor"
)

// AckProtocol carries a requester's signed acknowledgement of a fetch to
// the provider that served it: one frame each way, the acknowledgement
// and the provider's answer. The bytes are the audit layer's (a chain
// Ack); this layer only bounds and delivers them.
const AckProtocol = "/auditnet/ack/1"

// MaxAckSize bounds an acknowledgement: the chain's bound on an encoded
// Ack, so that a frame this layer delivers is one the chain can take.
const MaxAckSize = chain.MaxAckSize

// ackTimeout bounds each read and write of an acknowledgement stream.
const ackTimeout = 10 * time.Second

// AckHandler takes an acknowledgement from a peer; its error is the
// refusal the peer is told.
type AckHandler func(ctx context.Context, from peer.ID, ack []byte) error

// AckService answers /auditnet/ack/1.
type AckService struct {
	host   host.Host
	handle AckHandler
	log    *slog.Logger
	ctx    context.Context
	cancel context.CancelFunc
	// mu guards closed and the Add of wg, so that Close's Wait never runs
	// beside an Add.
	mu     sync.Mutex
	closed bool
	wg     sync.WaitGroup
}

// NewAckService registers the handler for AckProtocol on h.
func NewAckService(h host.Host, handle AckHandler, logger *slog.Logger) *AckService {
	if logger == nil {
		logger = slog.New(slog.DiscardHandler)
	}
	ctx, cancel := context.WithCancel(context.Background())
	s := &AckService{host: h, handle: handle, log: logger, ctx: ctx, cancel: cancel}
	h.SetStreamHandler(AckProtocol, s.serve)
	return s
}

// Close stops taking acknowledgements and waits for those being handled.
func (s *AckService) Close() error {
	s.host.RemoveStreamHandler(AckProtocol)
	s.cancel()
	s.mu.Lock()
	s.closed = true
	s.mu.Unlock()
	s.wg.Wait()
	return nil
}

func (s *AckService) serve(st network.Stream) {
	s.mu.Lock()
	if s.closed {
		s.mu.Unlock()
		st.Reset()
		return
	}
	s.wg.Add(1)
	s.mu.Unlock()
	defer s.wg.Done()
	st.SetDeadline(time.Now().Add(ackTimeout))
	raw, err := readFrame(bufio.NewReader(io.LimitReader(st, MaxAckSize+16)), MaxAckSize)
	if err != nil {
		s.log.Debug("bad acknowledgement stream", "peer", st.Conn().RemotePeer(), "err", err)
		st.Reset()
		return
	}
	code, msg := replyOK, ""
	if err := s.handle(s.ctx, st.Conn().RemotePeer(), raw); err != nil {
		code, msg = replyRefused, err.Error()
	}
	b, err := encodeReply(code, msg)
	if err == nil {
		err = writeFrame(st, b)
	}
	if err != nil {
		st.Reset()
		return
	}
	st.Close()
}

// SendAck delivers an acknowledgement to p and returns its answer: nil,
// or the refusal as a *FetchRefusedError.
func SendAck(ctx context.Context, h host.Host, p peer.ID, ack []byte) error {
	if len(ack) > MaxAckSize {
		return fmt.Errorf("p2p: acknowledgement of %d bytes, at most %d", len(ack), MaxAckSize)
	}
	st, err := h.NewStream(ctx, p, AckProtocol)
	if err != nil {
		return fmt.Errorf("p2p: send acknowledgement to %s: %w", p, err)
	}
	defer st.Close()
	stop := context.AfterFunc(ctx, func() { st.Reset() })
	defer stop()
	st.SetDeadline(time.Now().Add(ackTimeout))
	if err := writeFrame(st, ack); err != nil {
		st.Reset()
		return fmt.Errorf("p2p: send acknowledgement to %s: %w", p, err)
	}
	raw, err := readFrame(bufio.NewReader(io.LimitReader(st, maxReplySize+16)), maxReplySize)
	if err != nil {
		st.Reset()
		return fmt.Errorf("p2p: acknowledgement to %s: no answer: %w", p, err)
	}
	var rep fetchReply
	if err := dagcbor.Unmarshal(raw, &rep); err != nil {
		return fmt.Errorf("p2p: acknowledgement to %s: bad answer: %w", p, err)
	}
	if rep.Code != replyOK {
		return &FetchRefusedError{Code: rep.Code, Message: rep.Message}
	}
	return nil
}
