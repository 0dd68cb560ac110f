package p2p

import (
	"bytes"
	"encoding/binary"
	"errors"
	"io"
	"testing"
)

// FuzzReadFrames: a frameReader over arbitrary bytes never panics; the
// frames it returns, framed again, are exactly the bytes it consumed (one
// encoding per frame); it ends with io.EOF only at the end of the input
// between frames, and otherwise with an ErrProtocol.
func FuzzReadFrames(f *testing.F) {
	f.Add(appendFrame(appendFrame(nil, []byte("one")), []byte("two")))
	f.Add(appendFrame(nil, make([]byte, 300)))
	f.Add([]byte{0})
	f.Add([]byte{0x80})
	f.Add([]byte{0x83, 0x00, 'a', 'b', 'c'})
	f.Add(binary.AppendUvarint(nil, 1025))
	f.Add(bytes.Repeat([]byte{0xff}, 11))
	f.Add(append(binary.AppendUvarint(nil, 10), "short"...))
	f.Fuzz(func(t *testing.T, in []byte) {
		fr := newFrameReader(bytes.NewReader(in), nil, 1024, 0, true)
		used := 0 // bytes of in the frames so far re-encode to
		for {
			b, err := fr.next()
			if errors.Is(err, io.EOF) {
				if used != len(in) {
					t.Fatalf("clean end after %d of %d bytes", used, len(in))
				}
				return
			}
			if err != nil {
				if !errors.Is(err, ErrProtocol) {
					t.Fatalf("error %v is not a protocol violation", err)
				}
				return
			}
			if len(b) == 0 || len(b) > 1024 {
				t.Fatalf("frame of %d bytes", len(b))
			}
			enc := appendFrame(nil, b)
			if !bytes.HasPrefix(in[used:], enc) {
				t.Fatalf("frame at byte %d does not re-encode to the input", used)
			}
			used += len(enc)
		}
	})
}

// TestReadUvarint checks the strict varint against the standard one on
// every boundary, and its refusals.
func TestReadUvarint(t *testing.T) {
	for _, v := range []uint64{0, 1, 127, 128, 16383, 16384, 1<<32 - 1, 1 << 63, 1<<64 - 1} {
		b := binary.AppendUvarint(nil, v)
		got, err := readUvarint(bytes.NewReader(b))
		if err != nil || got != v {
			t.Errorf("%d: got %d, %v", v, got, err)
		}
	}
	for name, b := range map[string][]byte{
		"non-minimal":    {0x80, 0x00},
		"over 64 bits":   {0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x02},
		"eleven bytes":   bytes.Repeat([]byte{0x80}, 11),
		"ends inside":    {0x80},
		"nothing at all": nil,
	} {
		_, err := readUvarint(bytes.NewReader(b))
		switch {
		case name == "nothing at all" && !errors.Is(err, io.EOF):
			t.Errorf("%s: %v, want io.EOF", name, err)
		case name == "ends inside" && !errors.Is(err, io.ErrUnexpectedEOF):
			t.Errorf("%s: %v, want io.ErrUnexpectedEOF", name, err)
		case name != "nothing at all" && name != "ends inside" && !errors.Is(err, errBadVarint):
			t.Errorf("%s: %v, want errBadVarint", name, err)
		}
	}
}
