package p2p

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"time"
	"unicode/utf8"

	"github.com/libp2p/go-libp2p/core/host"
	"github.com/libp2p/go-libp2p/core/network"
	"github.com/libp2p/go-libp2p/core/peer"

	"auditnet/chain"
	"auditnet/internal/dagcbor"
)

// TxProtocol submits transactions to a validator: the request is one
// frame holding a batch of encoded transactions, the reply one frame
// holding a result per transaction, in order. Both are canonical
// DAG-CBOR.
const TxProtocol = "/auditnet/tx/1"

// Bounds of a submission.
const (
	// MaxTxBatch bounds the transactions of one request.
	MaxTxBatch = 1024
	// MaxTxBatchBytes bounds their total size.
	MaxTxBatchBytes = 4 << 20
	// MaxTxReason bounds a result's reason, in bytes; a longer one is cut.
	MaxTxReason = 256
)

// Encoded sizes bounding a request and a reply on the wire: CBOR adds at
// most 5 bytes per transaction or result header and a few for the maps.
const (
	maxTxRequestSize  = MaxTxBatchBytes + 5*MaxTxBatch + 64
	maxTxResponseSize = (MaxTxReason+32)*MaxTxBatch + 64
)

// TxCode is a validator's answer for one transaction.
type TxCode uint8

// Transaction result codes.
const (
	// TxOK: the transaction is in the validator's mempool.
	TxOK TxCode = iota
	// TxBusy: the mempool is full; submit again later.
	TxBusy
	// TxInvalid: the transaction can never be accepted (see Reason).
	TxInvalid
	// TxNotValidator: the peer is not a validator; submit to another.
	TxNotValidator
)

func (c TxCode) String() string {
	switch c {
	case TxOK:
		return "ok"
	case TxBusy:
		return "busy"
	case TxInvalid:
		return "invalid"
	case TxNotValidator:
		return "not a validator"
	}
	return fmt.Sprintf("code %d", uint8(c))
}

// Errors TxResult.Err returns for codes callers act on.
var (
	ErrBusy         = errors.New("busy: mempool full, try again later")
	ErrNotValidator = errors.New("not a validator: submit to another")
	ErrTxInvalid    = errors.New("invalid transaction")
)

// TxResult is the outcome of one submitted transaction.
type TxResult struct {
	Code   TxCode `cbor:"code"`
	Reason string `cbor:"reason,omitempty"`
}

// Err returns nil for TxOK, else an error matching ErrBusy,
// ErrNotValidator or ErrTxInvalid, with the reason.
func (r TxResult) Err() error {
	var err error
	switch r.Code {
	case TxOK:
		return nil
	case TxBusy:
		err = ErrBusy
	case TxNotValidator:
		err = ErrNotValidator
	default:
		err = ErrTxInvalid
	}
	if r.Reason == "" {
		return err
	}
	return fmt.Errorf("%w: %s", err, r.Reason)
}

type txRequest struct {
	Txs [][]byte `cbor:"txs"`
}

type txResponse struct {
	Results []TxResult `cbor:"results"`
}

// checkTxBatch checks a batch's count and sizes.
func checkTxBatch(txs [][]byte) error {
	if len(txs) == 0 || len(txs) > MaxTxBatch {
		return fmt.Errorf("%d transactions in a batch, want 1 to %d", len(txs), MaxTxBatch)
	}
	total := 0
	for i, tx := range txs {
		if len(tx) == 0 || len(tx) > chain.MaxTxSize {
			return fmt.Errorf("transaction %d of %d bytes, want 1 to %d", i, len(tx), chain.MaxTxSize)
		}
		total += len(tx)
	}
	if total > MaxTxBatchBytes {
		return fmt.Errorf("batch of %d bytes, at most %d", total, MaxTxBatchBytes)
	}
	return nil
}

func encodeTxRequest(txs [][]byte) ([]byte, error) {
	if err := checkTxBatch(txs); err != nil {
		return nil, err
	}
	return dagcbor.Marshal(txRequest{Txs: txs})
}

// decodeTxRequest decodes a request strictly: canonical DAG-CBOR, within
// every bound.
func decodeTxRequest(b []byte) ([][]byte, error) {
	if len(b) > maxTxRequestSize {
		return nil, fmt.Errorf("tx request of %d bytes", len(b))
	}
	var req txRequest
	if err := dagcbor.Unmarshal(b, &req); err != nil {
		return nil, err
	}
	if err := checkTxBatch(req.Txs); err != nil {
		return nil, err
	}
	return req.Txs, nil
}

