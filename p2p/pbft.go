package p2p

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"sync"
	"sync/atomic"
	"time"

	"github.com/libp2p/go-libp2p/core/network"
	"github.com/libp2p/go-libp2p/core/peer"

	"auditnet/chain/pbft"
)

// ConsensusProtocol carries consensus messages between validators, and
// validators' pushes to followers: each node keeps one long-lived
// outbound stream per peer it sends to, and reads the streams its peers
// open to it. The payload of a frame is opaque here; the node encodes
// and decodes it.
const ConsensusProtocol = "/auditnet/pbft/1"

// Defaults of ConsensusConfig.
const (
	DefaultQueueFrames  = 8192
	DefaultQueueBytes   = 64 << 20
	DefaultFrameTimeout = 30 * time.Second
	DefaultWriterIdle   = time.Minute
	DefaultMaxFrameAge  = 5 * time.Second
)

// Redial backoff of a writer whose stream broke or could not be opened:
// the first retry is at once, then minRedial doubling up to maxRedial.
const (
	minRedial   = 50 * time.Millisecond
	maxRedial   = 5 * time.Second
	dialTimeout = 10 * time.Second
)

// ConsensusConfig configures NewConsensus.
type ConsensusConfig struct {
	Host *Host
	// Deliver is called from a stream's reader goroutine with each frame
	// from a peer, in the order that peer sent them on the stream; frame is
	// Deliver's to keep. Streams are read concurrently, so calls for
	// different streams (peers, or one peer's old and new stream) overlap. A non-nil error resets that stream (a bad peer).
	// Deliver may block briefly (a bounded inbox): the stream is not read
	// meanwhile, so back-pressure reaches the sender, whose queue fills and
	// drops. It must return when the node stops: Run waits for it.
	Deliver func(from peer.ID, frame []byte) error
	// MaxFrame bounds a frame (default pbft.MaxMessageSize). A longer
	// inbound frame resets its stream and is not delivered; Send refuses a
	// longer one.
	MaxFrame int
	// QueueFrames and QueueBytes bound what waits to be written to one peer,
	// counting the batch being written (defaults 8192 frames and 64 MiB).
	QueueFrames int
	QueueBytes  int64
	// FrameTimeout bounds every read within a frame and every write
	// (default 30 s): a peer that stalls that long has its stream reset.
	// The wait for the first byte of the next frame has no deadline; the
	// stream is reset when Run ends, and yamux's keep-alive ends it if the
	// connection dies.
	FrameTimeout time.Duration
	// WriterIdle is how long a writer stays with nothing to write, or
	// failing to reach its peer, before it retires (default 1 minute): it
	// closes its stream, drops what is queued (counted as dropped) and
	// exits; the next Send starts a new one.
	WriterIdle time.Duration
	// MaxFrameAge is how long a frame may wait in its peer's queue (default
	// 5 s). An older one is dropped, counted as dropped, when the writer
	// takes the queue and when Send finds the queue full. A peer that could
	// not be reached for a while (a validator killed and restarted) then
	// gets what is current when it is back, not first a backlog of the
	// votes and view changes the others have long moved past, which it
	// would read, and act on, before the NEW-VIEW that tells it where they
	// are; and a full queue makes room by dropping its stalest frames, not
	// the newest.
	MaxFrameAge time.Duration
	Logger      *slog.Logger
}

// Direction says which frames Cut drops: those to a peer (Outbound),
// those from it (Inbound), both, or none (Heal).
type Direction uint8

// Directions of Cut.
const (
	Heal     Direction = 0
	Outbound Direction = 1
	Inbound  Direction = 2
	Both               = Outbound | Inbound
)

// ConsensusStats counts frames and their payload bytes since
// NewConsensus.
type ConsensusStats struct {
	// SentFrames and SentBytes were written and flushed to a stream.
	SentFrames, SentBytes uint64
	// ReceivedFrames and ReceivedBytes were handed to Deliver.
	ReceivedFrames, ReceivedBytes uint64
	// DroppedFrames were refused by Send (queue full, empty or too large),
	// cut, lost with a stream that broke twice under them, expired in the
	// queue (MaxFrameAge), or dropped by a writer that retired.
	DroppedFrames uint64
	// Redials counts streams opened again after one broke or a dial failed.
	Redials uint64
	// Queued is the number of frames waiting for each peer, counting the
	// batch being written; peers with none are left out.
	Queued map[peer.ID]int
}

