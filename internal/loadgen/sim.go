package loadgen

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strings"
	"time"
)

// Sim is a client of the Pinterest simulator's inspection and control API
// (/_sim/, see internal/pinterestsim): what a test or a benchmark reads and
// steers from outside the simulator's process.
type Sim struct {
	root      string // "http://127.0.0.1:8081"
	adAccount string
	hc        *http.Client
}

// NewSim returns a client for the simulator at root (its base URL without
// /v5) holding the lists in adAccount.
func NewSim(root, adAccount string) *Sim {
	return &Sim{
		root:      strings.TrimSuffix(strings.TrimRight(root, "/"), "/v5"),
		adAccount: adAccount,
		hc:        &http.Client{Timeout: 2 * time.Minute},
	}
}

// Root is the simulator's root URL; its API is under Root()+"/v5".
func (s *Sim) Root() string { return s.root }

// SimList is one customer list as GET /_sim/state shows it.
type SimList struct {
	ID                     string   `json:"id"`
	Name                   string   `json:"name"`
	ListType               string   `json:"list_type"`
	Records                []string `json:"records"`
	NumBatches             int64    `json:"num_batches"`
	NumUploadedUserRecords int64    `json:"num_uploaded_user_records"`
	NumRemovedUserRecords  int64    `json:"num_removed_user_records"`
}

// SimAudience is one audience as GET /_sim/state shows it.
type SimAudience struct {
	ID           string `json:"id"`
	Name         string `json:"name"`
	AudienceType string `json:"audience_type"`
}

// SimAccount is one ad account's lists and audiences.
type SimAccount struct {
	CustomerLists []SimList     `json:"customer_lists"`
	Audiences     []SimAudience `json:"audiences"`
}

// Account reads the ad account's part of GET /_sim/state.
func (s *Sim) Account(ctx context.Context) (SimAccount, error) {
	var st struct {
		AdAccounts map[string]SimAccount `json:"ad_accounts"`
	}
	if err := s.get(ctx, "/_sim/state", &st); err != nil {
		return SimAccount{}, err
	}
	acct, ok := st.AdAccounts[s.adAccount]
	if !ok {
		return SimAccount{}, fmt.Errorf("read simulator state: no ad account %s", s.adAccount)
	}
	return acct, nil
}

// ListKeyOf reads the audience key and list type from a list name pinlist
// gave it ("pinlist <namespace>:<id> <TYPE>[ - <name>]"); ok is false for a
// list pinlist does not manage.
func ListKeyOf(name string) (ListKey, bool) {
	f := strings.Fields(name)
	if len(f) < 3 || f[0] != "pinlist" || !strings.Contains(f[1], ":") {
		return ListKey{}, false
	}
	return ListKey{Audience: f[1], Type: f[2]}, true
}

// Memberships is the members of every list pinlist manages, by list, from
// the simulator's state, and the lists' IDs. Two lists for one audience and
// list type are an error: the connector must never make a second one.
func (s *Sim) Memberships(ctx context.Context) (map[ListKey][]string, map[ListKey]string, error) {
	acct, err := s.Account(ctx)
	if err != nil {
		return nil, nil, err
	}
	return memberships(acct)
}

func memberships(acct SimAccount) (map[ListKey][]string, map[ListKey]string, error) {
	members := map[ListKey][]string{}
	ids := map[ListKey]string{}
	for _, l := range acct.CustomerLists {
		k, ok := ListKeyOf(l.Name)
		if !ok {
			continue
		}
		if k.Type != l.ListType {
			return nil, nil, fmt.Errorf("list %s is named for type %s but has type %s", l.ID, k.Type, l.ListType)
		}
		if other, dup := ids[k]; dup {
			return nil, nil, fmt.Errorf("two customer lists for %s: %s and %s", k, other, l.ID)
		}
		ids[k] = l.ID
		members[k] = l.Records
	}
	return members, ids, nil
}

// Records reads one list's members, sorted.
func (s *Sim) Records(ctx context.Context, listID string) ([]string, error) {
	var out struct {
		Records []string `json:"records"`
	}
	err := s.get(ctx, "/_sim/ad_accounts/"+url.PathEscape(s.adAccount)+"/customer_lists/"+url.PathEscape(listID)+"/records", &out)
	return out.Records, err
}

// Calls reads the API requests the simulator has served, by route name
// (e.g. "customer_lists.update"), faulted ones included.
func (s *Sim) Calls(ctx context.Context) (map[string]int, error) {
	c, err := s.CallCounts(ctx)
	return c.Routes, err
}

// CallCounts is GET /_sim/calls read leniently: the calls by route and,
// when the simulator reports them, the 429 answers among them.
type CallCounts struct {
	Routes map[string]int
	// Throttled is the calls answered 429; ThrottledKnown is false when the
	// simulator does not report them (then Throttled is 0).
	Throttled      int
	ThrottledKnown bool
}

// CallCounts reads GET /_sim/calls (see ParseCalls).
func (s *Sim) CallCounts(ctx context.Context) (CallCounts, error) {
	var raw json.RawMessage
	if err := s.get(ctx, "/_sim/calls", &raw); err != nil {
		return CallCounts{}, err
	}
	c, err := ParseCalls(raw)
	if err != nil {
		return CallCounts{}, fmt.Errorf("GET /_sim/calls: %w", err)
	}
	return c, nil
}

