package p2p

import (
	"bufio"
	"context"
	"crypto/rand"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"sync"
	"time"

	"github.com/ipfs/go-cid"
	"github.com/libp2p/go-libp2p/core/crypto"
	"github.com/libp2p/go-libp2p/core/host"
	"github.com/libp2p/go-libp2p/core/network"
	"github.com/libp2p/go-libp2p/core/peer"

	"auditnet/internal/dagcbor"
	"auditnet/storage"
	"auditnet/storage/unixfs"
)

// FetcherConfig configures NewFetcher.
type FetcherConfig struct {
	Host     host.Host
	Identity crypto.PrivKey
	Network  string
	// Store receives what Get fetches.
	Store *storage.Store
	// IdleTimeout bounds the wait for each block (default 30 s).
	IdleTimeout time.Duration
	Now         func() time.Time
	Logger      *slog.Logger
}

// Fetcher fetches datasets over /auditnet/fetch/1 and checks every block
// against the traversal from the requested root: a provider can neither
// plant a block, nor send more than the DAG declares, nor stall a fetch
// for longer than the idle timeout. A provider that misbehaves or fails is
// dropped for the fetch and the others carry on from where it stopped.
type Fetcher struct {
	cfg FetcherConfig
}

// NewFetcher returns a fetcher.
func NewFetcher(cfg FetcherConfig) (*Fetcher, error) {
	if cfg.Host == nil || cfg.Identity == nil || cfg.Network == "" {
		return nil, errors.New("p2p: fetcher needs a host, an identity and a network id")
	}
	if cfg.IdleTimeout == 0 {
		cfg.IdleTimeout = 30 * time.Second
	}
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.DiscardHandler)
	}
	return &Fetcher{cfg: cfg}, nil
}

// FetchOptions are a fetch's parameters.
type FetchOptions struct {
	// Providers to fetch from, in order of preference (required).
	Providers []peer.ID
	Purpose   string
	// Auth, if defined, is sent as the request's authorisation reference.
	Auth cid.Cid
	// MaxBytes, if not 0, bounds what the requested DAG may declare.
	MaxBytes uint64
}

// FetchStats reports a fetch.
type FetchStats struct {
	// Target is the CID of the node the path named (the root for none).
	Target         cid.Cid
	Bytes, Blocks  int64
	Requests       int
	FromProvider   map[peer.ID]int64
	DroppedReasons map[peer.ID]string
}

func (st *FetchStats) add(p peer.ID, n int64) {
	if st.FromProvider == nil {
		st.FromProvider = make(map[peer.ID]int64)
	}
	st.FromProvider[p] += n
}

func (st *FetchStats) drop(p peer.ID, err error) {
	if st.DroppedReasons == nil {
		st.DroppedReasons = make(map[peer.ID]string)
	}
	st.DroppedReasons[p] = err.Error()
}

// ErrNoProvider is returned when every provider failed or was dropped
// before the fetch completed.
var ErrNoProvider = errors.New("p2p: no provider could complete the fetch")

// session is the requester's end of one fetch stream.
type session struct {
	f       *Fetcher
	p       peer.ID
	st      network.Stream
	br      *bufio.Reader
	stop    func() bool
	onBlock func(c cid.Cid, data []byte) error
	budget  uint64 // bytes the targets declare; 0 until known
	pending uint64 // declared size of targets with a known size
	open    bool   // budget still to be set from the first block
	// root is the request's root; a root block declaring more than
	// maxBytes (if not 0) stops the fetch.
	root     cid.Cid
	maxBytes uint64
	got      uint64
	blocks   int64
	// The prefetching goroutine: it sends on sections, stops when quit
	// closes, and closes done when it has returned.
	sections chan section
	quit     chan struct{}
	done     chan struct{}
}

