package node

import (
	"context"
	"fmt"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"time"

	"github.com/ipfs/go-cid"

	"auditnet/chain"
	"auditnet/chain/index"
)

// The audit trail as the API serves it: members and datasets from the
// committed state, events from the chain's index.

// MemberInfo is a member of the network.
type MemberInfo struct {
	PeerID    string `json:"PeerID"`
	Role      string `json:"Role"`
	Name      string `json:"Name"`
	Validator bool   `json:"Validator"`
}

// DatasetInfo is an anchored dataset.
type DatasetInfo struct {
	Root   string       `json:"Root"`
	Owner  string       `json:"Owner"`
	Name   string       `json:"Name"`
	Size   uint64       `json:"Size"`
	Policy chain.Policy `json:"Policy"`
	Height uint64       `json:"Height"`
	Time   time.Time    `json:"Time"`
}

// LogEntry is one event of the audit trail: a committed transaction's
// outcome, or a recorded non-service.
type LogEntry struct {
	Height uint64    `json:"Height"`
	Pos    uint32    `json:"Pos"`
	Time   time.Time `json:"Time"`
	Kind   string    `json:"Kind"`
	Tx     string    `json:"Tx"`
	// Request is the access request a served or non-service event settles.
	Request  string   `json:"Request,omitempty"`
	Sender   string   `json:"Sender,omitempty"`
	Signers  []string `json:"Signers,omitempty"`
	Dataset  string   `json:"Dataset,omitempty"`
	Agency   string   `json:"Agency,omitempty"`
	Auditor  string   `json:"Auditor,omitempty"`
	Provider string   `json:"Provider,omitempty"`
	Peer     string   `json:"Peer,omitempty"`
	Code     string   `json:"Code"`
	Reason   string   `json:"Reason,omitempty"`
	Purpose  string   `json:"Purpose,omitempty"`
	Case     string   `json:"Case,omitempty"`
	Bytes    uint64   `json:"Bytes,omitempty"`
	Blocks   uint64   `json:"Blocks,omitempty"`
	// Name, Size and Policy are an anchor's; Expires a grant's end.
	Name    string       `json:"Name,omitempty"`
	Size    uint64       `json:"Size,omitempty"`
	Policy  chain.Policy `json:"Policy,omitempty"`
	Expires *time.Time   `json:"Expires,omitempty"`
}

// LogQuery selects events of the audit trail; empty fields select all.
type LogQuery struct {
	Dataset string // a root CID, under any owner
	Auditor string // a peer ID
	Agency  string // a peer ID: the dataset's owner
	Since   time.Time
	Until   time.Time
	Kinds   []string
	Limit   int
}

// values is q as the API's query string.
func (q LogQuery) values() url.Values {
	v := url.Values{}
	set := func(k, s string) {
		if s != "" {
			v.Set(k, s)
		}
	}
	set("dataset", q.Dataset)
	set("auditor", q.Auditor)
	set("agency", q.Agency)
	if !q.Since.IsZero() {
		v.Set("since", q.Since.UTC().Format(time.RFC3339Nano))
	}
	if !q.Until.IsZero() {
		v.Set("until", q.Until.UTC().Format(time.RFC3339Nano))
	}
	for _, k := range q.Kinds {
		v.Add("kind", k)
	}
	if q.Limit > 0 {
		v.Set("limit", strconv.Itoa(q.Limit))
	}
	return v
}

// filter parses the API's query string into an index filter.
func logFilter(v url.Values) (index.Filter, error) {
	var f index.Filter
	if s := v.Get("dataset"); s != "" {
		c, err := cid.Decode(s)
		if err != nil {
			return f, fmt.Errorf("%w: dataset %q: %v", ErrBadRef, s, err)
		}
		f.Root = c
	}
	for _, p := range []struct {
		name string
		dst  *[]byte
	}{{"auditor", &f.Auditor}, {"agency", &f.Agency}} {
		if s := v.Get(p.name); s != "" {
			id, err := chain.ParsePeerID(s)
			if err != nil {
				return f, fmt.Errorf("%w: %s %q: %v", ErrBadRef, p.name, s, err)
			}
			*p.dst = id
		}
	}
	for _, b := range []struct {
		name string
		dst  *int64
	}{{"since", &f.Since}, {"until", &f.Until}} {
		if s := v.Get(b.name); s != "" {
			t, err := time.Parse(time.RFC3339Nano, s)
			if err != nil {
				return f, fmt.Errorf("%w: %s %q: want an RFC 3339 time", ErrBadRef, b.name, s)
			}
			*b.dst = t.UnixMilli()
		}
	}
	for _, k := range v["kind"] {
		f.Kinds = append(f.Kinds, index.Kind(k))
	}
	if s := v.Get("limit"); s != "" {
		n, err := strconv.Atoi(s)
		if err != nil || n < 0 {
			return f, fmt.Errorf("%w: limit %q", ErrBadRef, s)
		}
		f.Limit = n
	}
	return f, nil
}

func peerString(p []byte) string {
	if len(p) == 0 {
		return ""
	}
	return chain.PeerIDString(p)
}

