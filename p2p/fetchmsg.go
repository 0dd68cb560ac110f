package p2p

import (
	"bufio"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"time"

	"github.com/fxamacker/cbor/v2"
	"github.com/ipfs/go-cid"
	"github.com/libp2p/go-libp2p/core/crypto"
	"github.com/libp2p/go-libp2p/core/peer"

	"auditnet/internal/dagcbor"
	"auditnet/storage/car"
)

// FetchProtocol is the protocol ID of the verified fetch.
const FetchProtocol = "/auditnet/fetch/1"

// fetchRequestTag separates fetch-request signatures from every other
// signature a node key makes (DESIGN.md, "Domain separation").
const fetchRequestTag = "auditnet/fetch-request/v1"

// Bounds on a request, checked before anything else is done with it.
const (
	maxRequestSize   = 64 << 10
	maxScopeLinks    = 4096
	maxLinkPathDepth = 64
	maxPathLength    = 4096
	maxPurposeLength = 1024
	nonceSize        = 16
	maxReplySize     = 4 << 10
)

// Scope says which part of a root's DAG a request asks for. With neither
// Path nor Links it is the whole DAG.
type Scope struct {
	// Path is a UnixFS path from the root ("dir/file"): the provider sends
	// the blocks that resolve it, then the DAG of the node it names.
	Path string `cbor:"path,omitempty"`
	// Links are link paths from the root: each is the index of the link to
	// follow in each node on the way. The provider follows them in its own
	// store and sends only the DAGs they lead to; the requester, who built
	// them from blocks it holds, knows what each must be.
	Links [][]int `cbor:"links,omitempty"`
	// Depth, if not 0, stops each DAG sent at that many levels (1: the
	// target blocks alone).
	Depth int `cbor:"depth,omitempty"`
	// Dedup makes both ends skip a block already sent in this stream.
	Dedup bool `cbor:"dedup,omitempty"`
}

// FetchRequest asks a provider for (part of) a dataset. It is signed by
// the requester's node key; the provider checks every field.
type FetchRequest struct {
	Network   string       `cbor:"network"`
	Root      dagcbor.Link `cbor:"root"`
	Scope     Scope        `cbor:"scope"`
	Requester []byte       `cbor:"requester"`
	Provider  []byte       `cbor:"provider"`
	Nonce     []byte       `cbor:"nonce"`
	// Time is when the request was made, in milliseconds since 1970 UTC.
	Time    int64  `cbor:"time"`
	Purpose string `cbor:"purpose"`
	// Auth refers to what authorises the request; the audit layer sets it
	// to the AccessRequest transaction's CID.
	Auth *dagcbor.Link `cbor:"auth,omitempty"`
}

// signedRequest is what goes on the wire.
type signedRequest struct {
	Request cbor.RawMessage `cbor:"request"`
	Sig     []byte          `cbor:"sig"`
}

// Validate checks a request's shape and bounds (not its signature).
func (r *FetchRequest) Validate() error {
	switch {
	case r.Network == "":
		return errors.New("no network id")
	case !r.Root.Defined():
		return errors.New("no root")
	case len(r.Nonce) != nonceSize:
		return fmt.Errorf("nonce of %d bytes, want %d", len(r.Nonce), nonceSize)
	case len(r.Purpose) > maxPurposeLength:
		return errors.New("purpose too long")
	case len(r.Scope.Path) > maxPathLength:
		return errors.New("path too long")
	case r.Scope.Path != "" && len(r.Scope.Links) > 0:
		return errors.New("scope has both a path and link paths")
	case len(r.Scope.Links) > maxScopeLinks:
		return fmt.Errorf("%d link paths, at most %d", len(r.Scope.Links), maxScopeLinks)
	case r.Scope.Depth < 0 || r.Scope.Depth > maxDAGDepth:
		return fmt.Errorf("depth %d", r.Scope.Depth)
	}
	for _, lp := range r.Scope.Links {
		if len(lp) > maxLinkPathDepth {
			return errors.New("link path too deep")
		}
		for _, i := range lp {
			if i < 0 || i >= maxLinks {
				return fmt.Errorf("link index %d", i)
			}
		}
	}
	if _, err := peer.IDFromBytes(r.Requester); err != nil {
		return fmt.Errorf("requester: %w", err)
	}
	if _, err := peer.IDFromBytes(r.Provider); err != nil {
		return fmt.Errorf("provider: %w", err)
	}
	return nil
}