// open sends a request to p and reads the provider's reply and the CAR
// header. targets are what the scope's link paths lead to (none for a path
// scope); their declared sizes are the stream's byte budget, completed by
// the first block's when the first target's size is unknown (the root).
func (f *Fetcher) open(ctx context.Context, p peer.ID, root cid.Cid, scope Scope, opts FetchOptions, targets []target) (*session, error) {
	nonce := make([]byte, nonceSize)
	if _, err := rand.Read(nonce); err != nil {
		return nil, err
	}
	req := &FetchRequest{
		Network:   f.cfg.Network,
		Root:      dagcbor.Link{Cid: root},
		Scope:     scope,
		Requester: []byte(f.cfg.Host.ID()),
		Provider:  []byte(p),
		Nonce:     nonce,
		Time:      f.cfg.Now().UnixMilli(),
		Purpose:   opts.Purpose,
	}
	if opts.Auth.Defined() {
		req.Auth = &dagcbor.Link{Cid: opts.Auth}
	}
	raw, err := EncodeSignedRequest(req, f.cfg.Identity)
	if err != nil {
		return nil, err
	}
	st, err := f.cfg.Host.NewStream(ctx, p, FetchProtocol)
	if err != nil {
		return nil, fmt.Errorf("open fetch stream to %s: %w", p, err)
	}
	budget, known := budgetOf(targets)
	s := &session{
		f: f, p: p, st: st, stop: context.AfterFunc(ctx, func() { st.Reset() }),
		root: root, maxBytes: opts.MaxBytes, budget: budget, open: budget == 0,
	}
	if s.open {
		s.pending = known
	}
	fail := func(err error) (*session, error) {
		s.stop()
		st.Reset()
		return nil, err
	}
	st.SetWriteDeadline(f.cfg.Now().Add(f.cfg.IdleTimeout))
	if err := writeFrame(st, raw); err != nil {
		return fail(fmt.Errorf("send fetch request to %s: %w", p, err))
	}
	// A provider that answers at once (a refusal) may close its side
	// before this one closes its writing half, and then the close fails
	// although the request arrived: the reply below says what happened.
	_ = st.CloseWrite()
	s.br = bufio.NewReaderSize(st, 1<<20)
	st.SetReadDeadline(f.cfg.Now().Add(f.cfg.IdleTimeout))
	b, err := readFrame(s.br, maxReplySize)
	if err != nil {
		return fail(fmt.Errorf("read reply from %s: %w", p, err))
	}
	var rep fetchReply
	if err := dagcbor.Unmarshal(b, &rep); err != nil {
		return fail(protocolError("reply from %s: %v", p, err))
	}
	if rep.Code != replyOK {
		return fail(&FetchRefusedError{Code: rep.Code, Message: rep.Message})
	}
	b, err = readFrame(s.br, maxReplySize)
	if err != nil {
		return fail(fmt.Errorf("read CAR header from %s: %w", p, err))
	}
	var hdr carHeader
	if err := dagcbor.Unmarshal(b, &hdr); err != nil || hdr.Version != 1 || len(hdr.Roots) != 1 || !hdr.Roots[0].Equals(root) {
		return fail(protocolError("CAR header from %s does not name %s", p, root))
	}
	s.sections, s.quit, s.done = make(chan section, readAhead), make(chan struct{}), make(chan struct{})
	go s.prefetch()
	return s, nil
}

// readAhead is how many verified blocks a session reads ahead of the
// traversal: reading and hashing run beside storing or writing out.
const readAhead = 8

type section struct {
	c    cid.Cid
	data []byte
	err  error // io.EOF: the stream ended cleanly
}

// prefetch reads sections off the stream and checks each against the CID
// it carries, ahead of the traversal, until the stream ends, fails, or
// quit closes. get then only has to check that each CID is the expected
// one.
func (s *session) prefetch() {
	defer close(s.done)
	defer close(s.sections)
	for {
		sec := s.readSection()
		select {
		case s.sections <- sec:
		case <-s.quit:
			return
		}
		if sec.err != nil {
			return
		}
	}
}

func (s *session) readSection() section {
	s.st.SetReadDeadline(s.f.cfg.Now().Add(s.f.cfg.IdleTimeout))
	n, err := binary.ReadUvarint(s.br)
	if errors.Is(err, io.EOF) {
		return section{err: io.EOF}
	}
	if err != nil {
		return section{err: fmt.Errorf("read from %s: %w", s.p, err)}
	}
	if n > maxBlockSize+128 {
		return section{err: protocolError("%s sent a section of %d bytes", s.p, n)}
	}
	buf := make([]byte, n)
	if _, err := io.ReadFull(s.br, buf); err != nil {
		return section{err: fmt.Errorf("read from %s: %w", s.p, err)}
	}
	k, c, err := cid.CidFromBytes(buf)
	if err != nil {
		return section{err: protocolError("%s sent a section with a bad CID: %v", s.p, err)}
	}
	data := buf[k:]
	if len(data) > maxBlockSize {
		return section{err: protocolError("%s sent block %s of %d bytes", s.p, c, len(data))}
	}
	if err := checkBlock(c, data); err != nil {
		return section{err: fmt.Errorf("from %s: %w", s.p, err)}
	}
	return section{c: c, data: data}
}

