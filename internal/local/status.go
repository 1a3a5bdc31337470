package local

import (
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"log/slog"
	"math"
	"net/http"
	"os"
	"slices"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/pinlist/pinlist/internal/audience"
	"github.com/pinlist/pinlist/internal/ledger"
	"github.com/pinlist/pinlist/internal/pinterest"
	"github.com/pinlist/pinlist/internal/queue"
	"github.com/pinlist/pinlist/internal/refresh"
	"github.com/pinlist/pinlist/internal/token"
	"github.com/pinlist/pinlist/internal/upload"
)

// listNamePrefix starts the name of every customer list pinlist manages
// (internal/upload names them "pinlist <ns>:<id> <TYPE>[ - <name>]").
const listNamePrefix = "pinlist "

// statusCallTimeout bounds each Pinterest or AWS call of a status read.
const statusCallTimeout = 20 * time.Second

// Queue kinds of a QueueStatus.
const (
	QueueKindLocal = "local"
	QueueKindSQS   = "sqs"
)

// StatusOptions say where ReadStatus looks. The zero value (but DataDir)
// reads the local stack: the token file and the queue in DataDir, and the
// lists from the simulator of a running `pinlist serve`.
type StatusOptions struct {
	// DataDir is the local stack's data directory: the default token file,
	// and the queue when SQS is nil.
	DataDir string
	// TokenStore is where the Pinterest token is read from, and
	// TokenStoreName how `--store` names it ("file:PATH" or
	// "secretsmanager:NAME_OR_ARN"; it goes into the reconnect command).
	// Default: the token file in DataDir.
	TokenStore     token.Store
	TokenStoreName string
	// SQS, when set, is the queue reported instead of the local one: the
	// AWS deployment's.
	SQS *SQSStatusOptions
	// SkipQueue and SkipLists, when not empty, leave that part out; the
	// text says why (e.g. "--no-lists").
	SkipQueue string
	SkipLists string
	// PinterestURL is the API v5 base URL the lists are read from; empty
	// means the built-in simulator of a running `pinlist serve` at SimAddr.
	PinterestURL string
	SimAddr      string
	// AdAccountID defaults to the stored token's ad account, else
	// DefaultAdAccountID with the simulator.
	AdAccountID string
	// AlertBefore: a refresh token expiring within it gets a warning.
	// Default refresh.DefaultAlertBefore.
	AlertBefore time.Duration
	Now         func() time.Time
	HTTPClient  *http.Client
	// Ledger counts the lists' members. Default: the local ledger in
	// DataDir's queue database (none when SQS is set and Ledger is nil).
	Ledger MemberCounter
}

// Status is what `pinlist status` reports. Each part carries its own error,
// so one missing part does not hide the others. It holds no secrets: no
// token, no client secret.
type Status struct {
	// Healthy is true when there is nothing to do: Warnings is empty.
	Healthy bool `json:"healthy"`
	// Warnings say what needs a person: a connection within the warning
	// threshold or expired, dead letters, a token or queue that could not
	// be read. The lists are a report, never a warning.
	Warnings     []string     `json:"warnings"`
	DataDir      string       `json:"dataDir,omitempty"`
	TokenStore   string       `json:"tokenStore"`
	Token        *TokenStatus `json:"token,omitempty"`
	TokenError   string       `json:"tokenError,omitempty"`
	Queue        *QueueStatus `json:"queue,omitempty"`
	QueueError   string       `json:"queueError,omitempty"`
	QueueSkipped string       `json:"queueSkipped,omitempty"`
	PinterestURL string       `json:"pinterestUrl"`
	AdAccountID  string       `json:"adAccountId,omitempty"`
	// Lists is absent when ListsSkipped says why, else an array (maybe
	// empty).
	Lists        []ListStatus `json:"lists,omitzero"`
	ListsError   string       `json:"listsError,omitempty"`
	ListsSkipped string       `json:"listsSkipped,omitempty"`
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
	// WarnDays is the threshold: fewer days left than this is a warning.
	WarnDays         float64 `json:"warnDays"`
	Warning          string  `json:"warning,omitempty"`
	ReconnectCommand string  `json:"reconnectCommand"`
}

