package node

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"time"

	"github.com/libp2p/go-libp2p/core/peer"
	"github.com/libp2p/go-libp2p/core/peerstore"
	ma "github.com/multiformats/go-multiaddr"

	"auditnet/chain"
	"auditnet/chain/pbft"
)

// Frames on /auditnet/pbft/1 start with a kind byte: a consensus message,
// a committed block pushed to a follower (block and certificate), or a
// follower asking a validator for pushes.
const (
	frameMessage byte = 1
	frameBlock   byte = 2
	frameFollow  byte = 3
)

// permanentAddrTTL keeps genesis addresses of validators in the
// peerstore.
const permanentAddrTTL = peerstore.PermanentAddrTTL

// errBadFrame is a frame this node cannot read: the stream is reset.
var errBadFrame = errors.New("bad consensus frame")

func encodeMessageFrame(m *pbft.Message) ([]byte, error) {
	b, err := pbft.EncodeMessage(m)
	if err != nil {
		return nil, err
	}
	return append([]byte{frameMessage}, b...), nil
}

// encodeBlockFrame is kind, uvarint length of the block, block, cert.
func encodeBlockFrame(cb *pbft.Committed) ([]byte, error) {
	blk, err := chain.Marshal(cb.Block)
	if err != nil {
		return nil, err
	}
	cert, err := chain.Marshal(cb.Cert)
	if err != nil {
		return nil, err
	}
	out := make([]byte, 0, 1+binary.MaxVarintLen64+len(blk)+len(cert))
	out = append(out, frameBlock)
	out = binary.AppendUvarint(out, uint64(len(blk)))
	out = append(out, blk...)
	return append(out, cert...), nil
}

// decodeFrame reads one frame. Every decoder it calls is strict (the
// canonical encoding or an error), so a frame has one meaning. A consensus
// message is decoded by v, which skips the transactions it met before.
func decodeFrame(b []byte, v *pbft.Verifier) (inbound, error) {
	if len(b) == 0 {
		return inbound{}, fmt.Errorf("%w: empty", errBadFrame)
	}
	switch b[0] {
	case frameMessage:
		m, err := v.DecodeMessage(b[1:])
		if err != nil {
			return inbound{}, fmt.Errorf("%w: %v", errBadFrame, err)
		}
		return inbound{msg: m}, nil
	case frameBlock:
		n, k := binary.Uvarint(b[1:])
		if k <= 0 || n > uint64(len(b)-1-k) {
			return inbound{}, fmt.Errorf("%w: block length", errBadFrame)
		}
		rest := b[1+k:]
		blk, err := chain.DecodeBlock(rest[:n])
		if err != nil {
			return inbound{}, fmt.Errorf("%w: block: %v", errBadFrame, err)
		}
		cert, err := chain.DecodeCommitCert(rest[n:])
		if err != nil {
			return inbound{}, fmt.Errorf("%w: certificate: %v", errBadFrame, err)
		}
		return inbound{push: &pbft.Committed{Block: blk, Cert: cert}}, nil
	case frameFollow:
		if len(b) != 1 {
			return inbound{}, fmt.Errorf("%w: follow frame with a body", errBadFrame)
		}
		return inbound{follow: true}, nil
	}
	return inbound{}, fmt.Errorf("%w: unknown kind %d", errBadFrame, b[0])
}

// deliver runs in the transport's reader goroutine of peer from: it
// decodes and checks signatures (in parallel across peers, transactions in
// batches) and queues for the loop. A full inbox blocks the reader, which
// stops reading the stream: back-pressure reaches the sender, whose queue
// then drops.
func (c *chainNode) deliver(from peer.ID, frame []byte) error {
	in, err := decodeFrame(frame, c.verifier)
	if err != nil {
		c.log.Warn("bad frame from peer", "peer", from, "err", err)
		return err
	}
	in.from = from
	c.seen.Store(from, time.Now())
	if in.msg != nil && len(in.msg.Txs) > 0 {
		c.forwarded(in)
		return nil
	}
	if in.msg != nil {
		// What fails stays unmarked, and the core refuses it.
		if err := c.verifier.VerifyMessage(in.msg); err != nil {
			c.log.Warn("bad signature from peer", "peer", from, "err", err)
		}
	}
	select {
	case c.inbox <- in:
		return nil
	case <-c.stopped:
		return errStopping
	}
}

// forwarded hands a message of transactions another validator forwarded
// to runTxVerifier without waiting. Forwarding is best effort: when this
// validator is saturated (the verifier's queue is full) the message is
// dropped and counted, and the transactions stay with the validator that
// forwarded them, which forwards those that wait too long again before it
// suspects the leader. (A full mempool does not drop them: the core takes
// forwarded transactions beyond its limit for clients.)
func (c *chainNode) forwarded(in inbound) {
	select {
	case c.txVerify <- in:
	default:
		c.metrics.forwardDropped.Add(float64(len(in.msg.Txs)))
	}
}

// runTxVerifier checks the signatures of forwarded transactions, in
// batches, and passes them to the loop.
func (c *chainNode) runTxVerifier(ctx context.Context) error {
	for {
		var in inbound
		select {
		case <-ctx.Done():
			return nil
		case in = <-c.txVerify:
		}
		if err := c.verifier.VerifyMessage(in.msg); err != nil {
			c.log.Warn("bad signature from peer", "peer", in.from, "err", err)
		}
		select {
		case c.txInbox <- in:
		case <-ctx.Done():
			return nil
		}
	}
}

