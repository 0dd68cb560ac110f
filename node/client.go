package node

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/ipfs/go-cid"

	"auditnet/storage"
)

// Client talks to a running daemon's HTTP API. The CLI uses it whenever a
// daemon runs on the repo, since the daemon holds the repo's lock.
type Client struct {
	base  string
	token string
	hc    *http.Client
}

// DialDaemon returns a client of the daemon running on the repo in dir,
// or nil if none runs (no api file, or one left by a daemon that died).
func DialDaemon(ctx context.Context, dir string) (*Client, error) {
	raw, err := os.ReadFile(filepath.Join(dir, apiFile))
	if errors.Is(err, os.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("read %s: %w", apiFile, err)
	}
	tok, err := os.ReadFile(filepath.Join(dir, tokenFile))
	if err != nil {
		return nil, fmt.Errorf("read API token: %w", err)
	}
	c := &Client{base: strings.TrimSpace(string(raw)), token: strings.TrimSpace(string(tok)), hc: &http.Client{}}
	hctx, cancel := context.WithTimeout(ctx, 3*time.Second)
	defer cancel()
	var h Health
	if err := c.call(hctx, http.MethodGet, "health", nil, nil, &h); err != nil {
		// A daemon that died leaves its api file; its lock went with it.
		if lock, lerr := lockRepo(dir, true); lerr == nil {
			lock.Close()
			return nil, nil
		}
		return nil, fmt.Errorf("the daemon on %s does not answer at %s: %w", dir, c.base, err)
	}
	return c, nil
}

// URL is the daemon's API address.
func (c *Client) URL() string { return c.base }

func (c *Client) request(ctx context.Context, method, endpoint string, query url.Values, body any) (*http.Response, error) {
	var rd io.Reader
	if body != nil {
		b, err := json.Marshal(body)
		if err != nil {
			return nil, err
		}
		rd = bytes.NewReader(b)
	}
	u := c.base + "/api/v0/" + endpoint
	if len(query) > 0 {
		u += "?" + query.Encode()
	}
	req, err := http.NewRequestWithContext(ctx, method, u, rd)
	if err != nil {
		return nil, err
	}
	req.Header.Set("Authorization", "Bearer "+c.token)
	if body != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	resp, err := c.hc.Do(req)
	if err != nil {
		return nil, fmt.Errorf("daemon API: %w", err)
	}
	if resp.StatusCode != http.StatusOK {
		defer resp.Body.Close()
		var e apiError
		if json.NewDecoder(io.LimitReader(resp.Body, 1<<20)).Decode(&e) != nil || e.Message == "" {
			e.Message = resp.Status
		}
		return nil, &APIError{Status: resp.StatusCode, Message: e.Message}
	}
	return resp, nil
}

// APIError is an error the daemon reported.
type APIError struct {
	Status  int
	Message string
}

func (e *APIError) Error() string { return e.Message }

func (c *Client) call(ctx context.Context, method, endpoint string, query url.Values, body, out any) error {
	resp, err := c.request(ctx, method, endpoint, query, body)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	if err := json.NewDecoder(resp.Body).Decode(out); err != nil {
		return fmt.Errorf("daemon API %s: %w", endpoint, err)
	}
	return nil
}

// ID returns the node's identity and addresses.
func (c *Client) ID(ctx context.Context) (IDInfo, error) {
	var info IDInfo
	return info, c.call(ctx, http.MethodGet, "id", nil, nil, &info)
}

// Peers lists the connected peers.
func (c *Client) Peers(ctx context.Context) ([]PeerInfo, error) {
	var out struct{ Peers []PeerInfo }
	return out.Peers, c.call(ctx, http.MethodGet, "swarm/peers", nil, nil, &out)
}

// Connect dials a peer (a multiaddr ending in /p2p/PEERID).
func (c *Client) Connect(ctx context.Context, addr string) error {
	var out map[string]string
	return c.call(ctx, http.MethodPost, "swarm/connect", url.Values{"arg": {addr}}, nil, &out)
}

// Providers lists the holders of a dataset root the DHT knows.
func (c *Client) Providers(ctx context.Context, root string) ([]ProviderInfo, error) {
	var out struct{ Providers []ProviderInfo }
	return out.Providers, c.call(ctx, http.MethodGet, "providers", url.Values{"arg": {root}}, nil, &out)
}

