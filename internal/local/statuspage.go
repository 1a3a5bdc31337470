package local

import (
	"bytes"
	"cmp"
	"context"
	"crypto/subtle"
	"embed"
	"fmt"
	"html/template"
	"log/slog"
	"net"
	"net/http"
	"slices"
	"strings"
	"time"
)

// PathStatus is the status page's route on the ingest address.
const PathStatus = "/status"

// statusPageRefresh is how often the page reloads itself, in seconds.
const statusPageRefresh = 10

// callSampleEvery is how often the stack samples the Pinterest client's
// counters into the per-minute history (a page view samples too).
const callSampleEvery = 10 * time.Second

//go:embed statuspage.html
var statusPageFS embed.FS

var statusPageTemplate = template.Must(template.New("statuspage.html").Funcs(template.FuncMap{
	"date": func(t time.Time) string {
		if t.IsZero() {
			return "never"
		}
		return t.UTC().Format("2006-01-02 15:04 UTC")
	},
	"isodate": func(t time.Time) string { return t.UTC().Format(time.RFC3339) },
	"days":    func(d float64) string { return fmt.Sprintf("%.1f", d) },
	"age": func(s *float64) string {
		if s == nil {
			return "unknown"
		}
		return seconds(*s).String()
	},
}).ParseFS(statusPageFS, "statuspage.html"))

// statusNeedsToken reports whether the status page on a listener at addr
// asks for the ingest token: everywhere but on a loopback address, where
// only this machine reaches it (a browser cannot send a bearer token).
func statusNeedsToken(addr net.Addr) bool {
	tcp, ok := addr.(*net.TCPAddr)
	return !ok || !tcp.IP.IsLoopback()
}

// routes are the ingest address's routes: the status page (asking for the
// ingest token when needsToken), and the ingest handler for everything
// else.
func (s *Stack) routes(ingest http.Handler, needsToken bool) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path == PathStatus {
			s.serveStatus(w, r, needsToken)
			return
		}
		ingest.ServeHTTP(w, r)
	})
}

// serveStatus answers GET /status with the status page.
func (s *Stack) serveStatus(w http.ResponseWriter, r *http.Request, needsToken bool) {
	h := w.Header()
	h.Set("Cache-Control", "no-store")
	h.Set("X-Content-Type-Options", "nosniff")
	h.Set("Referrer-Policy", "no-referrer")
	h.Set("Content-Security-Policy", "default-src 'none'; style-src 'unsafe-inline'; frame-ancestors 'none'")
	if r.Method != http.MethodGet && r.Method != http.MethodHead {
		h.Set("Allow", "GET, HEAD")
		http.Error(w, "method not allowed; use GET", http.StatusMethodNotAllowed)
		return
	}
	if needsToken && !s.validIngestToken(r.Header.Get("Authorization")) {
		h.Set("WWW-Authenticate", `Bearer realm="pinlist"`)
		http.Error(w, "unauthorized: this status page is not on a loopback address, so it needs the ingest token (Authorization: Bearer <token>)", http.StatusUnauthorized)
		return
	}
	page := s.statusPage(r.Context(), time.Now())
	var buf bytes.Buffer
	if err := statusPageTemplate.Execute(&buf, page); err != nil {
		s.log.LogAttrs(r.Context(), slog.LevelError, "render the status page", slog.String("error", err.Error()))
		http.Error(w, "the status page could not be rendered; see the log", http.StatusInternalServerError)
		return
	}
	h.Set("Content-Type", "text/html; charset=utf-8")
	_, _ = w.Write(buf.Bytes())
}

// validIngestToken reports whether an Authorization header value carries
// the ingest token, compared in constant time.
func (s *Stack) validIngestToken(header string) bool {
	scheme, tok, ok := strings.Cut(header, " ")
	if !ok || !strings.EqualFold(scheme, "Bearer") {
		return false
	}
	return subtle.ConstantTimeCompare([]byte(strings.TrimSpace(tok)), []byte(s.ingestToken)) == 1
}

// ReadStatus reads the stack's status as `pinlist status` would beside it:
// the token file and the queue in its data directory, the lists from its
// Pinterest API (or simulator).
func (s *Stack) ReadStatus(ctx context.Context) Status {
	opts := StatusOptions{DataDir: s.cfg.DataDir, AdAccountID: s.adAccount, Ledger: s.ledger.SQLite}
	if s.sim != nil {
		opts.SimAddr = strings.TrimPrefix(s.sim.root, "http://")
	} else {
		opts.PinterestURL = s.apiURL
	}
	return ReadStatus(ctx, opts)
}

// statusPage is what the status page template renders.
type statusPage struct {
	Status         Status
	Generated      time.Time
	Refresh        int
	RedriveCommand string
	Audiences      []audienceView
	Calls          callChart
	Errors         []RecentError
	ErrorsKept     int
}

// audienceView is one audience and its lists.
type audienceView struct {
	Key        string // "<ns>:<id>"
	Name       string // the display name in the list names, if any
	Lists      []listView
	LastChange time.Time
}

