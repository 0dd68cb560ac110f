package node

import (
	"context"
	"crypto/subtle"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"path/filepath"
	"sync"
	"time"

	"github.com/ipfs/go-cid"
	"github.com/libp2p/go-libp2p/core/peer"
	ma "github.com/multiformats/go-multiaddr"

	"auditnet/p2p"
	"auditnet/storage"
)

// The HTTP API: JSON over loopback, under /api/v0/. Every endpoint but
// health needs the repo's token (api.token) as a bearer token; requests
// must name the API's own address as Host (no DNS rebinding) and carry no
// foreign Origin (no cross-site requests from a browser). Endpoints that
// change anything are POST.

// apiError is the body of every error response.
type apiError struct {
	Message string `json:"Message"`
}

// streamErrorTrailer carries an error that happens after a streamed body
// has started (cat), as kubo does.
const streamErrorTrailer = "X-Stream-Error"

func (d *Daemon) apiHandler(addr string) http.Handler {
	mux := http.NewServeMux()
	mux.HandleFunc("GET /api/v0/health", d.apiHealth)
	mux.HandleFunc("GET /api/v0/id", d.apiID)
	mux.HandleFunc("GET /api/v0/swarm/peers", d.apiPeers)
	mux.HandleFunc("POST /api/v0/swarm/connect", d.apiConnect)
	mux.HandleFunc("GET /api/v0/providers", d.apiProviders)
	mux.HandleFunc("POST /api/v0/add", d.apiAdd)
	mux.HandleFunc("GET /api/v0/cat", d.apiCat)
	mux.HandleFunc("POST /api/v0/get", d.apiGet)
	mux.HandleFunc("GET /api/v0/ls", d.apiLs)
	mux.HandleFunc("POST /api/v0/pin/add", d.apiPinAdd)
	mux.HandleFunc("POST /api/v0/pin/rm", d.apiPinRm)
	mux.HandleFunc("GET /api/v0/pin/ls", d.apiPinLs)
	mux.HandleFunc("POST /api/v0/repo/gc", d.apiGC)
	d.chainRoutes(mux)
	return guard(addr, d.token, mux)
}

// guard checks Host, Origin and the token before any handler runs.
func guard(addr, token string, next http.Handler) http.Handler {
	want := "Bearer " + token
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Host != addr {
			writeError(w, http.StatusForbidden, fmt.Errorf("host %q is not this API's address", r.Host))
			return
		}
		if o := r.Header.Get("Origin"); o != "" && o != "http://"+addr {
			writeError(w, http.StatusForbidden, fmt.Errorf("cross-origin request from %q", o))
			return
		}
		if r.URL.Path != "/api/v0/health" && subtle.ConstantTimeCompare([]byte(r.Header.Get("Authorization")), []byte(want)) != 1 {
			writeError(w, http.StatusUnauthorized, errors.New("missing or wrong API token (see the repo's api.token)"))
			return
		}
		next.ServeHTTP(w, r)
	})
}

func writeJSON(w http.ResponseWriter, v any) {
	w.Header().Set("Content-Type", "application/json")
	json.NewEncoder(w).Encode(v)
}

func writeError(w http.ResponseWriter, code int, err error) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(code)
	json.NewEncoder(w).Encode(apiError{Message: err.Error()})
}

// statusOf maps an error to an HTTP status.
func statusOf(err error) int {
	switch {
	case errors.Is(err, ErrBadRef), errors.Is(err, ErrIsDirectory):
		return http.StatusBadRequest
	case errors.Is(err, ErrNoProviders), errors.Is(err, storage.ErrNotFound), errors.Is(err, ErrNotAnchored):
		return http.StatusNotFound
	case errors.As(err, new(*AccessDeniedError)):
		return http.StatusForbidden
	case errors.Is(err, ErrNoQuorum):
		return http.StatusServiceUnavailable
	}
	return http.StatusInternalServerError
}