// Consensus is the /auditnet/pbft/1 transport. Send never blocks: it
// queues a frame for its peer's writer goroutine, which opens the stream
// lazily, writes queued frames in batches through one buffer and flushes
// when the queue is empty, and redials with backoff when the stream
// breaks. Frames from one peer's stream are delivered in order; across a
// broken stream a frame may be lost or, when a failed batch is sent again
// on the new stream, delivered twice. The consensus core tolerates both.
type Consensus struct {
	cfg ConsensusConfig
	log *slog.Logger

	mu       sync.Mutex
	queues   map[peer.ID]*sendQueue
	started  bool // Run was called
	stopping bool // Run is ending: no new goroutine
	wg       sync.WaitGroup
	spawn    chan struct{} // a queue without a writer has frames

	cuts atomic.Pointer[map[peer.ID]Direction]
	now  func() time.Time // the clock of MaxFrameAge; tests replace it

	sentFrames, sentBytes, recvFrames, recvBytes, dropped, redials atomic.Uint64
}

// sendQueue holds the frames for one peer; Consensus.mu guards it.
type sendQueue struct {
	frames [][]byte    // waiting to be taken by the writer
	at     []time.Time // when each of frames was queued
	spare  [][]byte    // the writer's last batch, emptied, for reuse
	n      int         // frames waiting or in the batch being written
	bytes  int64
	wake   chan struct{} // frames were queued
	up     chan struct{} // a connection to the peer opened
	writer bool          // a writer goroutine owns the queue
}

func newSendQueue() *sendQueue {
	return &sendQueue{wake: make(chan struct{}, 1), up: make(chan struct{}, 1)}
}

// NewConsensus returns the transport; Run registers it on the host.
func NewConsensus(cfg ConsensusConfig) (*Consensus, error) {
	if cfg.Host == nil || cfg.Deliver == nil {
		return nil, errors.New("p2p: consensus transport needs a host and a deliver function")
	}
	if cfg.MaxFrame == 0 {
		cfg.MaxFrame = pbft.MaxMessageSize
	}
	if cfg.QueueFrames == 0 {
		cfg.QueueFrames = DefaultQueueFrames
	}
	if cfg.QueueBytes == 0 {
		cfg.QueueBytes = DefaultQueueBytes
	}
	if cfg.FrameTimeout == 0 {
		cfg.FrameTimeout = DefaultFrameTimeout
	}
	if cfg.WriterIdle == 0 {
		cfg.WriterIdle = DefaultWriterIdle
	}
	if cfg.MaxFrameAge == 0 {
		cfg.MaxFrameAge = DefaultMaxFrameAge
	}
	if cfg.MaxFrame < 0 || cfg.QueueFrames < 0 || cfg.QueueBytes < 0 || cfg.FrameTimeout < 0 || cfg.WriterIdle < 0 || cfg.MaxFrameAge < 0 {
		return nil, errors.New("p2p: consensus transport limits must not be negative")
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.DiscardHandler)
	}
	return &Consensus{
		cfg:    cfg,
		log:    cfg.Logger,
		queues: make(map[peer.ID]*sendQueue),
		spawn:  make(chan struct{}, 1),
		now:    time.Now,
	}, nil
}

// Run serves the protocol until ctx ends: it sets the stream handler and
// runs a writer goroutine for each peer that has frames queued. It
// returns nil once the handler is removed and every writer and reader has
// exited. Run may be called once.
func (c *Consensus) Run(ctx context.Context) error {
	c.mu.Lock()
	if c.started {
		c.mu.Unlock()
		return errors.New("p2p: consensus transport already ran")
	}
	c.started = true
	c.mu.Unlock()
	c.cfg.Host.SetStreamHandler(ConsensusProtocol, func(st network.Stream) { c.handle(ctx, st) })
	// A writer waiting to redial a peer it could not reach tries again as
	// soon as the peer connects (a restarted validator dials its peers),
	// not at the end of its backoff.
	notify := &network.NotifyBundle{ConnectedF: func(_ network.Network, conn network.Conn) { c.connected(conn.RemotePeer()) }}
	c.cfg.Host.Network().Notify(notify)
	defer c.cfg.Host.Network().StopNotify(notify)
	c.log.Info("consensus transport running")
	for {
		c.startWriters(ctx)
		select {
		case <-c.spawn:
		case <-ctx.Done():
			c.cfg.Host.RemoveStreamHandler(ConsensusProtocol)
			c.mu.Lock()
			c.stopping = true
			c.mu.Unlock()
			c.wg.Wait()
			return nil
		}
	}
}