// Ls lists a directory the node holds.
func (c *Client) Ls(ctx context.Context, ref string) ([]LsEntry, error) {
	var out struct{ Entries []LsEntry }
	return out.Entries, c.call(ctx, http.MethodGet, "ls", url.Values{"arg": {ref}}, nil, &out)
}

// Cat writes a file's bytes to w; the daemon fetches it if it must.
func (c *Client) Cat(ctx context.Context, ref string, w io.Writer, o AccessOptions) error {
	q := url.Values{"arg": {ref}}
	if o.Purpose != "" {
		q.Set("purpose", o.Purpose)
	}
	if o.Case != "" {
		q.Set("case", o.Case)
	}
	if o.Request != "" {
		q.Set("request", o.Request)
	}
	resp, err := c.request(ctx, http.MethodGet, "cat", q, nil)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	if _, err := io.Copy(w, resp.Body); err != nil {
		return err
	}
	if msg := resp.Trailer.Get(streamErrorTrailer); msg != "" {
		return &APIError{Status: http.StatusInternalServerError, Message: msg}
	}
	return nil
}

// events reads a streamed answer, passing progress on, and decodes its
// result into out.
func (c *Client) events(resp *http.Response, progress func(int64), skipped func(string), out any) error {
	defer resp.Body.Close()
	sc := bufio.NewScanner(resp.Body)
	sc.Buffer(make([]byte, 64<<10), 64<<20)
	for sc.Scan() {
		var e Event
		if err := json.Unmarshal(sc.Bytes(), &e); err != nil {
			return fmt.Errorf("daemon API: %w", err)
		}
		switch {
		case e.Error != "":
			return &APIError{Status: http.StatusInternalServerError, Message: e.Error}
		case e.Result != nil:
			return json.Unmarshal(e.Result, out)
		case e.Skipped != "":
			if skipped != nil {
				skipped(e.Skipped)
			}
		case e.Bytes > 0:
			if progress != nil {
				progress(e.Bytes)
			}
		}
	}
	if err := sc.Err(); err != nil {
		return fmt.Errorf("daemon API: %w", err)
	}
	return errors.New("daemon API: the answer ended without a result")
}

// Add imports local paths through the daemon, which also announces them.
// progress is told the running total of bytes imported.
func (c *Client) Add(ctx context.Context, req AddRequest, progress func(total int64), skipped func(string)) (AddResult, error) {
	var res AddResult
	resp, err := c.request(ctx, http.MethodPost, "add", nil, req)
	if err != nil {
		return res, err
	}
	return res, c.events(resp, progress, skipped, &res)
}

// Get writes what ref names to req.Output, fetching it if it must.
func (c *Client) Get(ctx context.Context, req GetRequest, progress func(total int64)) (GetResult, error) {
	var out GetResult
	resp, err := c.request(ctx, http.MethodPost, "get", nil, req)
	if err != nil {
		return out, err
	}
	return out, c.events(resp, progress, nil, &out)
}

func cidQuery(roots []cid.Cid) url.Values {
	q := url.Values{}
	for _, c := range roots {
		q.Add("arg", c.String())
	}
	return q
}

// PinAdd pins DAGs the node holds.
func (c *Client) PinAdd(ctx context.Context, roots []cid.Cid) error {
	var out map[string]any
	return c.call(ctx, http.MethodPost, "pin/add", cidQuery(roots), nil, &out)
}

// Pins lists the pinned roots.
func (c *Client) Pins(ctx context.Context) ([]cid.Cid, error) {
	var out struct{ Pins []cid.Cid }
	return out.Pins, c.call(ctx, http.MethodGet, "pin/ls", nil, nil, &out)
}

// GC runs the store's garbage collection.
func (c *Client) GC(ctx context.Context) (storage.GCStats, error) {
	var st storage.GCStats
	return st, c.call(ctx, http.MethodPost, "repo/gc", nil, nil, &st)
}

// ChainStatus returns the chain's status.
func (c *Client) ChainStatus(ctx context.Context) (ChainStatus, error) {
	var st ChainStatus
	err := c.call(ctx, http.MethodGet, "chain/status", nil, nil, &st)
	return st, err
}

// Submit sends encoded transactions to the node.
func (c *Client) Submit(ctx context.Context, req SubmitRequest) ([]SubmitResult, error) {
	var res []SubmitResult
	err := c.call(ctx, http.MethodPost, "chain/submit", nil, req, &res)
	return res, err
}