// Health is the health endpoint's answer.
type Health struct {
	OK    bool   `json:"OK"`
	Peer  string `json:"Peer"`
	Peers int    `json:"Peers"`
}

func (d *Daemon) apiHealth(w http.ResponseWriter, _ *http.Request) {
	writeJSON(w, Health{OK: true, Peer: d.host.ID().String(), Peers: len(d.host.Network().Peers())})
}

// IDInfo is what `auditnet id` prints, like `ipfs id`.
type IDInfo struct {
	ID           string   `json:"ID"`
	Addresses    []string `json:"Addresses"`
	Role         Role     `json:"Role"`
	AgentVersion string   `json:"AgentVersion"`
	Protocols    []string `json:"Protocols,omitempty"`
}

func (d *Daemon) apiID(w http.ResponseWriter, _ *http.Request) {
	info := IDInfo{ID: d.host.ID().String(), Role: d.repo.Config.Role, AgentVersion: p2p.UserAgent, Addresses: []string{}}
	for _, a := range d.host.Addrs() {
		info.Addresses = append(info.Addresses, a.String()+"/p2p/"+d.host.ID().String())
	}
	for _, p := range d.host.Mux().Protocols() {
		info.Protocols = append(info.Protocols, string(p))
	}
	writeJSON(w, info)
}

// PeerInfo is one connected peer.
type PeerInfo struct {
	Peer      string `json:"Peer"`
	Addr      string `json:"Addr"`
	Direction string `json:"Direction"`
}

func (d *Daemon) apiPeers(w http.ResponseWriter, _ *http.Request) {
	out := []PeerInfo{}
	for _, c := range d.host.Network().Conns() {
		out = append(out, PeerInfo{Peer: c.RemotePeer().String(), Addr: c.RemoteMultiaddr().String(), Direction: c.Stat().Direction.String()})
	}
	writeJSON(w, map[string]any{"Peers": out})
}

func (d *Daemon) apiConnect(w http.ResponseWriter, r *http.Request) {
	ai, err := peer.AddrInfoFromString(r.URL.Query().Get("arg"))
	if err != nil {
		writeError(w, http.StatusBadRequest, fmt.Errorf("want a multiaddr ending in /p2p/PEERID: %w", err))
		return
	}
	ctx, cancel := context.WithTimeout(r.Context(), 30*time.Second)
	defer cancel()
	if err := d.host.Connect(ctx, *ai); err != nil {
		writeError(w, http.StatusBadGateway, fmt.Errorf("connect %s: %w", ai.ID, err))
		return
	}
	writeJSON(w, map[string]string{"Peer": ai.ID.String()})
}

// ProviderInfo is one holder of a dataset.
type ProviderInfo struct {
	ID    string   `json:"ID"`
	Addrs []string `json:"Addrs"`
}

func (d *Daemon) apiProviders(w http.ResponseWriter, r *http.Request) {
	c, err := cid.Decode(r.URL.Query().Get("arg"))
	if err != nil {
		writeError(w, http.StatusBadRequest, fmt.Errorf("%w: %v", ErrBadRef, err))
		return
	}
	ctx, cancel := context.WithTimeout(r.Context(), 30*time.Second)
	defer cancel()
	found, err := d.dht.FindProviders(ctx, c, 20)
	if err != nil {
		writeError(w, http.StatusGatewayTimeout, err)
		return
	}
	out := []ProviderInfo{}
	for _, p := range found {
		out = append(out, ProviderInfo{ID: p.ID.String(), Addrs: addrStrings(p.Addrs)})
	}
	writeJSON(w, map[string]any{"Providers": out})
}

func addrStrings(as []ma.Multiaddr) []string {
	out := make([]string, len(as))
	for i, a := range as {
		out[i] = a.String()
	}
	return out
}