// startWriters starts a writer for each queue that has frames and none.
func (c *Consensus) startWriters(ctx context.Context) {
	c.mu.Lock()
	defer c.mu.Unlock()
	for p, q := range c.queues {
		if !q.writer && len(q.frames) > 0 {
			q.writer = true
			c.wg.Add(1)
			go c.write(ctx, p, q)
		}
	}
}

// Send queues frame for p and returns at once; frame must not be changed
// afterwards (the same slice may be sent to several peers). It returns
// false, counting a drop, when p's queue is full, when frame is empty or
// over MaxFrame, or when p is this node; the consensus core retransmits
// by its own timers. A frame cut by Cut is counted as dropped and Send
// returns true, as the network would.
func (c *Consensus) Send(to peer.ID, frame []byte) bool {
	if len(frame) == 0 || len(frame) > c.cfg.MaxFrame || to == c.cfg.Host.ID() {
		c.dropped.Add(1)
		return false
	}
	if c.isCut(to, Outbound) {
		c.dropped.Add(1)
		return true
	}
	now := c.now()
	c.mu.Lock()
	q := c.queues[to]
	if q == nil {
		q = newSendQueue()
		c.queues[to] = q
	}
	full := func() bool { return q.n >= c.cfg.QueueFrames || q.bytes+int64(len(frame)) > c.cfg.QueueBytes }
	if full() {
		c.expire(q, now)
	}
	if full() {
		c.mu.Unlock()
		c.dropped.Add(1)
		return false
	}
	q.frames = append(q.frames, frame)
	q.at = append(q.at, now)
	q.n++
	q.bytes += int64(len(frame))
	signal := q.wake
	if !q.writer {
		signal = c.spawn
	}
	c.mu.Unlock()
	select {
	case signal <- struct{}{}:
	default:
	}
	return true
}

// Cut is a TEST-ONLY switch for multi-process tests of one-way links: it
// drops frames to p (Outbound), from p (Inbound), both, or none (Heal).
// Dropped frames are counted as dropped. Connections stay up.
func (c *Consensus) Cut(p peer.ID, dir Direction) {
	c.mu.Lock()
	defer c.mu.Unlock()
	next := make(map[peer.ID]Direction)
	if old := c.cuts.Load(); old != nil {
		for k, v := range *old {
			next[k] = v
		}
	}
	if dir&Both == 0 {
		delete(next, p)
	} else {
		next[p] = dir & Both
	}
	c.cuts.Store(&next)
	c.log.Info("test switch: consensus link cut", "peer", p, "direction", uint8(dir))
}

func (c *Consensus) isCut(p peer.ID, dir Direction) bool {
	m := c.cuts.Load()
	return m != nil && (*m)[p]&dir != 0
}

