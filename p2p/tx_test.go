package p2p

import (
	"bytes"
	"context"
	"errors"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"
	"unicode/utf8"

	"github.com/libp2p/go-libp2p/core/peer"

	"auditnet/chain"
	"auditnet/internal/dagcbor"
)

// txNode is a host serving /auditnet/tx/1 with handle.
func txNode(t *testing.T, cfg TxServiceConfig) (*wireHost, *TxService) {
	t.Helper()
	h := newWireHost(t, nil, "")
	cfg.Host = h.Host
	s, err := NewTxService(cfg)
	if err != nil {
		t.Fatal(err)
	}
	runPart(t, s.Run)
	return h, s
}

// codeOf answers a transaction by its content, the way a validator would
// answer real ones.
func codeOf(tx []byte) TxResult {
	switch {
	case bytes.HasPrefix(tx, []byte("ok")):
		return TxResult{Code: TxOK}
	case bytes.HasPrefix(tx, []byte("busy")):
		return TxResult{Code: TxBusy, Reason: "mempool full"}
	case bytes.HasPrefix(tx, []byte("nv")):
		return TxResult{Code: TxNotValidator, Reason: "follower"}
	case bytes.HasPrefix(tx, []byte("long")):
		return TxResult{Code: TxInvalid, Reason: strings.Repeat("é", MaxTxReason)}
	}
	return TxResult{Code: TxInvalid, Reason: "bad signature"}
}

// TestTxRoundTrip submits a batch with every outcome: the results come
// back in order, Err maps each code to its sentinel, the handler sees the
// submitter's peer ID and the bytes sent, and a long reason is cut to
// MaxTxReason bytes of valid UTF-8.
func TestTxRoundTrip(t *testing.T) {
	var (
		mu      sync.Mutex
		sawFrom peer.ID
		sawTxs  [][]byte
	)
	h, _ := txNode(t, TxServiceConfig{Handle: func(_ context.Context, from peer.ID, txs [][]byte) []TxResult {
		mu.Lock()
		defer mu.Unlock()
		sawFrom, sawTxs = from, txs
		out := make([]TxResult, len(txs))
		for i, tx := range txs {
			out[i] = codeOf(tx)
		}
		return out
	}})
	client := newWireHost(t, nil, "")
	linkWire(t, h, client)
	txs := [][]byte{[]byte("ok 1"), []byte("busy 2"), []byte("bad 3"), []byte("nv 4"), []byte("ok 5"), []byte("long 6"), bytes.Repeat([]byte{7}, chain.MaxTxSize)}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	got, err := SubmitTxs(ctx, client, h.ID(), txs)
	if err != nil {
		t.Fatal(err)
	}
	mu.Lock()
	defer mu.Unlock()
	if sawFrom != client.ID() || len(sawTxs) != len(txs) {
		t.Fatalf("handler saw %v and %d txs", sawFrom, len(sawTxs))
	}
	for i := range txs {
		if !bytes.Equal(sawTxs[i], txs[i]) {
			t.Fatalf("tx %d changed on the way", i)
		}
	}
	wantErr := []error{nil, ErrBusy, ErrTxInvalid, ErrNotValidator, nil, ErrTxInvalid, ErrTxInvalid}
	for i, r := range got {
		want := codeOf(txs[i])
		if i == 5 {
			if r.Code != TxInvalid || len(r.Reason) > MaxTxReason || len(r.Reason) < MaxTxReason-1 || !utf8.ValidString(r.Reason) {
				t.Fatalf("long reason came back as %d bytes, valid %v", len(r.Reason), utf8.ValidString(r.Reason))
			}
		} else if r != want {
			t.Fatalf("result %d = %+v, want %+v", i, r, want)
		}
		if err := r.Err(); !errors.Is(err, wantErr[i]) || (wantErr[i] == nil) != (err == nil) {
			t.Fatalf("result %d: Err() = %v, want %v", i, err, wantErr[i])
		}
	}
	if err := got[1].Err(); err.Error() != "busy: mempool full, try again later: mempool full" {
		t.Fatalf("busy error says %q", err)
	}
}