// AddRequest is the body of POST /api/v0/add: paths on this machine,
// which the daemon reads itself.
type AddRequest struct {
	Paths         []string `json:"Paths"`
	Recursive     bool     `json:"Recursive"`
	NoPin         bool     `json:"NoPin"`
	SkipSpecial   bool     `json:"SkipSpecial"`
	StoreSymlinks bool     `json:"StoreSymlinks"`
	// Policy is what an agency's daemon anchors the roots with: open or
	// restricted (the default).
	Policy string `json:"Policy,omitempty"`
}

// Event is one line of a streamed (NDJSON) answer: progress, a skipped
// path, the result, or an error.
type Event struct {
	Bytes   int64           `json:"Bytes,omitempty"`
	Skipped string          `json:"Skipped,omitempty"`
	Result  json.RawMessage `json:"Result,omitempty"`
	Error   string          `json:"Error,omitempty"`
}

// eventStream writes NDJSON events, flushed as they come; progress is
// coalesced to a few lines a second.
type eventStream struct {
	mu    sync.Mutex
	w     http.ResponseWriter
	enc   *json.Encoder
	bytes int64
	last  time.Time
}

func newEventStream(w http.ResponseWriter) *eventStream {
	w.Header().Set("Content-Type", "application/x-ndjson")
	return &eventStream{w: w, enc: json.NewEncoder(w)}
}

func (s *eventStream) send(e Event) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.enc.Encode(e)
	if f, ok := s.w.(http.Flusher); ok {
		f.Flush()
	}
}

func (s *eventStream) progress(n int) {
	s.mu.Lock()
	s.bytes += int64(n)
	due := time.Since(s.last) > 100*time.Millisecond
	total := s.bytes
	if due {
		s.last = time.Now()
	}
	s.mu.Unlock()
	if due {
		s.send(Event{Bytes: total})
	}
}

func (s *eventStream) finish(result any, err error) {
	if err != nil {
		s.send(Event{Error: err.Error()})
		return
	}
	raw, merr := json.Marshal(result)
	if merr != nil {
		s.send(Event{Error: merr.Error()})
		return
	}
	s.send(Event{Result: raw})
}

func (d *Daemon) apiAdd(w http.ResponseWriter, r *http.Request) {
	var req AddRequest
	if err := json.NewDecoder(io.LimitReader(r.Body, 1<<20)).Decode(&req); err != nil {
		writeError(w, http.StatusBadRequest, fmt.Errorf("add request: %w", err))
		return
	}
	for _, p := range req.Paths {
		if !filepath.IsAbs(p) {
			writeError(w, http.StatusBadRequest, fmt.Errorf("add: path %q is not absolute", p))
			return
		}
	}
	policy, err := ParsePolicy(req.Policy)
	if err != nil {
		writeError(w, http.StatusBadRequest, err)
		return
	}
	ev := newEventStream(w)
	res, err := d.Add(r.Context(), req.Paths, AddOptions{
		Recursive: req.Recursive, NoPin: req.NoPin, SkipSpecial: req.SkipSpecial, StoreSymlinks: req.StoreSymlinks, Policy: policy,
		Progress: ev.progress,
		Skipped:  func(path string) { ev.send(Event{Skipped: path}) },
	})
	ev.finish(res, err)
}

func (d *Daemon) apiCat(w http.ResponseWriter, r *http.Request) {
	ref, err := ParseRef(r.URL.Query().Get("arg"))
	if err != nil {
		writeError(w, http.StatusBadRequest, err)
		return
	}
	w.Header().Set("Trailer", streamErrorTrailer)
	sw := &startedWriter{w: w}
	q := r.URL.Query()
	if err := d.Cat(r.Context(), ref, sw, AccessOptions{Purpose: q.Get("purpose"), Case: q.Get("case"), Request: q.Get("request")}); err != nil {
		if !sw.started {
			writeError(w, statusOf(err), err)
			return
		}
		w.Header().Set(streamErrorTrailer, err.Error())
	}
}

// startedWriter tells whether a response body has begun.
type startedWriter struct {
	w       http.ResponseWriter
	started bool
}