// Stats returns the counters and the queue lengths.
func (c *Consensus) Stats() ConsensusStats {
	st := ConsensusStats{
		SentFrames:     c.sentFrames.Load(),
		SentBytes:      c.sentBytes.Load(),
		ReceivedFrames: c.recvFrames.Load(),
		ReceivedBytes:  c.recvBytes.Load(),
		DroppedFrames:  c.dropped.Load(),
		Redials:        c.redials.Load(),
		Queued:         make(map[peer.ID]int),
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	for p, q := range c.queues {
		if q.n > 0 {
			st.Queued[p] = q.n
		}
	}
	return st
}

// handle reads one inbound stream until it ends, Deliver fails or Run
// stops.
func (c *Consensus) handle(ctx context.Context, st network.Stream) {
	c.mu.Lock()
	if c.stopping {
		c.mu.Unlock()
		st.Reset()
		return
	}
	c.wg.Add(1)
	c.mu.Unlock()
	defer c.wg.Done()
	stop := context.AfterFunc(ctx, func() { st.Reset() })
	defer stop()
	from := st.Conn().RemotePeer()
	if err := c.read(st, from); err != nil {
		if errors.Is(err, ErrProtocol) || errors.Is(err, errDeliver) {
			c.log.Warn("consensus stream from a misbehaving peer reset", "peer", from, "err", err)
		} else {
			c.log.Debug("consensus stream ended", "peer", from, "err", err)
		}
		st.Reset()
		return
	}
	st.Close()
}

var errDeliver = errors.New("frame refused")

func (c *Consensus) read(st network.Stream, from peer.ID) error {
	fr := newFrameReader(st, st, c.cfg.MaxFrame, c.cfg.FrameTimeout, true)
	for {
		b, err := fr.next()
		if errors.Is(err, io.EOF) {
			return nil
		}
		if err != nil {
			return err
		}
		if c.isCut(from, Inbound) {
			c.dropped.Add(1)
			continue
		}
		c.recvFrames.Add(1)
		c.recvBytes.Add(uint64(len(b)))
		if err := c.cfg.Deliver(from, b); err != nil {
			return fmt.Errorf("%w: %w", errDeliver, err)
		}
	}
}

// connected wakes the writer of p, if it waits to redial.
func (c *Consensus) connected(p peer.ID) {
	c.mu.Lock()
	q := c.queues[p]
	c.mu.Unlock()
	if q != nil {
		select {
		case q.up <- struct{}{}:
		default:
		}
	}
}

// expire drops the frames that waited in q longer than MaxFrameAge; the
// caller holds c.mu. Frames are queued in time order, so they are a prefix.
func (c *Consensus) expire(q *sendQueue, now time.Time) {
	k := 0
	for k < len(q.at) && now.Sub(q.at[k]) > c.cfg.MaxFrameAge {
		k++
	}
	if k == 0 {
		return
	}
	for _, f := range q.frames[:k] {
		q.bytes -= int64(len(f))
	}
	clear(q.frames[:k])
	q.frames, q.at = q.frames[k:], q.at[k:]
	q.n -= k
	c.dropped.Add(uint64(k))
}

// take hands the writer everything queued for q that is not stale (nil if
// nothing). Frames stay counted in q until done releases them.
func (c *Consensus) take(q *sendQueue) [][]byte {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.expire(q, c.now())
	if len(q.frames) == 0 {
		return nil
	}
	batch := q.frames
	q.frames, q.spare = q.spare, nil
	q.at = q.at[:0]
	return batch
}

// done releases a batch that was written (sent) or given up on.
func (c *Consensus) done(q *sendQueue, batch [][]byte, sent bool) {
	var bytes int64
	for _, f := range batch {
		bytes += int64(len(f))
	}
	if sent {
		c.sentFrames.Add(uint64(len(batch)))
		c.sentBytes.Add(uint64(bytes))
	} else {
		c.dropped.Add(uint64(len(batch)))
	}
	clear(batch)
	c.mu.Lock()
	defer c.mu.Unlock()
	q.n -= len(batch)
	q.bytes -= bytes
	if q.spare == nil {
		q.spare = batch[:0]
	}
}

// retire ends p's writer if it may: when force is false only if nothing
// is queued. With force, what is queued is dropped. The queue leaves the
// map, so the next Send starts afresh.
func (c *Consensus) retire(p peer.ID, q *sendQueue, force bool) bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	if len(q.frames) > 0 && !force {
		return false
	}
	c.dropped.Add(uint64(len(q.frames)))
	q.n -= len(q.frames)
	for _, f := range q.frames {
		q.bytes -= int64(len(f))
	}
	q.frames, q.at = nil, nil
	if c.queues[p] == q {
		delete(c.queues, p)
	}
	return true
}

// write is p's writer goroutine.
func (c *Consensus) write(ctx context.Context, p peer.ID, q *sendQueue) {
	defer c.wg.Done()
	w := &peerWriter{c: c, p: p}
	defer w.close()
	log := c.log.With("peer", p)
	idle := time.NewTimer(c.cfg.WriterIdle)
	defer idle.Stop()
	var (
		last    = time.Now() // the last write that went through
		backoff time.Duration
		retry   [][]byte // a batch whose stream broke, sent once more
		broke   bool     // the last stream broke: the next open is a redial
	)
	for ctx.Err() == nil {
		if w.st == nil && (retry != nil || c.pending(q)) {
			if broke {
				c.redials.Add(1)
			}
			dialed := time.Now()
			if err := w.open(ctx, q.up); err != nil {
				log.Debug("open consensus stream", "err", err, "took", time.Since(dialed))
				broke = true
				if time.Since(last) > c.cfg.WriterIdle {
					if retry != nil {
						c.done(q, retry, false)
					}
					c.retire(p, q, true)
					log.Info("consensus writer retired: peer unreachable", "err", err)
					return
				}
				if !c.redialWait(ctx, q, backoff) {
					return
				}
				backoff = min(max(2*backoff, minRedial), maxRedial)
				continue
			}
			backoff, broke = 0, false
		}
		batch := retry
		if batch == nil {
			batch = c.take(q)
		}
		if len(batch) > 0 {
			if c.isCut(p, Outbound) {
				c.done(q, batch, false)
				retry = nil
				continue
			}
			if err := w.writeBatch(batch); err != nil {
				log.Debug("consensus stream broke", "err", err, "frames", len(batch))
				w.reset()
				broke = true
				if retry != nil {
					c.done(q, batch, false)
					retry = nil
				} else {
					retry = batch
				}
				continue
			}
			c.done(q, batch, true)
			retry, last = nil, time.Now()
			continue
		}
		idle.Reset(c.cfg.WriterIdle - time.Since(last))
		select {
		case <-ctx.Done():
		case <-q.wake:
		case <-w.dead:
			log.Debug("consensus stream ended by the peer")
			w.reset()
			broke = true
		case <-idle.C:
			if time.Since(last) >= c.cfg.WriterIdle && c.retire(p, q, false) {
				return
			}
		}
	}
}