// TestTxRefusals checks what fails and how: a batch out of bounds is
// refused before anything is sent; a handler returning the wrong number
// of results, or a malformed request, resets the stream (the handler is
// not called for the latter); past MaxConcurrent every transaction of a
// request is TxBusy.
func TestTxRefusals(t *testing.T) {
	var calls atomic.Int32
	block := make(chan struct{})
	var once sync.Once
	t.Cleanup(func() { once.Do(func() { close(block) }) })
	entered := make(chan struct{}, 1)
	h, _ := txNode(t, TxServiceConfig{MaxConcurrent: 1, Handle: func(_ context.Context, _ peer.ID, txs [][]byte) []TxResult {
		calls.Add(1)
		switch string(txs[0]) {
		case "short":
			return nil
		case "hold":
			entered <- struct{}{}
			<-block
		}
		return make([]TxResult, len(txs))
	}})
	client := newWireHost(t, nil, "")
	linkWire(t, h, client)
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()

	many := make([][]byte, MaxTxBatch+1)
	for i := range many {
		many[i] = []byte{1}
	}
	heavy := make([][]byte, MaxTxBatchBytes/chain.MaxTxSize+1)
	for i := range heavy {
		heavy[i] = make([]byte, chain.MaxTxSize)
	}
	for _, tc := range []struct {
		name string
		txs  [][]byte
	}{
		{"none", nil},
		{"too many", many},
		{"empty tx", [][]byte{{}}},
		{"tx too large", [][]byte{make([]byte, chain.MaxTxSize+1)}},
		{"batch too large", heavy},
	} {
		if _, err := SubmitTxs(ctx, client, h.ID(), tc.txs); err == nil {
			t.Errorf("%s: submitted", tc.name)
		}
	}
	if calls.Load() != 0 {
		t.Fatalf("handler called %d times for batches out of bounds", calls.Load())
	}

	if _, err := SubmitTxs(ctx, client, h.ID(), [][]byte{[]byte("short"), []byte("x")}); err == nil {
		t.Error("a reply with too few results was accepted")
	}

	// A malformed request: a frame that is not a tx request.
	st, err := client.NewStream(ctx, h.ID(), TxProtocol)
	if err != nil {
		t.Fatal(err)
	}
	st.SetDeadline(time.Now().Add(10 * time.Second))
	st.Write(appendFrame(nil, []byte{0xa0}))
	st.CloseWrite()
	if _, err := st.Read(make([]byte, 1)); !isReset(err) {
		t.Fatalf("malformed request: read %v, want a reset", err)
	}
	st.Reset()
	if calls.Load() != 1 {
		t.Fatalf("handler called %d times, want 1", calls.Load())
	}

	// Busy: one submission holds the only slot.
	held := make(chan error, 1)
	go func() {
		_, err := SubmitTxs(ctx, client, h.ID(), [][]byte{[]byte("hold")})
		held <- err
	}()
	<-entered
	got, err := SubmitTxs(ctx, client, h.ID(), [][]byte{[]byte("a"), []byte("b")})
	if err != nil {
		t.Fatal(err)
	}
	for i, r := range got {
		if !errors.Is(r.Err(), ErrBusy) {
			t.Fatalf("result %d while the slot is held: %+v", i, r)
		}
	}
	once.Do(func() { close(block) })
	if err := <-held; err != nil {
		t.Fatal(err)
	}
}

// FuzzDecodeTxRequest: decodeTxRequest never panics, and what it accepts
// is within bounds and re-encodes to the bytes it came from.
func FuzzDecodeTxRequest(f *testing.F) {
	for _, txs := range [][][]byte{
		{[]byte("tx")},
		{[]byte("a"), []byte("bb"), bytes.Repeat([]byte{3}, 300)},
	} {
		b, err := encodeTxRequest(txs)
		if err != nil {
			f.Fatal(err)
		}
		f.Add(b)
		f.Add(b[:len(b)-1])
	}
	empty, _ := dagcbor.Marshal(txRequest{})
	f.Add(empty)
	f.Add([]byte{0xa1, 0x63, 't', 'x', 's', 0x81, 0x40})
	f.Fuzz(func(t *testing.T, b []byte) {
		txs, err := decodeTxRequest(b)
		if err != nil {
			return
		}
		if checkTxBatch(txs) != nil {
			t.Fatalf("accepted an out-of-bounds batch of %d", len(txs))
		}
		again, err := encodeTxRequest(txs)
		if err != nil || !bytes.Equal(again, b) {
			t.Fatalf("accepted bytes do not round-trip: %v", err)
		}
	})
}

// FuzzDecodeTxResponse: decodeTxResponse never panics, and what it
// accepts has known codes, bounded reasons, and re-encodes to its bytes.
func FuzzDecodeTxResponse(f *testing.F) {
	for _, rs := range [][]TxResult{
		{{Code: TxOK}},
		{{Code: TxBusy, Reason: "mempool full"}, {Code: TxInvalid, Reason: "bad signature"}, {Code: TxNotValidator}},
	} {
		b, err := encodeTxResponse(rs)
		if err != nil {
			f.Fatal(err)
		}
		f.Add(b)
		f.Add(b[:len(b)-1])
	}
	bad, _ := dagcbor.Marshal(txResponse{Results: []TxResult{{Code: 9}}})
	f.Add(bad)
	f.Fuzz(func(t *testing.T, b []byte) {
		rs, err := decodeTxResponse(b)
		if err != nil {
			return
		}
		for _, r := range rs {
			if r.Code > TxNotValidator || len(r.Reason) > MaxTxReason {
				t.Fatalf("accepted %+v", r)
			}
		}
		again, err := encodeTxResponse(rs)
		if err != nil || !bytes.Equal(again, b) {
			t.Fatalf("accepted bytes do not round-trip: %v", err)
		}
	})
}