// RequesterID and ProviderID decode the peers a request names.
func (r *FetchRequest) RequesterID() peer.ID { id, _ := peer.IDFromBytes(r.Requester); return id }

// ProviderID returns the provider the request names.
func (r *FetchRequest) ProviderID() peer.ID { id, _ := peer.IDFromBytes(r.Provider); return id }

// RequestTime returns the request's time.
func (r *FetchRequest) RequestTime() time.Time { return time.UnixMilli(r.Time) }

// signingBytes is what the requester signs: the domain tag, then the
// request's canonical encoding.
func signingBytes(raw []byte) []byte {
	return append([]byte(fetchRequestTag), raw...)
}

// EncodeSignedRequest signs r with sk and returns its wire encoding.
func EncodeSignedRequest(r *FetchRequest, sk crypto.PrivKey) ([]byte, error) {
	raw, err := dagcbor.Marshal(r)
	if err != nil {
		return nil, err
	}
	sig, err := sk.Sign(signingBytes(raw))
	if err != nil {
		return nil, fmt.Errorf("sign fetch request: %w", err)
	}
	return dagcbor.Marshal(signedRequest{Request: raw, Sig: sig})
}

// DecodeSignedRequest decodes and checks a request off the wire: canonical
// encoding, shape and bounds, and the requester's signature over it. The
// caller checks everything that depends on who and when.
func DecodeSignedRequest(b []byte) (*FetchRequest, error) {
	if len(b) > maxRequestSize {
		return nil, fmt.Errorf("request of %d bytes", len(b))
	}
	var env signedRequest
	if err := dagcbor.Unmarshal(b, &env); err != nil {
		return nil, err
	}
	var r FetchRequest
	if err := dagcbor.Unmarshal(env.Request, &r); err != nil {
		return nil, err
	}
	if err := r.Validate(); err != nil {
		return nil, err
	}
	pub, err := r.RequesterID().ExtractPublicKey()
	if err != nil {
		return nil, fmt.Errorf("requester key: %w", err)
	}
	ok, err := pub.Verify(signingBytes(env.Request), env.Sig)
	if err != nil || !ok {
		return nil, errBadSignature
	}
	return &r, nil
}

var errBadSignature = errors.New("bad signature")

// Reply codes: what the provider says before any block.
const (
	replyOK       = 0
	replyRefused  = 1 // the request is not acceptable; says nothing about the data
	replyNotHeld  = 2 // accepted, but this node does not serve that root
	replyBusy     = 3 // too many fetches running; try later or elsewhere
	replyBadScope = 4 // the scope does not resolve in the root's DAG
)

type fetchReply struct {
	Code    int    `cbor:"code"`
	Message string `cbor:"message"`
}

func encodeReply(code int, msg string) ([]byte, error) {
	return dagcbor.Marshal(fetchReply{Code: code, Message: msg})
}

// FetchRefusedError is a provider's refusal, with its reason.
type FetchRefusedError struct {
	Code    int
	Message string
}

func (e *FetchRefusedError) Error() string {
	switch e.Code {
	case replyRefused:
		return "refused: " + e.Message
	case replyNotHeld:
		return "not held: " + e.Message
	case replyBusy:
		return "busy: " + e.Message
	}
	return e.Message
}

func writeFrame(w io.Writer, b []byte) error {
	buf := binary.AppendUvarint(make([]byte, 0, len(b)+binary.MaxVarintLen64), uint64(len(b)))
	_, err := w.Write(append(buf, b...))
	return err
}

func readFrame(r *bufio.Reader, max int) ([]byte, error) {
	n, err := binary.ReadUvarint(r)
	if err != nil {
		return nil, err
	}
	if n > uint64(max) {
		return nil, fmt.Errorf("frame of %d bytes, at most %d", n, max)
	}
	b := make([]byte, n)
	if _, err := io.ReadFull(r, b); err != nil {
		return nil, err
	}
	return b, nil
}

// carHeader is the CAR v1 header that starts a successful reply.
type carHeader struct {
	Roots   []dagcbor.Link `cbor:"roots"`
	Version int            `cbor:"version"`
}

// encodeCarHeader is the header the provider sends: storage/car's, so a
// fetch stream is byte for byte a CAR that `dag export` would write.
func encodeCarHeader(root cid.Cid) ([]byte, error) {
	return car.EncodeHeader([]cid.Cid{root}), nil
}