// pending says whether q has frames waiting.
func (c *Consensus) pending(q *sendQueue) bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	return len(q.frames) > 0
}

// redialWait waits d before a writer dials its peer again, or less if the
// peer connects meanwhile; false if ctx ended.
func (c *Consensus) redialWait(ctx context.Context, q *sendQueue, d time.Duration) bool {
	if d <= 0 {
		return ctx.Err() == nil
	}
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
		return true
	case <-q.up:
		return true
	case <-ctx.Done():
		return false
	}
}

// peerWriter is a writer's stream to its peer, with the goroutine that
// watches it: the peer never writes on it, so a read returns only when
// the stream ends (reset, closed, protocol refused), which closes dead.
type peerWriter struct {
	c    *Consensus
	p    peer.ID
	st   network.Stream
	bw   *bufio.Writer
	dead chan struct{} // nil without a stream
	stop func() bool   // cancels the reset on ctx's end
}

// open opens a stream to the peer. A dial to a peer that is down can take
// seconds to fail (a QUIC handshake waits out its timeout where TCP is
// refused at once), and a connection the peer opens meanwhile (a
// restarted validator dials its peers) does not end it: up, which says
// the peer connected, cuts the dial short, and the stream is opened on
// that connection.
func (w *peerWriter) open(ctx context.Context, up <-chan struct{}) error {
	st, err := w.newStream(ctx, up)
	if err != nil && ctx.Err() == nil && w.c.cfg.Host.Network().Connectedness(w.p) == network.Connected {
		st, err = w.newStream(ctx, nil)
	}
	if err != nil {
		return err
	}
	w.st, w.dead = st, make(chan struct{})
	w.stop = context.AfterFunc(ctx, func() { st.Reset() })
	dw := &deadlineWriter{st: st, idle: w.c.cfg.FrameTimeout, now: time.Now}
	if w.bw == nil {
		w.bw = bufio.NewWriterSize(dw, 64<<10)
	} else {
		w.bw.Reset(dw)
	}
	go func(dead chan struct{}) {
		defer close(dead)
		var b [1]byte
		st.Read(b[:])
	}(w.dead)
	return nil
}

// newStream dials the peer for a consensus stream, for at most
// dialTimeout, or until up fires. The writer keeps its own backoff; the
// swarm's (5 s and growing to 5 minutes after failures) would hold a
// validator back long after its peer is up again.
func (w *peerWriter) newStream(ctx context.Context, up <-chan struct{}) (network.Stream, error) {
	dctx, cancel := context.WithTimeout(network.WithForceDirectDial(ctx, "consensus"), dialTimeout)
	defer cancel()
	if up != nil {
		dialing := make(chan struct{})
		defer close(dialing)
		go func() {
			select {
			case <-up:
				cancel()
			case <-dialing:
			}
		}()
	}
	return w.c.cfg.Host.NewStream(dctx, w.p, ConsensusProtocol)
}

func (w *peerWriter) writeBatch(batch [][]byte) error {
	for _, f := range batch {
		if err := putFrame(w.bw, f); err != nil {
			return err
		}
	}
	return w.bw.Flush()
}

// reset drops the stream and waits for its watcher.
func (w *peerWriter) reset() {
	if w.st == nil {
		return
	}
	w.stop()
	w.st.Reset()
	<-w.dead
	w.st, w.dead = nil, nil
}

// close ends the stream cleanly (the peer's reader sees the end between
// two frames; if ctx ended, it was reset already) and waits for its
// watcher.
func (w *peerWriter) close() {
	if w.st == nil {
		return
	}
	w.stop()
	w.st.Close()
	<-w.dead
	w.st, w.dead = nil, nil
}