// QueueStatus is the queue now: the local one (Kind "local") or the AWS
// deployment's SQS queue and its dead-letter queue (Kind "sqs", counts
// approximate as SQS reports them).
type QueueStatus struct {
	Kind          string `json:"kind"`
	URL           string `json:"url,omitempty"`           // sqs: the queue
	DeadLetterURL string `json:"deadLetterUrl,omitempty"` // sqs: its dead-letter queue
	Depth         int    `json:"depth"`                   // waiting + in flight + delayed
	Waiting       int    `json:"waiting"`
	InFlight      int    `json:"inFlight"`
	Delayed       int    `json:"delayed"` // sqs only: not yet deliverable
	DeadLetters   int    `json:"deadLetters"`
	// Audiences counts the groups with live messages (local only).
	Audiences *int `json:"audiences,omitempty"`
	// OldestAgeSeconds is the age of the oldest live message; null when
	// unknown, and then OldestAgeUnknown says why. For SQS it is CloudWatch's
	// ApproximateAgeOfOldestMessage at OldestAgeAt.
	OldestAgeSeconds *float64  `json:"oldestAgeSeconds"`
	OldestAgeAt      time.Time `json:"oldestAgeAt,omitzero"`
	OldestAgeUnknown string    `json:"oldestAgeUnknown,omitempty"`
}

// ListStatus is one customer list pinlist manages.
type ListStatus struct {
	// ID is Pinterest's customer list ID; empty while the list exists only
	// in the ledger (its first records are not sent yet).
	ID         string `json:"id"`
	Name       string `json:"name"`
	AudienceID string `json:"audience_id"` // the audience key, "<ns>:<id>"
	ListType   string `json:"list_type"`
	Status     string `json:"status"`
	Uploaded   int64  `json:"uploadedRecords"`
	Removed    int64  `json:"removedRecords"`
	// AudienceSize is the size Pinterest reports for the list's
	// CUSTOMER_LIST audience, when it reports one.
	AudienceSize *int64 `json:"audienceSize,omitempty"`
	// Members is the exact member count, from the membership ledger (the
	// members pinlist wants in the list; what is not sent yet included).
	Members *int `json:"members,omitempty"`
}

// MemberCounter counts each list's members: a ledger store.
type MemberCounter interface {
	Members(ctx context.Context) (map[ledger.List]int64, error)
}

