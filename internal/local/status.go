package local

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"net"
	"net/http"
	"net/url"
	"os"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/pinlist/pinlist/internal/pinterest"
	"github.com/pinlist/pinlist/internal/queue"
	"github.com/pinlist/pinlist/internal/refresh"
	"github.com/pinlist/pinlist/internal/token"
)

// listNamePrefix starts the name of every customer list pinlist manages
// (internal/upload names them "pinlist <ns>:<id> <TYPE>[ - <name>]").
const listNamePrefix = "pinlist "

// statusCallTimeout bounds each Pinterest call of a status read.
const statusCallTimeout = 20 * time.Second

// StatusOptions say where ReadStatus looks.
type StatusOptions struct {
	// DataDir is the local stack's data directory (token file, queue).
	DataDir string
	// PinterestURL is the API v5 base URL the lists are read from; empty
	// means the built-in simulator of a running `pinlist serve` at SimAddr.
	PinterestURL string
	SimAddr      string
	// AdAccountID defaults to the token file's ad account, else
	// DefaultAdAccountID with the simulator.
	AdAccountID string
	// AlertBefore: a refresh token expiring within it gets a warning.
	// Default refresh.DefaultAlertBefore.
	AlertBefore time.Duration
	Now         func() time.Time
	HTTPClient  *http.Client
}

// Status is what `pinlist status` reports. Each part carries its own error,
// so one missing part does not hide the others. It holds no secrets.
type Status struct {
	DataDir      string       `json:"dataDir"`
	Token        *TokenStatus `json:"token,omitempty"`
	TokenError   string       `json:"tokenError,omitempty"`
	Queue        *QueueStatus `json:"queue,omitempty"`
	QueueError   string       `json:"queueError,omitempty"`
	PinterestURL string       `json:"pinterestUrl"`
	AdAccountID  string       `json:"adAccountId,omitempty"`
	Lists        []ListStatus `json:"lists"`
	ListsError   string       `json:"listsError,omitempty"`
}

// TokenStatus is the stored Pinterest connection. The refresh token's expiry
// is the connection's "account expiration date": after it a person must
// reconnect.
type TokenStatus struct {
	AccessTokenExpiresAt time.Time `json:"accessTokenExpiresAt"`
	AccessTokenDaysLeft  float64   `json:"accessTokenDaysLeft"`
	AccountExpiresAt     time.Time `json:"accountExpiresAt"`
	AccountDaysLeft      float64   `json:"accountDaysLeft"`
	LastRefresh          time.Time `json:"lastRefresh,omitzero"`
	Scope                string    `json:"scope,omitempty"`
	AdAccountID          string    `json:"adAccountId,omitempty"`
	Warning              string    `json:"warning,omitempty"`
	ReconnectCommand     string    `json:"reconnectCommand"`
}

// QueueStatus is the local queue now.
type QueueStatus struct {
	Depth            int     `json:"depth"` // waiting + in flight
	Waiting          int     `json:"waiting"`
	InFlight         int     `json:"inFlight"`
	DeadLetters      int     `json:"deadLetters"`
	Audiences        int     `json:"audiences"` // groups with live messages
	OldestAgeSeconds float64 `json:"oldestAgeSeconds"`
}

// ListStatus is one customer list pinlist manages.
type ListStatus struct {
	ID       string `json:"id"`
	Name     string `json:"name"`
	Status   string `json:"status"`
	Uploaded int64  `json:"uploadedRecords"`
	Removed  int64  `json:"removedRecords"`
	// AudienceSize is the size Pinterest reports for the list's
	// CUSTOMER_LIST audience, when it reports one.
	AudienceSize *int64 `json:"audienceSize,omitempty"`
	// Members is the exact member count, known from the simulator only.
	Members *int `json:"members,omitempty"`
}