// get takes the next block off the stream and accepts it only if it is c
// (and, as prefetch checked, hashes to c), and the stream stays within the
// declared size.
func (s *session) get(ctx context.Context, c cid.Cid) ([]byte, error) {
	if b, ok := identityBlock(c); ok {
		return b, nil
	}
	var sec section
	select {
	case sec = <-s.sections:
	case <-ctx.Done():
		return nil, ctx.Err()
	}
	switch {
	case errors.Is(sec.err, io.EOF):
		return nil, fmt.Errorf("%s ended the stream before %s: %w", s.p, c, io.ErrUnexpectedEOF)
	case sec.err != nil:
		return nil, sec.err
	case !sec.c.Equals(c):
		return nil, protocolError("%s sent %s where %s comes next", s.p, sec.c, c)
	}
	data := sec.data
	if s.open {
		total, err := cumulativeSize(c, data)
		if err != nil {
			return nil, err
		}
		if s.maxBytes > 0 && c.Equals(s.root) && total > s.maxBytes {
			return nil, fmt.Errorf("%w: %s declares %d bytes, more than the %d allowed", unixfs.ErrTooBig, c, total, s.maxBytes)
		}
		s.budget, s.open = total+s.pending, false
	}
	s.got += uint64(len(data))
	if s.got > s.budget {
		return nil, protocolError("%s sent more than the %d bytes the DAG declares", s.p, s.budget)
	}
	s.blocks++
	if s.onBlock != nil {
		if err := s.onBlock(c, data); err != nil {
			return nil, err
		}
	}
	return data, nil
}

// close ends the session; clean says the whole scope was received, in
// which case the stream must end here too.
func (s *session) close(clean bool) error {
	defer s.stop()
	var err error
	if clean {
		if sec, ok := <-s.sections; ok && !errors.Is(sec.err, io.EOF) {
			err = protocolError("%s sent more than the scope asked for", s.p)
			clean = false
		}
	}
	if clean {
		err = s.st.Close()
	} else {
		s.st.Reset()
	}
	close(s.quit)
	<-s.done
	return err
}

// budgetOf is the declared size of targets, or 0 (to be taken from the
// first block) when the first one's size is unknown; known is the sum of
// the others.
func budgetOf(ts []target) (budget, known uint64) {
	for _, t := range ts {
		known += t.tsize
	}
	if len(ts) > 0 && ts[0].tsize == 0 {
		return 0, known
	}
	return known, known
}

// isDataError tells errors that come from the dataset itself (its blocks
// are verified, so every provider would send the same) from a provider's
// failure.
func isDataError(err error) bool {
	return errors.Is(err, unixfs.ErrNotUnixFS) || errors.Is(err, unixfs.ErrNoSuchEntry) ||
		errors.Is(err, errNotAFile) || errors.Is(err, ErrUnsupportedDAG) || errors.Is(err, unixfs.ErrTooBig)
}

var errNotAFile = errors.New("p2p: not a file")