func checkTxResults(rs []TxResult) error {
	if len(rs) == 0 || len(rs) > MaxTxBatch {
		return fmt.Errorf("%d results, want 1 to %d", len(rs), MaxTxBatch)
	}
	for i, r := range rs {
		if r.Code > TxNotValidator {
			return fmt.Errorf("result %d: unknown code %d", i, r.Code)
		}
		if len(r.Reason) > MaxTxReason {
			return fmt.Errorf("result %d: reason of %d bytes", i, len(r.Reason))
		}
	}
	return nil
}

func encodeTxResponse(rs []TxResult) ([]byte, error) {
	if err := checkTxResults(rs); err != nil {
		return nil, err
	}
	return dagcbor.Marshal(txResponse{Results: rs})
}

// decodeTxResponse decodes a reply strictly.
func decodeTxResponse(b []byte) ([]TxResult, error) {
	if len(b) > maxTxResponseSize {
		return nil, fmt.Errorf("tx response of %d bytes", len(b))
	}
	var resp txResponse
	if err := dagcbor.Unmarshal(b, &resp); err != nil {
		return nil, err
	}
	if err := checkTxResults(resp.Results); err != nil {
		return nil, err
	}
	return resp.Results, nil
}

// truncateReason cuts a reason to MaxTxReason bytes on a rune boundary.
func truncateReason(s string) string {
	if len(s) <= MaxTxReason {
		return s
	}
	s = s[:MaxTxReason]
	for len(s) > 0 && !utf8.ValidString(s) {
		s = s[:len(s)-1]
	}
	return s
}

// Defaults of TxServiceConfig and of SubmitTxs.
const (
	DefaultTxTimeout       = 30 * time.Second
	DefaultTxMaxConcurrent = 32
)

// TxServiceConfig configures NewTxService.
type TxServiceConfig struct {
	Host *Host
	// Handle takes a batch from a member and returns one result per
	// transaction, in order. ctx ends when the stream or Run does.
	Handle func(ctx context.Context, from peer.ID, txs [][]byte) []TxResult
	// Timeout bounds reading a request, handling it and writing the reply
	// (default 30 s).
	Timeout time.Duration
	// MaxConcurrent bounds the submissions handled at once (default 32);
	// past it every transaction of a request gets TxBusy.
	MaxConcurrent int
	Logger        *slog.Logger
}

// TxService serves /auditnet/tx/1.
type TxService struct {
	cfg   TxServiceConfig
	slots chan struct{}

	mu       sync.Mutex
	started  bool
	stopping bool
	wg       sync.WaitGroup
}

// NewTxService returns the service; Run registers it on the host.
func NewTxService(cfg TxServiceConfig) (*TxService, error) {
	if cfg.Host == nil || cfg.Handle == nil {
		return nil, errors.New("p2p: tx service needs a host and a handler")
	}
	if cfg.Timeout == 0 {
		cfg.Timeout = DefaultTxTimeout
	}
	if cfg.MaxConcurrent == 0 {
		cfg.MaxConcurrent = DefaultTxMaxConcurrent
	}
	if cfg.Timeout < 0 || cfg.MaxConcurrent < 0 {
		return nil, errors.New("p2p: tx service limits must not be negative")
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.DiscardHandler)
	}
	return &TxService{cfg: cfg, slots: make(chan struct{}, cfg.MaxConcurrent)}, nil
}

// Run serves until ctx ends, then removes the handler, resets the streams
// being served and returns nil once their handlers have returned. Run may
// be called once.
func (s *TxService) Run(ctx context.Context) error {
	s.mu.Lock()
	if s.started {
		s.mu.Unlock()
		return errors.New("p2p: tx service already ran")
	}
	s.started = true
	s.mu.Unlock()
	s.cfg.Host.SetStreamHandler(TxProtocol, func(st network.Stream) { s.handle(ctx, st) })
	<-ctx.Done()
	s.cfg.Host.RemoveStreamHandler(TxProtocol)
	s.mu.Lock()
	s.stopping = true
	s.mu.Unlock()
	s.wg.Wait()
	return nil
}