// ReadStatus reads the stored token, the queue (the local one in
// opts.DataDir, or opts.SQS) and the managed lists from Pinterest (or the
// simulator) with the stored token, and says whether anything needs a
// person. It changes nothing: the local queue is opened without taking it
// over, so it runs beside `pinlist serve`, and the token is only read.
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
	defaultStore := opts.TokenStore == nil
	if defaultStore {
		path := TokenPath(opts.DataDir)
		opts.TokenStore, opts.TokenStoreName = token.FileStore{Path: path}, "file:"+path
	}
	st := Status{TokenStore: opts.TokenStoreName, PinterestURL: opts.PinterestURL}
	if st.PinterestURL == "" {
		st.PinterestURL = "http://" + opts.SimAddr + "/v5"
	}
	if defaultStore || opts.SQS == nil && opts.SkipQueue == "" {
		st.DataDir = opts.DataDir
	}

	reconnect := "pinlist connect --store " + opts.TokenStoreName
	loadCtx, cancel := context.WithTimeout(ctx, statusCallTimeout)
	tok, err := opts.TokenStore.Load(loadCtx)
	cancel()
	switch {
	case errors.Is(err, token.ErrNotFound) && defaultStore && opts.PinterestURL == "":
		st.TokenError = "no token yet: pinlist serve provisions one for its simulator at start"
	case errors.Is(err, token.ErrNotFound):
		st.TokenError = "no Pinterest token in " + opts.TokenStoreName + ": run " + reconnect
	case err != nil:
		st.TokenError = err.Error()
	default:
		st.Token = tokenStatus(tok, opts.Now(), opts.AlertBefore, reconnect)
	}

	switch {
	case opts.SkipQueue != "":
		st.QueueSkipped = opts.SkipQueue
	case opts.SQS != nil:
		st.Queue, err = readSQSStatus(ctx, *opts.SQS, opts.Now())
	default:
		st.Queue, err = readQueueStatus(ctx, opts.DataDir)
	}
	if err != nil {
		st.QueueError = err.Error()
	}

	st.AdAccountID = opts.AdAccountID
	if st.AdAccountID == "" {
		st.AdAccountID = tok.AdAccountID
	}
	if st.AdAccountID == "" && opts.PinterestURL == "" {
		st.AdAccountID = DefaultAdAccountID
	}
	switch {
	case opts.SkipLists != "":
		st.ListsSkipped = opts.SkipLists
	case st.Token == nil:
		st.Lists, st.ListsError = []ListStatus{}, "no token to read the lists with"
	case st.AdAccountID == "":
		st.Lists, st.ListsError = []ListStatus{}, "no ad account: set PINTEREST_AD_ACCOUNT_ID or give --ad-account"
	default:
		lists, err := readLists(ctx, opts, st.PinterestURL, st.AdAccountID, opts.TokenStore)
		if err != nil {
			st.ListsError = err.Error()
		}
		if err := addMembers(ctx, opts, &lists); err != nil {
			st.ListsError = strings.TrimPrefix(st.ListsError+"; "+err.Error(), "; ")
		}
		st.Lists = append([]ListStatus{}, lists...)
	}
	st.Warnings = st.warnings()
	st.Healthy = len(st.Warnings) == 0
	return st
}

// warnings are the reasons the status needs a person, in the order shown.
func (s Status) warnings() []string {
	w := []string{}
	switch {
	case s.Token != nil && s.Token.Warning != "":
		w = append(w, s.Token.Warning+" ("+s.Token.ReconnectCommand+")")
	case s.Token == nil:
		w = append(w, "Pinterest connection: "+s.TokenError)
	}
	switch {
	case s.Queue != nil && s.Queue.DeadLetters == 1:
		w = append(w, "1 dead letter: fix its cause, then run pinlist redrive")
	case s.Queue != nil && s.Queue.DeadLetters > 1:
		w = append(w, fmt.Sprintf("%d dead letters: fix their cause, then run pinlist redrive", s.Queue.DeadLetters))
	case s.QueueError != "":
		w = append(w, "the queue could not be read: "+s.QueueError)
	}
	return w
}

func tokenStatus(t token.Token, now time.Time, alertBefore time.Duration, reconnect string) *TokenStatus {
	ts := &TokenStatus{
		AccessTokenExpiresAt: t.AccessTokenExpiresAt.UTC(),
		AccessTokenDaysLeft:  roundDays(t.DaysToAccessTokenExpiry(now)),
		AccountExpiresAt:     t.RefreshTokenExpiresAt.UTC(),
		AccountDaysLeft:      roundDays(t.DaysToRefreshTokenExpiry(now)),
		LastRefresh:          t.RefreshedAt.UTC(),
		Scope:                t.Scope,
		AdAccountID:          t.AdAccountID,
		WarnDays:             alertBefore.Hours() / 24,
		ReconnectCommand:     reconnect,
	}
	switch {
	case t.RefreshTokenExpiresAt.IsZero():
		ts.Warning = "the stored token has no refresh token expiry: reconnect to be sure"
	case !t.RefreshTokenExpiresAt.After(now):
		ts.Warning = "the connection has expired: reconnect now"
	case t.RefreshTokenExpiresAt.Sub(now) < alertBefore:
		ts.Warning = fmt.Sprintf("the connection expires in %.1f days, within the %g-day warning threshold: reconnect before then", ts.AccountDaysLeft, ts.WarnDays)
	case !t.AccessTokenExpiresAt.After(now):
		ts.Warning = "the access token has expired: the refresh (pinlist serve, or the refresh function) should have renewed it; check its logs"
	}
	return ts
}