func (s *startedWriter) Write(p []byte) (int, error) {
	if !s.started {
		s.w.Header().Set("Content-Type", "application/octet-stream")
		s.started = true
	}
	return s.w.Write(p)
}

// GetRequest is the body of POST /api/v0/get: the daemon writes to Output,
// an absolute path on this machine.
type GetRequest struct {
	Ref        string `json:"Ref"`
	Output     string `json:"Output"`
	MaxEntries int    `json:"MaxEntries"`
	// Purpose and Case go into the access request on the chain.
	Purpose string `json:"Purpose,omitempty"`
	Case    string `json:"Case,omitempty"`
	// Request fetches under an access request already authorised.
	Request string `json:"Request,omitempty"`
}

// GetResult is the result of a get through the daemon.
type GetResult struct {
	Output  string
	Fetched Fetched
}

func (d *Daemon) apiGet(w http.ResponseWriter, r *http.Request) {
	var req GetRequest
	if err := json.NewDecoder(io.LimitReader(r.Body, 1<<20)).Decode(&req); err != nil {
		writeError(w, http.StatusBadRequest, fmt.Errorf("get request: %w", err))
		return
	}
	ref, err := ParseRef(req.Ref)
	if err != nil {
		writeError(w, http.StatusBadRequest, err)
		return
	}
	if !filepath.IsAbs(req.Output) {
		writeError(w, http.StatusBadRequest, fmt.Errorf("get: output %q is not absolute", req.Output))
		return
	}
	ev := newEventStream(w)
	fetched, err := d.Get(r.Context(), ref, req.Output, GetOptions{MaxEntries: req.MaxEntries, Progress: ev.progress,
		Access: AccessOptions{Purpose: req.Purpose, Case: req.Case, Request: req.Request}})
	ev.finish(GetResult{Output: req.Output, Fetched: fetched}, err)
}

func (d *Daemon) apiLs(w http.ResponseWriter, r *http.Request) {
	ref, err := ParseRef(r.URL.Query().Get("arg"))
	if err != nil {
		writeError(w, http.StatusBadRequest, err)
		return
	}
	entries, err := d.repo.Ls(r.Context(), ref)
	if err != nil {
		writeError(w, statusOf(err), err)
		return
	}
	writeJSON(w, map[string]any{"Entries": entries})
}

func queryCids(r *http.Request) ([]cid.Cid, error) {
	args := r.URL.Query()["arg"]
	if len(args) == 0 {
		return nil, fmt.Errorf("%w: no CID given", ErrBadRef)
	}
	out := make([]cid.Cid, len(args))
	for i, a := range args {
		c, err := cid.Decode(a)
		if err != nil {
			return nil, fmt.Errorf("%w: invalid CID %q: %w", ErrBadRef, a, err)
		}
		out[i] = c
	}
	return out, nil
}

func (d *Daemon) apiPinAdd(w http.ResponseWriter, r *http.Request) { d.pinChange(w, r, d.PinAdd) }

func (d *Daemon) pinChange(w http.ResponseWriter, r *http.Request, change func(context.Context, []cid.Cid) error) {
	roots, err := queryCids(r)
	if err == nil {
		err = change(r.Context(), roots)
	}
	if err != nil {
		writeError(w, statusOf(err), err)
		return
	}
	writeJSON(w, map[string]any{"Pins": roots})
}

func (d *Daemon) apiPinLs(w http.ResponseWriter, r *http.Request) {
	pins, err := d.repo.Store.Pins(r.Context())
	if err != nil {
		writeError(w, statusOf(err), err)
		return
	}
	writeJSON(w, map[string]any{"Pins": pins})
}

func (d *Daemon) apiGC(w http.ResponseWriter, r *http.Request) {
	st, err := d.repo.Store.GC(r.Context())
	if err != nil {
		writeError(w, statusOf(err), err)
		return
	}
	writeJSON(w, st)
}