// Cat streams the file that path names under root to w, verified block by
// block as it arrives; nothing is stored. If a provider fails mid-stream,
// the next one continues from the first block not yet written.
func (f *Fetcher) Cat(ctx context.Context, root cid.Cid, path string, w io.Writer, opts FetchOptions) (FetchStats, error) {
	var stats FetchStats
	var remaining []target
	started := false
	var size, written uint64
	visit := func(c cid.Cid, block []byte) error {
		n, err := unixfs.DecodeNode(c, block)
		if err != nil {
			return err
		}
		if n.Kind != unixfs.KindFile {
			return fmt.Errorf("%w: %s is a %s", errNotAFile, c, n.Kind)
		}
		data := n.FileData()
		if written+uint64(len(data)) > size {
			return fmt.Errorf("%w: %s holds more than its file size", unixfs.ErrNotUnixFS, root)
		}
		if _, err := w.Write(data); err != nil {
			return &writeError{err}
		}
		written += uint64(len(data))
		return nil
	}
	var lastErr error
	for _, p := range opts.Providers {
		scope := Scope{Path: path}
		var targets []target
		if started {
			scope, targets = Scope{Links: linkPaths(remaining)}, remaining
		}
		stats.Requests++
		s, err := f.open(ctx, p, root, scope, opts, targets)
		if err != nil {
			if ctx.Err() != nil {
				return stats, ctx.Err()
			}
			stats.drop(p, err)
			lastErr = err
			continue
		}
		tr := newTraversal(scope, s.get, visit)
		if !started {
			err = tr.resolvePath(ctx, root, path)
			if err == nil {
				n, derr := unixfs.DecodeNode(tr.stack[0].c, tr.stack[0].block)
				if derr != nil {
					err = derr
				} else if n.Kind != unixfs.KindFile {
					err = fmt.Errorf("%w: %s is a %s", errNotAFile, n.Cid, n.Kind)
				} else {
					size, started, stats.Target = n.Size, true, n.Cid
					if opts.MaxBytes > 0 && size > opts.MaxBytes {
						err = fmt.Errorf("%w: %s declares %d bytes, more than the %d allowed", unixfs.ErrTooBig, n.Cid, size, opts.MaxBytes)
					}
				}
			}
		} else {
			tr.push(remaining)
		}
		if err == nil {
			err = tr.run(ctx)
		}
		if started {
			remaining = tr.remaining()
		}
		stats.Bytes += int64(s.got)
		stats.Blocks += s.blocks
		stats.add(p, int64(s.got))
		if err == nil {
			err = s.close(true)
			if err == nil {
				if written != size {
					return stats, fmt.Errorf("%w: %s holds %d bytes, declares %d", unixfs.ErrNotUnixFS, root, written, size)
				}
				return stats, nil
			}
		} else {
			s.close(false)
		}
		var we *writeError
		switch {
		case ctx.Err() != nil:
			return stats, ctx.Err()
		case errors.As(err, &we):
			return stats, we.err
		case isDataError(err):
			return stats, err
		}
		f.cfg.Logger.Warn("dropping provider for this fetch", "peer", p, "cid", root, "err", err)
		stats.drop(p, err)
		lastErr = err
		if started && len(remaining) == 0 {
			// It went wrong after the last block: everything arrived and
			// was verified. (Asking another provider for no link paths
			// would ask it for the whole DAG.)
			if written != size {
				return stats, fmt.Errorf("%w: %s holds %d bytes, declares %d", unixfs.ErrNotUnixFS, root, written, size)
			}
			return stats, nil
		}
	}
	if lastErr == nil {
		lastErr = errors.New("no providers given")
	}
	return stats, fmt.Errorf("%w %s: %w", ErrNoProvider, root, lastErr)
}

type writeError struct{ err error }

func (e *writeError) Error() string { return "write output: " + e.err.Error() }

func linkPaths(ts []target) [][]int {
	out := make([][]int, len(ts))
	for i, t := range ts {
		out[i] = t.path
	}
	return out
}

// syncedWriter lets the workers of one fetch share a store writer, and
// makes what they wrote durable every flushEvery bytes so a fetch that
// stops resumes from there.
type syncedWriter struct {
	mu         sync.Mutex
	w          *storage.Writer
	sinceFlush int
}

const flushEvery = 64 << 20

func (sw *syncedWriter) put(c cid.Cid, data []byte) error {
	sw.mu.Lock()
	defer sw.mu.Unlock()
	if err := sw.w.Put(c, data); err != nil {
		return &writeError{err}
	}
	sw.sinceFlush += len(data)
	if sw.sinceFlush >= flushEvery {
		sw.sinceFlush = 0
		if err := sw.w.Flush(); err != nil {
			return &writeError{err}
		}
	}
	return nil
}

func (sw *syncedWriter) flush() error {
	sw.mu.Lock()
	defer sw.mu.Unlock()
	sw.sinceFlush = 0
	if err := sw.w.Flush(); err != nil {
		return &writeError{err}
	}
	return nil
}