// roundDays rounds down to a tenth of a day, so a day count never claims
// more time than is left (an expired token shows a negative count).
func roundDays(d float64) float64 { return math.Floor(d*10) / 10 }

// readQueueStatus reads the local queue's counts, without creating a queue
// where there is none.
func readQueueStatus(ctx context.Context, dataDir string) (*QueueStatus, error) {
	path := QueuePath(dataDir)
	zero, none := 0.0, 0
	if _, err := os.Stat(path); errors.Is(err, fs.ErrNotExist) {
		return &QueueStatus{Kind: QueueKindLocal, Audiences: &none, OldestAgeSeconds: &zero}, nil
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
	age := st.OldestAge.Seconds()
	return &QueueStatus{
		Kind:             QueueKindLocal,
		Depth:            st.Queued + st.InFlight,
		Waiting:          st.Queued,
		InFlight:         st.InFlight,
		DeadLetters:      st.DeadLetters,
		Audiences:        &st.Groups,
		OldestAgeSeconds: &age,
	}, nil
}

// readLists lists the ad account's pinlist customer lists, with the sizes of
// their audiences, and exact member counts when the API is a simulator.
func readLists(ctx context.Context, opts StatusOptions, apiURL, adAccount string, store token.Store) ([]ListStatus, error) {
	client, err := pinterest.New(pinterest.Options{
		AdAccountID: adAccount,
		BaseURL:     apiURL,
		TokenSource: token.NewAccessTokenSource(store),
		HTTPClient:  opts.HTTPClient,
		Retry:       pinterest.RetryPolicy{MaxAttempts: 2},
		Logger:      slog.New(slog.DiscardHandler), // the status report says what failed
	})
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
		key, lt, _ := upload.ParseListName(l.Name)
		lists = append(lists, ListStatus{
			ID: l.ID, Name: l.Name, AudienceID: key, ListType: string(lt), Status: l.Status,
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
	return lists, nil
}

// addMembers sets each list's exact member count from the ledger, and adds
// the lists the ledger has that Pinterest does not have yet.
func addMembers(ctx context.Context, opts StatusOptions, lists *[]ListStatus) error {
	counter := opts.Ledger
	if counter == nil {
		if opts.SQS != nil {
			return nil
		}
		path := QueuePath(opts.DataDir)
		if _, err := os.Stat(path); errors.Is(err, fs.ErrNotExist) {
			return nil
		}
		q, err := queue.OpenLocal(ctx, queue.LocalOptions{Path: path})
		if err != nil {
			return fmt.Errorf("read the ledger: %w", err)
		}
		defer q.Close()
		store, err := ledger.NewSQLite(ctx, ledger.SQLiteOptions{DB: q.DB()})
		if err != nil {
			return fmt.Errorf("read the ledger: %w", err)
		}
		counter = store
	}
	members, err := counter.Members(ctx)
	if err != nil {
		return fmt.Errorf("read the ledger's member counts: %w", err)
	}
	seen := map[ledger.List]bool{}
	for i := range *lists {
		l := &(*lists)[i]
		key, lt, ok := upload.ParseListName(l.Name)
		if !ok {
			continue
		}
		ref, err := audience.ParseKey(key)
		if err != nil {
			continue
		}
		k := ledger.List{Audience: ref, Type: lt}
		if seen[k] {
			continue // a duplicate list the flusher does not use
		}
		seen[k] = true
		n := int(members[k])
		l.Members = &n
	}
	var missing []ListStatus
	for k, n := range members {
		if seen[k] {
			continue
		}
		n := int(n)
		missing = append(missing, ListStatus{
			Name: upload.ListName(k.Audience.Key(), k.Type, ""), AudienceID: k.Audience.Key(),
			ListType: string(k.Type), Status: "NOT_CREATED_YET", Members: &n,
		})
	}
	slices.SortFunc(missing, func(a, b ListStatus) int { return strings.Compare(a.Name, b.Name) })
	*lists = append(*lists, missing...)
	return nil
}

// WriteText prints the status for people.
func (s Status) WriteText(w io.Writer) error {
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	date := func(t time.Time) string { return t.Format("2006-01-02 15:04 MST") }
	if s.DataDir != "" {
		fmt.Fprintf(tw, "data dir:\t%s\n", s.DataDir)
	}
	fmt.Fprintf(tw, "token store:\t%s\n", s.TokenStore)
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
	s.writeQueue(tw)
	fmt.Fprintf(tw, "\nCustomer lists (%s, ad account %s)\n", s.PinterestURL, s.AdAccountID)
	if err := tw.Flush(); err != nil {
		return err
	}
	switch {
	case s.ListsSkipped != "":
		fmt.Fprintf(w, "  not read: %s\n", s.ListsSkipped)
	case s.ListsError != "":
		fmt.Fprintf(w, "  unavailable: %s\n", s.ListsError)
	case len(s.Lists) == 0:
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
	if s.Healthy {
		_, err := fmt.Fprintln(w, "\nHealth: OK")
		return err
	}
	fmt.Fprintln(w, "\nHealth: NEEDS ATTENTION")
	for _, warning := range s.Warnings {
		fmt.Fprintf(w, "  - %s\n", warning)
	}
	return nil
}

// writeQueue prints the queue section.
func (s Status) writeQueue(tw io.Writer) {
	q := s.Queue
	switch {
	case s.QueueSkipped != "":
		fmt.Fprintf(tw, "\nQueue\n  not read:\t%s\n", s.QueueSkipped)
		return
	case q == nil:
		fmt.Fprintf(tw, "\nQueue\n  error:\t%s\n", s.QueueError)
		return
	case q.Kind == QueueKindSQS:
		fmt.Fprintf(tw, "\nQueue (SQS)\n  queue:\t%s\n", q.URL)
		fmt.Fprintf(tw, "  depth:\t%d messages (%d waiting, %d in flight, %d delayed)\n", q.Depth, q.Waiting, q.InFlight, q.Delayed)
		fmt.Fprintf(tw, "  dead letters:\t%d\t(%s)\n", q.DeadLetters, q.DeadLetterURL)
	default:
		audiences := 0
		if q.Audiences != nil {
			audiences = *q.Audiences
		}
		fmt.Fprintln(tw, "\nQueue")
		fmt.Fprintf(tw, "  depth:\t%d messages (%d waiting, %d in flight) for %d audiences\n", q.Depth, q.Waiting, q.InFlight, audiences)
		fmt.Fprintf(tw, "  dead letters:\t%d\n", q.DeadLetters)
	}
	switch {
	case q.OldestAgeSeconds == nil:
		fmt.Fprintf(tw, "  oldest message:\t%s\n", q.OldestAgeUnknown)
	case q.Kind == QueueKindSQS:
		fmt.Fprintf(tw, "  oldest message:\t%s old\t(CloudWatch, %s)\n", seconds(*q.OldestAgeSeconds), q.OldestAgeAt.Format("2006-01-02 15:04 MST"))
	case q.Depth > 0:
		fmt.Fprintf(tw, "  oldest message:\t%s old\n", seconds(*q.OldestAgeSeconds))
	}
}

// seconds is a number of seconds as a duration, to the second.
func seconds(s float64) time.Duration {
	return time.Duration(s * float64(time.Second)).Round(time.Second)
}