// errStopping refuses frames that arrive while the node stops.
var errStopping = errors.New("chain stopping")

// send hands the core's messages to the transport: a message to all goes
// to every other validator of the epoch (heartbeats to followers too),
// and committed blocks go to followers.
func (c *chainNode) send(msgs []pbft.Outbound, committed []pbft.Committed) {
	vals := c.replica.Validators()
	for _, o := range msgs {
		frame, err := encodeMessageFrame(o.Msg)
		if err != nil {
			c.log.Error("encode message", "err", err)
			continue
		}
		if o.To != nil {
			c.sendTo(peer.ID(o.To), frame)
			continue
		}
		for id := range vals.Members {
			if p := peer.ID(id); p != c.host.ID() {
				c.sendTo(p, frame)
			}
		}
		if o.Msg.Heartbeat != nil {
			for p := range c.followers {
				c.sendTo(p, frame)
			}
		}
	}
	if len(c.followers) == 0 {
		return
	}
	for i := range committed {
		frame, err := encodeBlockFrame(&committed[i])
		if err != nil {
			c.log.Error("encode block", "err", err)
			continue
		}
		for p := range c.followers {
			c.sendTo(p, frame)
		}
	}
}

func (c *chainNode) sendTo(p peer.ID, frame []byte) {
	if !c.net.Send(p, frame) {
		c.metrics.dropped.Inc()
	}
}

// sendFollow asks every validator for pushes; a follower repeats it, so a
// validator that restarted learns of it again.
func (c *chainNode) sendFollow() {
	for id := range c.replica.Validators().Members {
		if p := peer.ID(id); p != c.host.ID() {
			c.net.Send(p, []byte{frameFollow})
		}
	}
}

func (c *chainNode) expireFollowers() {
	for p, t := range c.followers {
		if time.Since(t) > followTimeout {
			delete(c.followers, p)
			c.log.Info("follower gone", "peer", p)
		}
	}
}

// validatorAddrInfo reads a genesis validator's peer ID and addresses.
func validatorAddrInfo(v chain.Validator) (peer.AddrInfo, error) {
	id, err := peer.Decode(v.PeerID)
	if err != nil {
		return peer.AddrInfo{}, fmt.Errorf("genesis validator %q: %w", v.PeerID, err)
	}
	info := peer.AddrInfo{ID: id}
	for _, s := range v.Addrs {
		a, err := ma.NewMultiaddr(s)
		if err != nil {
			return peer.AddrInfo{}, fmt.Errorf("genesis validator %s address %q: %w", v.PeerID, s, err)
		}
		if t, last := ma.SplitLast(a); last != nil && last.Protocol().Code == ma.P_P2P {
			a = t
		}
		info.Addrs = append(info.Addrs, a)
	}
	return info, nil
}

// submission is a batch of transactions for the loop.
type submission struct {
	txs   []*chain.Tx
	reply chan []error
}

// submit hands transactions to the core (loop goroutine).
func (c *chainNode) submit(txs []*chain.Tx) []error {
	errs := c.replica.SubmitBatch(txs)
	now := time.Now()
	for i, tx := range txs {
		if errs[i] == nil && len(c.pending) < maxPendingLatency {
			if id, err := tx.ID(); err == nil {
				if _, ok := c.pending[id]; !ok {
					c.pending[id] = now
				}
			}
		}
	}
	return errs
}

// maxPendingLatency bounds the submit times kept for the latency metric.
const maxPendingLatency = 200_000

// Submit offers transactions to the chain: a validator's core takes them;
// a follower forwards them to a validator over /auditnet/tx/1. Each error
// is nil (accepted: it waits for a block), pbft.ErrBusy or why it was
// refused.
func (c *chainNode) Submit(ctx context.Context, txs []*chain.Tx) ([]error, error) {
	if !c.isValidator() {
		return c.forward(ctx, txs)
	}
	// Signatures are checked here, in the caller's goroutine and in one
	// batch; the core takes the marks and does not check them again.
	c.verifier.VerifyTxs(txs)
	s := &submission{txs: txs, reply: make(chan []error, 1)}
	select {
	case c.submits <- s:
	case <-ctx.Done():
		return nil, ctx.Err()
	}
	select {
	case errs := <-s.reply:
		return errs, nil
	case <-ctx.Done():
		return nil, ctx.Err()
	}
}

// mempoolFull reports whether this validator's mempool was full after its
// last step: admission control beyond saturation refuses submissions then
// (submitEncoded, handleTxs), before they cost a decode and a signature
// check, so an overloaded node spends its time on the blocks that drain
// the mempool. The core still decides for each tx it is given.
func (c *chainNode) mempoolFull() bool {
	limit := c.opts.Timers.MempoolTxs
	if limit <= 0 {
		limit = pbft.DefaultMempoolTxs
	}
	return c.isValidator() && c.mempool.Load() >= int64(limit)
}

func (c *chainNode) isValidator() bool {
	st := c.status.Load()
	return st != nil && st.Validator
}