// ReadStatus reads the token file and the queue of opts.DataDir, and the
// managed lists from Pinterest (or the simulator) with the stored token. It
// opens the queue without taking it over, so it runs beside `pinlist serve`.
func ReadStatus(ctx context.Context, opts StatusOptions) Status {
	if opts.DataDir == "" {
		opts.DataDir = DefaultDataDir
	}
	if opts.SimAddr == "" {
		opts.SimAddr = DefaultSimAddr
	}
	if opts.AlertBefore <= 0 {
		opts.AlertBefore = refresh.DefaultAlertBefore
	}
	if opts.Now == nil {
		opts.Now = time.Now
	}
	if opts.HTTPClient == nil {
		opts.HTTPClient = &http.Client{Timeout: statusCallTimeout}
	}
	st := Status{DataDir: opts.DataDir, PinterestURL: opts.PinterestURL, Lists: []ListStatus{}}
	if st.PinterestURL == "" {
		st.PinterestURL = "http://" + opts.SimAddr + "/v5"
	}

	store := token.FileStore{Path: TokenPath(opts.DataDir)}
	tok, err := store.Load(ctx)
	switch {
	case errors.Is(err, token.ErrNotFound) && opts.PinterestURL == "":
		st.TokenError = "no token yet: pinlist serve provisions one for its simulator at start"
	case errors.Is(err, token.ErrNotFound):
		st.TokenError = "no Pinterest token: run pinlist connect --store file:" + store.Path
	case err != nil:
		st.TokenError = err.Error()
	default:
		st.Token = tokenStatus(tok, opts.Now(), opts.AlertBefore, store.Path)
	}

	if qs, err := readQueueStatus(ctx, opts.DataDir); err != nil {
		st.QueueError = err.Error()
	} else {
		st.Queue = qs
	}

	st.AdAccountID = opts.AdAccountID
	if st.AdAccountID == "" {
		st.AdAccountID = tok.AdAccountID
	}
	if st.AdAccountID == "" && opts.PinterestURL == "" {
		st.AdAccountID = DefaultAdAccountID
	}
	switch {
	case st.Token == nil:
		st.ListsError = "no token to read the lists with"
	case st.AdAccountID == "":
		st.ListsError = "no ad account: set PINTEREST_AD_ACCOUNT_ID"
	default:
		lists, err := readLists(ctx, opts, st.PinterestURL, st.AdAccountID, store)
		if err != nil {
			st.ListsError = err.Error()
		}
		st.Lists = append(st.Lists, lists...)
	}
	return st
}

func tokenStatus(t token.Token, now time.Time, alertBefore time.Duration, path string) *TokenStatus {
	ts := &TokenStatus{
		AccessTokenExpiresAt: t.AccessTokenExpiresAt.UTC(),
		AccessTokenDaysLeft:  roundDays(t.DaysToAccessTokenExpiry(now)),
		AccountExpiresAt:     t.RefreshTokenExpiresAt.UTC(),
		AccountDaysLeft:      roundDays(t.DaysToRefreshTokenExpiry(now)),
		LastRefresh:          t.RefreshedAt.UTC(),
		Scope:                t.Scope,
		AdAccountID:          t.AdAccountID,
		ReconnectCommand:     "pinlist connect --store file:" + path,
	}
	switch {
	case t.RefreshTokenExpiresAt.IsZero():
		ts.Warning = "the token file has no refresh token expiry: reconnect to be sure"
	case !t.RefreshTokenExpiresAt.After(now):
		ts.Warning = "the connection has expired: reconnect now"
	case t.RefreshTokenExpiresAt.Sub(now) < alertBefore:
		ts.Warning = fmt.Sprintf("the connection expires in %.1f days: reconnect before then", ts.AccountDaysLeft)
	case !t.AccessTokenExpiresAt.After(now):
		ts.Warning = "the access token has expired: the refresh (pinlist serve) renews it"
	}
	return ts
}

func roundDays(d float64) float64 { return float64(int64(d*10)) / 10 }