// ParseCalls reads pinterestsim's GET /_sim/calls answer: requests per
// route ({"customer_lists.update": 7, ...}), and the 429 answers of a
// route under "<route>.429", a key that appears once the route has
// answered one (so its absence means none).
func ParseCalls(raw []byte) (CallCounts, error) {
	var m map[string]int
	if err := json.Unmarshal(raw, &m); err != nil {
		return CallCounts{}, fmt.Errorf("read the call counts: %w", err)
	}
	c := CallCounts{Routes: map[string]int{}, ThrottledKnown: true}
	for k, n := range m {
		if route, ok := strings.CutSuffix(k, ".429"); ok && route != "" {
			c.Throttled += n
			continue
		}
		c.Routes[k] += n
	}
	return c, nil
}

// Fault is the body of POST /_sim/faults.
type Fault struct {
	Route             string  `json:"route,omitempty"`
	Rate429           float64 `json:"rate_429,omitempty"`
	Rate500           float64 `json:"rate_500,omitempty"`
	Rate503           float64 `json:"rate_503,omitempty"`
	RetryAfterSeconds float64 `json:"retry_after_seconds,omitempty"`
	LatencyMS         int64   `json:"latency_ms,omitempty"`
	FailNext          int     `json:"fail_next,omitempty"`
	FailStatus        int     `json:"fail_status,omitempty"`
	MatchPath         string  `json:"match_path,omitempty"`
}

// SetFault sets the fault of a route ("*" or empty: every route without
// its own).
func (s *Sim) SetFault(ctx context.Context, f Fault) error {
	return s.send(ctx, http.MethodPost, "/_sim/faults", f, nil)
}

// ClearFaults removes every fault.
func (s *Sim) ClearFaults(ctx context.Context) error {
	return s.send(ctx, http.MethodDelete, "/_sim/faults", nil, nil)
}

// ExpireTokens makes every access token the simulator issued expire now.
func (s *Sim) ExpireTokens(ctx context.Context) error {
	return s.send(ctx, http.MethodPost, "/_sim/expire_tokens", nil, nil)
}

// IssueToken has the simulator issue a token pair for an OAuth client it
// knows, as its authorisation flow would.
func (s *Sim) IssueToken(ctx context.Context, clientID string, scopes []string) (access, refresh string, err error) {
	var out struct {
		AccessToken  string `json:"access_token"`
		RefreshToken string `json:"refresh_token"`
	}
	in := struct {
		ClientID string   `json:"client_id"`
		Scopes   []string `json:"scopes"`
	}{clientID, scopes}
	if err := s.send(ctx, http.MethodPost, "/_sim/tokens", in, &out); err != nil {
		return "", "", err
	}
	if out.AccessToken == "" || out.RefreshToken == "" {
		return "", "", errors.New("issue a simulator token: the answer holds no token pair")
	}
	return out.AccessToken, out.RefreshToken, nil
}

// WaitReady polls the simulator until it answers or ctx ends.
func (s *Sim) WaitReady(ctx context.Context) error {
	return waitFor(ctx, func(ctx context.Context) error {
		_, err := s.Calls(ctx)
		return err
	})
}

// waitFor calls try every 50ms until it succeeds or ctx ends.
func waitFor(ctx context.Context, try func(context.Context) error) error {
	t := time.NewTicker(50 * time.Millisecond)
	defer t.Stop()
	for {
		err := try(ctx)
		if err == nil {
			return nil
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("%w (last error: %w)", ctx.Err(), err)
		case <-t.C:
		}
	}
}

func (s *Sim) get(ctx context.Context, path string, out any) error {
	return s.send(ctx, http.MethodGet, path, nil, out)
}

// send makes one request to the control API and decodes a JSON answer into
// out (when not nil).
func (s *Sim) send(ctx context.Context, method, path string, in, out any) error {
	var body io.Reader
	if in != nil {
		b, err := json.Marshal(in)
		if err != nil {
			return fmt.Errorf("%s %s: encode: %w", method, path, err)
		}
		body = bytes.NewReader(b)
	}
	req, err := http.NewRequestWithContext(ctx, method, s.root+path, body)
	if err != nil {
		return fmt.Errorf("%s %s: %w", method, path, err)
	}
	if in != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	resp, err := s.hc.Do(req)
	if err != nil {
		return fmt.Errorf("%s %s: %w", method, path, err)
	}
	defer resp.Body.Close()
	if resp.StatusCode/100 != 2 {
		msg, _ := io.ReadAll(io.LimitReader(resp.Body, 512))
		return fmt.Errorf("%s %s: HTTP %d: %s", method, path, resp.StatusCode, bytes.TrimSpace(msg))
	}
	if out == nil {
		_, _ = io.Copy(io.Discard, resp.Body)
		return nil
	}
	if err := json.NewDecoder(resp.Body).Decode(out); err != nil {
		return fmt.Errorf("%s %s: decode: %w", method, path, err)
	}
	return nil
}