func logEntry(ev *index.Event) LogEntry {
	e := LogEntry{
		Height: ev.Height, Pos: ev.Pos, Time: time.UnixMilli(ev.Time).UTC(), Kind: string(ev.Kind), Tx: ev.Tx.Cid.String(),
		Sender: peerString(ev.Sender), Agency: peerString(ev.Agency), Auditor: peerString(ev.Auditor),
		Provider: peerString(ev.Provider), Peer: peerString(ev.Peer), Code: ev.Code, Reason: ev.Reason,
		Purpose: ev.Purpose, Case: ev.Case, Bytes: ev.Bytes, Blocks: ev.Blocks,
	}
	if ev.Request != nil {
		e.Request = ev.Request.Cid.String()
	}
	for _, s := range ev.Signers {
		e.Signers = append(e.Signers, peerString(s))
	}
	if ev.Dataset != nil {
		e.Dataset = ev.Dataset.Root.Cid.String()
	}
	if a := ev.Anchor; a != nil {
		e.Name, e.Size, e.Policy = a.Name, a.Size, a.Policy
	}
	if ev.Expires != 0 {
		t := time.UnixMilli(ev.Expires).UTC()
		e.Expires = &t
	}
	return e
}

// maxLogEvents bounds one answer of the log endpoint without a limit.
const maxLogEvents = 100_000

func (d *Daemon) apiLog(w http.ResponseWriter, r *http.Request) {
	f, err := logFilter(r.URL.Query())
	if err != nil {
		writeError(w, http.StatusBadRequest, err)
		return
	}
	if f.Limit == 0 || f.Limit > maxLogEvents {
		f.Limit = maxLogEvents
	}
	evs, err := d.chain.index.Query(f)
	if err != nil {
		writeError(w, http.StatusBadRequest, err)
		return
	}
	out := make([]LogEntry, len(evs))
	for i := range evs {
		out[i] = logEntry(&evs[i])
	}
	writeJSON(w, map[string]any{"Events": out})
}

func (d *Daemon) apiMembers(w http.ResponseWriter, _ *http.Request) {
	out := []MemberInfo{}
	err := d.chain.store.StateRange(chain.MemberKeyPrefix, func(k, v []byte) error {
		p, rec, err := chain.DecodeMemberEntry(k, v)
		if err != nil {
			return err
		}
		out = append(out, MemberInfo{PeerID: peerString(p), Role: rec.Role, Name: rec.Name, Validator: rec.Validator})
		return nil
	})
	if err != nil {
		writeError(w, http.StatusInternalServerError, err)
		return
	}
	writeJSON(w, map[string]any{"Members": out})
}

// apiServed is this holder's own journal of the streams it served under
// access requests (the last few thousand), beside the chain's record.
func (d *Daemon) apiServed(w http.ResponseWriter, _ *http.Request) {
	writeJSON(w, map[string]any{"Streams": d.gate.served()})
}

func (d *Daemon) apiDatasets(w http.ResponseWriter, r *http.Request) {
	var owner []byte
	if s := r.URL.Query().Get("agency"); s != "" {
		var err error
		if owner, err = chain.ParsePeerID(s); err != nil {
			writeError(w, http.StatusBadRequest, fmt.Errorf("%w: agency %q: %v", ErrBadRef, s, err))
			return
		}
	}
	out := []DatasetInfo{}
	err := d.chain.store.StateRange(chain.DatasetKeyPrefix, func(k, v []byte) error {
		ds, rec, err := chain.DecodeDatasetEntry(k, v)
		if err != nil {
			return err
		}
		if owner == nil || string(owner) == string(ds.Owner) {
			out = append(out, DatasetInfo{Root: ds.Root.Cid.String(), Owner: peerString(ds.Owner), Name: rec.Name,
				Size: rec.Size, Policy: rec.Policy, Height: rec.Height, Time: time.UnixMilli(rec.Time).UTC()})
		}
		return nil
	})
	if err != nil {
		writeError(w, http.StatusInternalServerError, err)
		return
	}
	writeJSON(w, map[string]any{"Datasets": out})
}

// Log returns the audit trail's events that q selects, oldest first.
func (c *Client) Log(ctx context.Context, q LogQuery) ([]LogEntry, error) {
	var out struct{ Events []LogEntry }
	return out.Events, c.call(ctx, http.MethodGet, "log", q.values(), nil, &out)
}

// Members lists the network's members.
func (c *Client) Members(ctx context.Context) ([]MemberInfo, error) {
	var out struct{ Members []MemberInfo }
	return out.Members, c.call(ctx, http.MethodGet, "members", nil, nil, &out)
}

// Datasets lists the anchored datasets; agency, if not empty, selects one
// owner's.
func (c *Client) Datasets(ctx context.Context, agency string) ([]DatasetInfo, error) {
	q := url.Values{}
	if agency != "" {
		q.Set("agency", agency)
	}
	var out struct{ Datasets []DatasetInfo }
	return out.Datasets, c.call(ctx, http.MethodGet, "datasets", q, nil, &out)
}

// ParseKinds splits a comma-separated list of event kinds.
func ParseKinds(s string) []string {
	if s == "" {
		return nil
	}
	return strings.Split(s, ",")
}