// readQueueStatus reads the queue's counts, without creating a queue where
// there is none.
func readQueueStatus(ctx context.Context, dataDir string) (*QueueStatus, error) {
	path := QueuePath(dataDir)
	if _, err := os.Stat(path); errors.Is(err, fs.ErrNotExist) {
		return &QueueStatus{}, nil
	} else if err != nil {
		return nil, fmt.Errorf("read the queue: %w", err)
	}
	q, err := queue.OpenLocal(ctx, queue.LocalOptions{Path: path})
	if err != nil {
		return nil, fmt.Errorf("read the queue: %w", err)
	}
	st, err := q.Stats(ctx)
	cerr := q.Close()
	if err != nil {
		return nil, fmt.Errorf("read the queue: %w", err)
	}
	if cerr != nil {
		return nil, fmt.Errorf("read the queue: %w", cerr)
	}
	return &QueueStatus{
		Depth:            st.Queued + st.InFlight,
		Waiting:          st.Queued,
		InFlight:         st.InFlight,
		DeadLetters:      st.DeadLetters,
		Audiences:        st.Groups,
		OldestAgeSeconds: st.OldestAge.Seconds(),
	}, nil
}

// readLists lists the ad account's pinlist customer lists, with the sizes of
// their audiences, and exact member counts when the API is a simulator.
func readLists(ctx context.Context, opts StatusOptions, apiURL, adAccount string, store token.Store) ([]ListStatus, error) {
	client, err := pinterest.NewClient(adAccount,
		pinterest.WithBaseURL(apiURL),
		pinterest.WithTokenSource(token.NewSource(store)),
		pinterest.WithHTTPClient(opts.HTTPClient),
		pinterest.WithRetry(pinterest.RetryPolicy{MaxAttempts: 2}),
	)
	if err != nil {
		return nil, fmt.Errorf("read the lists: %w", err)
	}
	var lists []ListStatus
	for l, err := range client.CustomerLists(ctx) {
		if err != nil {
			return nil, fmt.Errorf("read the lists from %s: %w", apiURL, err)
		}
		if !strings.HasPrefix(l.Name, listNamePrefix) {
			continue
		}
		lists = append(lists, ListStatus{
			ID: l.ID, Name: l.Name, Status: l.Status,
			Uploaded: l.NumUploadedUserRecords, Removed: l.NumRemovedUserRecords,
		})
	}
	if len(lists) == 0 {
		return lists, nil
	}
	byList := map[string]*int64{}
	for a, err := range client.Audiences(ctx) {
		if err != nil {
			return lists, fmt.Errorf("read the audiences from %s: %w", apiURL, err)
		}
		if a.Rule.CustomerListID != "" && a.Size != nil {
			byList[a.Rule.CustomerListID] = a.Size
		}
	}
	for i := range lists {
		lists[i].AudienceSize = byList[lists[i].ID]
	}
	if root, ok := simulatorRoot(apiURL); ok {
		for i := range lists {
			n, err := simulatorMembers(ctx, opts.HTTPClient, root, adAccount, lists[i].ID)
			if err != nil {
				break // not a simulator after all (or it went away): keep what the API said
			}
			lists[i].Members = &n
		}
	}
	return lists, nil
}

// simulatorRoot returns the root URL of a simulator's inspection API for an
// API base URL on a loopback address; only there is one looked for.
func simulatorRoot(apiURL string) (string, bool) {
	u, err := url.Parse(apiURL)
	if err != nil || u.Scheme != "http" {
		return "", false
	}
	host := u.Hostname()
	if ip := net.ParseIP(host); host != "localhost" && (ip == nil || !ip.IsLoopback()) {
		return "", false
	}
	return u.Scheme + "://" + u.Host, true
}