// listView is one list and what the stack applied to it.
type listView struct {
	ListStatus
	Type     string
	Activity ListActivity
}

// statusPage gathers the page's facts.
func (s *Stack) statusPage(ctx context.Context, now time.Time) statusPage {
	st := s.ReadStatus(ctx)
	s.calls.sample(now)
	p := statusPage{
		Status:         st,
		Generated:      now,
		Refresh:        statusPageRefresh,
		RedriveCommand: "pinlist redrive --data-dir " + s.cfg.DataDir,
		Audiences:      groupLists(st.Lists, func(key string) ListActivity { return s.changes.get(now, key) }),
		Calls:          newCallChart(s.calls.perMinute(now), now),
		Errors:         s.errs.recent(),
		ErrorsKept:     maxRecentErrors,
	}
	return p
}

// groupLists groups lists by audience, from their names ("pinlist
// <ns>:<id> <TYPE>[ - <display name>]"), with each list's activity; lists
// named otherwise form an audience of their own each.
func groupLists(lists []ListStatus, activity func(key string) ListActivity) []audienceView {
	byKey := map[string]*audienceView{}
	var order []string
	for _, l := range lists {
		rest, ours := strings.CutPrefix(l.Name, listNamePrefix)
		key, rest, _ := strings.Cut(rest, " ")
		typ, name, _ := strings.Cut(rest, " - ")
		if !ours || key == "" || typ == "" || strings.Contains(typ, " ") {
			key, typ, name = l.Name, "?", ""
		}
		a := byKey[key]
		if a == nil {
			a = &audienceView{Key: key}
			byKey[key] = a
			order = append(order, key)
		}
		if a.Name == "" {
			a.Name = name
		}
		act := activity(key + " " + typ)
		if act.LastChange.After(a.LastChange) {
			a.LastChange = act.LastChange
		}
		a.Lists = append(a.Lists, listView{ListStatus: l, Type: typ, Activity: act})
	}
	slices.Sort(order)
	out := make([]audienceView, 0, len(order))
	for _, k := range order {
		a := byKey[k]
		slices.SortFunc(a.Lists, func(x, y listView) int { return cmp.Compare(x.Type, y.Type) })
		out = append(out, *a)
	}
	return out
}

// Geometry of the calls chart, in SVG user units.
const (
	chartWidth  = 600
	chartHeight = 160
	chartLeft   = 40 // room for the axis labels
	chartTop    = 10
	chartBottom = 20 // room for the time labels
)

// callChart is the per-minute calls chart, laid out for the template.
type callChart struct {
	Width, Height      int
	Left, Top, Bottom  int // the plot area's edges
	Right              int
	Max                int64 // the y axis' top
	Calls, RateLimited int64 // totals over the hour
	Peak               int64
	Bars               []chartBar
	StartLabel         string
	EndLabel           string
}

// chartBar is one minute: its calls bar and, over it, its 429s bar.
type chartBar struct {
	Minute             string
	Calls, RateLimited int64
	X, W               float64
	CallsY, CallsH     float64
	LimitedY, LimitedH float64
}

// newCallChart lays out perMinute (oldest first, the last one now's
// minute) as bars.
func newCallChart(perMinute [historyMinutes][2]int64, now time.Time) callChart {
	c := callChart{
		Width: chartWidth, Height: chartHeight,
		Left: chartLeft, Top: chartTop, Bottom: chartHeight - chartBottom, Right: chartWidth - 4,
	}
	for _, v := range perMinute {
		c.Calls += v[0]
		c.RateLimited += v[1]
		c.Peak = max(c.Peak, v[0], v[1])
	}
	c.Max = niceCeil(c.Peak)
	plotH := float64(c.Bottom - c.Top)
	slot := float64(c.Right-c.Left) / historyMinutes
	first := now.Truncate(time.Minute).Add(-(historyMinutes - 1) * time.Minute)
	for k, v := range perMinute {
		b := chartBar{
			Minute: first.Add(time.Duration(k) * time.Minute).UTC().Format("15:04 UTC"),
			Calls:  v[0], RateLimited: v[1],
			X: float64(c.Left) + float64(k)*slot + 0.5, W: slot - 1,
		}
		b.CallsH = plotH * float64(v[0]) / float64(c.Max)
		b.CallsY = float64(c.Bottom) - b.CallsH
		b.LimitedH = plotH * float64(v[1]) / float64(c.Max)
		b.LimitedY = float64(c.Bottom) - b.LimitedH
		c.Bars = append(c.Bars, b)
	}
	c.StartLabel = first.UTC().Format("15:04")
	c.EndLabel = now.UTC().Format("15:04")
	return c
}

// niceCeil is the smallest of 1, 2 or 5 times a power of ten that is at
// least n (and at least 1): the chart's y axis top.
func niceCeil(n int64) int64 {
	for p := int64(1); ; p *= 10 {
		for _, m := range []int64{1, 2, 5} {
			if m*p >= n {
				return m * p
			}
		}
	}
}
