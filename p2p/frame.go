package p2p

import (
	"bufio"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"time"
)

// The chain's streams (/auditnet/pbft/1, /auditnet/tx/1, /auditnet/sync/1)
// carry frames: the payload's length as an unsigned varint, minimally
// encoded, then the payload, which is never empty.

// putFrame writes b as a frame through w (not flushed).
func putFrame(w *bufio.Writer, b []byte) error {
	var hdr [binary.MaxVarintLen64]byte
	if _, err := w.Write(hdr[:binary.PutUvarint(hdr[:], uint64(len(b)))]); err != nil {
		return err
	}
	_, err := w.Write(b)
	return err
}

// appendFrame appends b as a frame to dst.
func appendFrame(dst, b []byte) []byte {
	return append(binary.AppendUvarint(dst, uint64(len(b))), b...)
}

// readDeadliner is the part of a stream a frameReader sets deadlines on.
type readDeadliner interface {
	SetReadDeadline(time.Time) error
}

// frameReader reads frames of at most max bytes. Every read from the
// stream, within a frame and (unless idle) while waiting for one, must
// make progress within timeout: the stream's read deadline is moved
// forward before each, so a peer that stalls costs one timeout.
type frameReader struct {
	src  deadlineReader
	br   *bufio.Reader
	max  int
	idle bool
}

// newFrameReader reads frames from r, setting deadlines on dl (nil: none).
// With idle, the wait for a frame's first byte has no deadline: for
// long-lived streams, whose owner resets them when it stops.
func newFrameReader(r io.Reader, dl readDeadliner, max int, timeout time.Duration, idle bool) *frameReader {
	fr := &frameReader{src: deadlineReader{r: r, dl: dl, timeout: timeout}, max: max, idle: idle}
	fr.br = bufio.NewReaderSize(&fr.src, 64<<10)
	return fr
}

// next returns the next frame in a new slice. It returns io.EOF, and only
// that, when the stream ends cleanly between two frames; an empty,
// oversized, badly encoded or truncated frame is an ErrProtocol.
func (r *frameReader) next() ([]byte, error) {
	if r.idle && r.br.Buffered() == 0 {
		r.src.waiting = true
		_, err := r.br.Peek(1)
		r.src.waiting = false
		if err != nil {
			return nil, err
		}
	}
	n, err := readUvarint(r.br)
	switch {
	case errors.Is(err, io.ErrUnexpectedEOF):
		return nil, protocolError("stream ends inside a frame length")
	case errors.Is(err, errBadVarint):
		return nil, protocolError("%v", err)
	case err != nil:
		return nil, err
	case n == 0:
		return nil, protocolError("empty frame")
	case n > uint64(r.max):
		return nil, protocolError("frame of %d bytes, at most %d", n, r.max)
	}
	b := make([]byte, n)
	if _, err := io.ReadFull(r.br, b); err != nil {
		if errors.Is(err, io.EOF) || errors.Is(err, io.ErrUnexpectedEOF) {
			return nil, protocolError("stream ends inside a frame of %d bytes", n)
		}
		return nil, fmt.Errorf("frame of %d bytes: %w", n, err)
	}
	return b, nil
}

// errBadVarint is a frame length over 64 bits or not minimally encoded
// (needless trailing zero groups would give one length several
// encodings).
var errBadVarint = errors.New("bad frame length")

// readUvarint reads a minimally encoded unsigned varint of at most 64 bits.
// It returns io.EOF if r ends before the first byte, io.ErrUnexpectedEOF
// if it ends inside the varint.
func readUvarint(r io.ByteReader) (uint64, error) {
	var x uint64
	for i := 0; i < binary.MaxVarintLen64; i++ {
		c, err := r.ReadByte()
		if err != nil {
			if i > 0 && errors.Is(err, io.EOF) {
				err = io.ErrUnexpectedEOF
			}
			return 0, err
		}
		if i == binary.MaxVarintLen64-1 && c > 1 {
			return 0, fmt.Errorf("%w: over 64 bits", errBadVarint)
		}
		if c < 0x80 {
			if c == 0 && i > 0 {
				return 0, fmt.Errorf("%w: not minimally encoded", errBadVarint)
			}
			return x | uint64(c)<<(7*i), nil
		}
		x |= uint64(c&0x7f) << (7 * i)
	}
	return 0, fmt.Errorf("%w: over 64 bits", errBadVarint)
}

// deadlineReader moves the read deadline to timeout from now before each
// read, except while waiting (no deadline then). To spare the stream a
// call per read, a deadline that still has three quarters of timeout to
// run is kept.
type deadlineReader struct {
	r       io.Reader
	dl      readDeadliner
	timeout time.Duration
	waiting bool
	set     time.Time // the deadline in force; zero for none
}

func (d *deadlineReader) Read(p []byte) (int, error) {
	if d.dl != nil {
		switch {
		case d.waiting:
			if !d.set.IsZero() {
				d.dl.SetReadDeadline(time.Time{})
				d.set = time.Time{}
			}
		default:
			if want := time.Now().Add(d.timeout); d.set.IsZero() || want.Sub(d.set) > d.timeout/4 {
				d.dl.SetReadDeadline(want)
				d.set = want
			}
		}
	}
	return d.r.Read(p)
}