// simulatorMembers reads a list's members from the simulator's inspection
// API and returns how many there are.
func simulatorMembers(ctx context.Context, hc *http.Client, root, adAccount, listID string) (int, error) {
	u := root + "/_sim/ad_accounts/" + url.PathEscape(adAccount) + "/customer_lists/" + url.PathEscape(listID) + "/records"
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, u, nil)
	if err != nil {
		return 0, err
	}
	resp, err := hc.Do(req)
	if err != nil {
		return 0, err
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return 0, fmt.Errorf("simulator records: status %d", resp.StatusCode)
	}
	var body struct {
		Records []json.RawMessage `json:"records"`
	}
	if err := json.NewDecoder(io.LimitReader(resp.Body, 256<<20)).Decode(&body); err != nil {
		return 0, fmt.Errorf("simulator records: %w", err)
	}
	return len(body.Records), nil
}

// WriteText prints the status for people.
func (s Status) WriteText(w io.Writer) error {
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	date := func(t time.Time) string { return t.Format("2006-01-02 15:04 MST") }
	fmt.Fprintf(tw, "data dir:\t%s\n", s.DataDir)
	fmt.Fprintln(tw, "\nPinterest connection")
	if t := s.Token; t != nil {
		fmt.Fprintf(tw, "  account expiration date:\t%s\t(%.1f days left; the refresh token's expiry: reconnect before it)\n", date(t.AccountExpiresAt), t.AccountDaysLeft)
		fmt.Fprintf(tw, "  access token expires:\t%s\t(%.1f days left; refreshed automatically)\n", date(t.AccessTokenExpiresAt), t.AccessTokenDaysLeft)
		last := "never"
		if !t.LastRefresh.IsZero() {
			last = date(t.LastRefresh)
		}
		fmt.Fprintf(tw, "  last refresh:\t%s\n", last)
		if t.AdAccountID != "" {
			fmt.Fprintf(tw, "  ad account:\t%s\n", t.AdAccountID)
		}
		if t.Warning != "" {
			fmt.Fprintf(tw, "  WARNING:\t%s (%s)\n", t.Warning, t.ReconnectCommand)
		}
	} else {
		fmt.Fprintf(tw, "  token:\t%s\n", s.TokenError)
	}
	fmt.Fprintln(tw, "\nQueue")
	if q := s.Queue; q != nil {
		fmt.Fprintf(tw, "  depth:\t%d messages (%d waiting, %d in flight) for %d audiences\n", q.Depth, q.Waiting, q.InFlight, q.Audiences)
		fmt.Fprintf(tw, "  dead letters:\t%d\n", q.DeadLetters)
		if q.Depth > 0 {
			fmt.Fprintf(tw, "  oldest message:\t%s old\n", (time.Duration(q.OldestAgeSeconds * float64(time.Second))).Round(time.Second))
		}
	} else {
		fmt.Fprintf(tw, "  error:\t%s\n", s.QueueError)
	}
	fmt.Fprintf(tw, "\nCustomer lists (%s, ad account %s)\n", s.PinterestURL, s.AdAccountID)
	if err := tw.Flush(); err != nil {
		return err
	}
	if s.ListsError != "" {
		fmt.Fprintf(w, "  unavailable: %s\n", s.ListsError)
	}
	if len(s.Lists) == 0 && s.ListsError == "" {
		fmt.Fprintln(w, "  none yet")
	}
	if len(s.Lists) > 0 {
		tw = tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
		fmt.Fprintln(tw, "  ID\tSTATUS\tMEMBERS\tUPLOADED\tREMOVED\tAUDIENCE SIZE\tNAME")
		for _, l := range s.Lists {
			members, size := "-", "-"
			if l.Members != nil {
				members = fmt.Sprint(*l.Members)
			}
			if l.AudienceSize != nil {
				size = fmt.Sprint(*l.AudienceSize)
			}
			fmt.Fprintf(tw, "  %s\t%s\t%s\t%d\t%d\t%s\t%s\n", l.ID, l.Status, members, l.Uploaded, l.Removed, size, l.Name)
		}
		if err := tw.Flush(); err != nil {
			return err
		}
	}
	return nil
}