func (s *TxService) handle(ctx context.Context, st network.Stream) {
	s.mu.Lock()
	if s.stopping {
		s.mu.Unlock()
		st.Reset()
		return
	}
	s.wg.Add(1)
	s.mu.Unlock()
	defer s.wg.Done()
	ctx, cancel := context.WithTimeout(ctx, s.cfg.Timeout)
	defer cancel()
	stop := context.AfterFunc(ctx, func() { st.Reset() })
	defer stop()
	from := st.Conn().RemotePeer()
	if err := s.serve(ctx, st, from); err != nil {
		if errors.Is(err, ErrProtocol) {
			s.cfg.Logger.Warn("bad tx submission", "peer", from, "err", err)
		} else {
			s.cfg.Logger.Debug("tx stream ended with an error", "peer", from, "err", err)
		}
		st.Reset()
		return
	}
	st.Close()
}

func (s *TxService) serve(ctx context.Context, st network.Stream, from peer.ID) error {
	deadline := time.Now().Add(s.cfg.Timeout)
	st.SetDeadline(deadline)
	raw, err := newFrameReader(st, nil, maxTxRequestSize, 0, false).next()
	if err != nil {
		return fmt.Errorf("read tx request: %w", err)
	}
	txs, err := decodeTxRequest(raw)
	if err != nil {
		return protocolError("tx request: %v", err)
	}
	var results []TxResult
	select {
	case s.slots <- struct{}{}:
		results = s.cfg.Handle(ctx, from, txs)
		<-s.slots
	default:
		results = make([]TxResult, len(txs))
		for i := range results {
			results[i] = TxResult{Code: TxBusy, Reason: "too many submissions at once"}
		}
	}
	if len(results) != len(txs) {
		s.cfg.Logger.Error("tx handler returned the wrong number of results", "txs", len(txs), "results", len(results))
		return fmt.Errorf("tx handler returned %d results for %d transactions", len(results), len(txs))
	}
	for i := range results {
		results[i].Reason = truncateReason(results[i].Reason)
	}
	b, err := encodeTxResponse(results)
	if err != nil {
		return fmt.Errorf("encode tx response: %w", err)
	}
	s.cfg.Logger.Debug("tx batch handled", "peer", from, "txs", len(txs))
	return writeOneFrame(st, b)
}

// writeOneFrame writes b as a frame and closes the writing side.
func writeOneFrame(st network.Stream, b []byte) error {
	bw := bufio.NewWriterSize(st, min(len(b)+16, 64<<10))
	if err := putFrame(bw, b); err != nil {
		return err
	}
	if err := bw.Flush(); err != nil {
		return err
	}
	return st.CloseWrite()
}

// SubmitTxs sends a batch of encoded transactions to a validator and
// returns its result for each, in order; TxResult.Err turns one into an
// error (ErrBusy: try again later). The batch must hold 1 to MaxTxBatch
// transactions of at most chain.MaxTxSize bytes, MaxTxBatchBytes in all.
// Without a deadline in ctx, the exchange is bounded by DefaultTxTimeout.
func SubmitTxs(ctx context.Context, h host.Host, to peer.ID, txs [][]byte) ([]TxResult, error) {
	req, err := encodeTxRequest(txs)
	if err != nil {
		return nil, fmt.Errorf("submit txs: %w", err)
	}
	if _, ok := ctx.Deadline(); !ok {
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(ctx, DefaultTxTimeout)
		defer cancel()
	}
	deadline, _ := ctx.Deadline()
	st, err := h.NewStream(ctx, to, TxProtocol)
	if err != nil {
		return nil, fmt.Errorf("open tx stream to %s: %w", to, err)
	}
	stop := context.AfterFunc(ctx, func() { st.Reset() })
	defer stop()
	results, err := exchangeTxs(st, req, deadline)
	if err != nil {
		st.Reset()
		if ctx.Err() != nil {
			err = fmt.Errorf("%w (%w)", ctx.Err(), err)
		}
		return nil, fmt.Errorf("submit txs to %s: %w", to, err)
	}
	st.Close()
	if len(results) != len(txs) {
		return nil, protocolError("%s returned %d results for %d transactions", to, len(results), len(txs))
	}
	return results, nil
}

func exchangeTxs(st network.Stream, req []byte, deadline time.Time) ([]TxResult, error) {
	st.SetDeadline(deadline)
	if err := writeOneFrame(st, req); err != nil {
		return nil, err
	}
	raw, err := newFrameReader(st, nil, maxTxResponseSize, 0, false).next()
	if err != nil {
		return nil, err
	}
	results, err := decodeTxResponse(raw)
	if err != nil {
		return nil, protocolError("tx response: %v", err)
	}
	return results, nil
}
