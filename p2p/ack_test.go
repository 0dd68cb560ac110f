package p2p

import (
	"bytes"
	"context"
	"errors"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/libp2p/go-libp2p/core/peer"
)

// TestAckProtocol runs /auditnet/ack/1 between two real hosts: the
// holder's handler gets the acknowledgement and its sender, its refusal
// reaches the sender, and an oversized acknowledgement is refused by the
// sender before a byte leaves, and by the holder, unread by its handler,
// from a sender that does not check.
func TestAckProtocol(t *testing.T) {
	for _, quic := range []bool{false, true} {
		t.Run(map[bool]string{false: "tcp", true: "quic"}[quic], func(t *testing.T) { ackProtocol(t, quic) })
	}
}

func ackProtocol(t *testing.T, quic bool) {
	holder, auditor := newTestNode(t, quic), newTestNode(t, quic)
	link(t, holder, auditor)
	var (
		mu   sync.Mutex
		got  [][]byte
		from []peer.ID
	)
	svc := NewAckService(holder.host, func(_ context.Context, p peer.ID, ack []byte) error {
		mu.Lock()
		defer mu.Unlock()
		got, from = append(got, ack), append(from, p)
		if bytes.HasPrefix(ack, []byte("refuse")) {
			return errors.New("no such request")
		}
		return nil
	}, nil)
	t.Cleanup(func() { svc.Close() })
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()

	if err := SendAck(ctx, auditor.host, holder.id(), []byte("received 3 blocks")); err != nil {
		t.Fatalf("acknowledgement: %v", err)
	}
	err := SendAck(ctx, auditor.host, holder.id(), []byte("refuse this"))
	var refused *FetchRefusedError
	if !errors.As(err, &refused) || !strings.Contains(refused.Message, "no such request") {
		t.Fatalf("refused acknowledgement: %v", err)
	}
	mu.Lock()
	if len(got) != 2 || string(got[0]) != "received 3 blocks" || from[0] != auditor.id() || from[1] != auditor.id() {
		t.Fatalf("the holder got %q from %v", got, from)
	}
	mu.Unlock()

	big := bytes.Repeat([]byte{1}, MaxAckSize+1)
	if err := SendAck(ctx, auditor.host, holder.id(), big); err == nil || !strings.Contains(err.Error(), "at most") {
		t.Fatalf("oversized acknowledgement sent: %v", err)
	}
	st, err := auditor.host.NewStream(ctx, holder.id(), AckProtocol)
	if err != nil {
		t.Fatal(err)
	}
	defer st.Reset()
	if err := writeFrame(st, big); err != nil {
		t.Fatal(err)
	}
	st.SetReadDeadline(time.Now().Add(10 * time.Second))
	if n, err := st.Read(make([]byte, 1)); err == nil {
		t.Fatalf("the holder answered an oversized acknowledgement (%d bytes)", n)
	}
	mu.Lock()
	defer mu.Unlock()
	if len(got) != 2 {
		t.Fatalf("the handler took an oversized acknowledgement: %d calls", len(got))
	}
}
