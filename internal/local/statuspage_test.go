package local

import (
	"bytes"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/http/httptest"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/pinlist/pinlist/internal/pinterest"
)

func TestStatusNeedsToken(t *testing.T) {
	for _, tc := range []struct {
		name string
		addr net.Addr
		want bool
	}{
		{"IPv4 loopback", &net.TCPAddr{IP: net.IPv4(127, 0, 0, 1), Port: 8080}, false},
		{"other IPv4 loopback", &net.TCPAddr{IP: net.IPv4(127, 1, 2, 3), Port: 8080}, false},
		{"IPv6 loopback", &net.TCPAddr{IP: net.IPv6loopback, Port: 8080}, false},
		{"every IPv4 address", &net.TCPAddr{IP: net.IPv4zero, Port: 8080}, true},
		{"every IPv6 address", &net.TCPAddr{IP: net.IPv6unspecified, Port: 8080}, true},
		{"a LAN address", &net.TCPAddr{IP: net.IPv4(192, 168, 1, 20), Port: 8080}, true},
		{"not TCP", &net.UnixAddr{Name: "/tmp/pinlist.sock", Net: "unix"}, true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if got := statusNeedsToken(tc.addr); got != tc.want {
				t.Errorf("statusNeedsToken(%v) = %v, want %v", tc.addr, got, tc.want)
			}
		})
	}
}

// TestStatusPageAuth: on loopback the page needs no token; bound elsewhere
// (the routes Start builds for such a listener) it answers 401 unless the
// request carries the ingest token.
func TestStatusPageAuth(t *testing.T) {
	s := newStack(t, nil)
	resp, err := http.Get(s.IngestURL() + PathStatus)
	if err != nil {
		t.Fatal(err)
	}
	page, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK || !strings.HasPrefix(resp.Header.Get("Content-Type"), "text/html") {
		t.Fatalf("GET /status on loopback without a token = %d %q, want 200 text/html:\n%s", resp.StatusCode, resp.Header.Get("Content-Type"), page)
	}
	if s.statusNeedsToken {
		t.Fatal("a stack on 127.0.0.1 asks for the token on /status")
	}

	// What Start sets up for a listener that is not on loopback.
	route := s.routes(http.NotFoundHandler(), true)
	for _, tc := range []struct {
		name, method, auth string
		want               int
	}{
		{"no token", http.MethodGet, "", http.StatusUnauthorized},
		{"wrong token", http.MethodGet, "Bearer not-the-token", http.StatusUnauthorized},
		{"not a bearer token", http.MethodGet, "Basic " + s.IngestToken(), http.StatusUnauthorized},
		{"the ingest token", http.MethodGet, "Bearer " + s.IngestToken(), http.StatusOK},
		{"the ingest token, HEAD", http.MethodHead, "Bearer " + s.IngestToken(), http.StatusOK},
		{"POST", http.MethodPost, "Bearer " + s.IngestToken(), http.StatusMethodNotAllowed},
	} {
		t.Run(tc.name, func(t *testing.T) {
			req := httptest.NewRequest(tc.method, PathStatus, nil)
			if tc.auth != "" {
				req.Header.Set("Authorization", tc.auth)
			}
			rec := httptest.NewRecorder()
			route.ServeHTTP(rec, req)
			if rec.Code != tc.want {
				t.Fatalf("%s /status with %q = %d, want %d: %s", tc.method, tc.auth, rec.Code, tc.want, rec.Body)
			}
			if tc.want == http.StatusUnauthorized {
				if rec.Header().Get("WWW-Authenticate") == "" {
					t.Error("401 without WWW-Authenticate")
				}
				if strings.Contains(rec.Body.String(), "Pinterest connection") {
					t.Error("401 answer shows the page")
				}
			}
		})
	}
}

// TestStatusPageShowsTheStack: the lists with their member counts and the
// adds applied, and the last errors without identifiers: a logged error
// carrying an email and a hash shows scrubbed; no email or hash sent
// appears anywhere on the page.
func TestStatusPageShowsTheStack(t *testing.T) {
	s := newStack(t, nil)
	var g gen
	p := profile{ids: []ident{g.email(), g.email(), g.email(), g.gaid()}, events: []membershipEvent{{audA, "realized", t0}}}
	s.mustAccept(t, body(t, p))
	m := newModel()
	m.add(p)
	waitMembership(t, s.SimulatorURL(), s.AdAccountID(), m.membership())
	waitFor(t, "the changes to be counted as applied", func() bool {
		pr, err := s.Progress(t.Context())
		return err == nil && pr.Applied == 4
	})
	_, emailHash := p.ids[0].hashed()
	s.log.With("component", "upload").Error("upload batch failed",
		"error", "add "+emailHash+" for "+strings.TrimSpace(p.ids[0].id)+" to list 123: status 500", "group", "ups:"+audA)

	resp, err := http.Get(s.IngestURL() + PathStatus)
	if err != nil {
		t.Fatal(err)
	}
	raw, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	page := string(raw)
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("GET /status = %d:\n%s", resp.StatusCode, page)
	}
	for _, want := range []string{
		`<html lang="en">`, `name="viewport"`, `http-equiv="refresh"`,
		"ups:" + audA, `<th scope="col" role="columnheader">`, `<caption>`, "<title id=\"calls-title\">", "<desc id=\"calls-desc\">",
		"upload batch failed: add [hash] for [email] to list 123: status 500",
		`id="ad-account">` + s.AdAccountID() + "<",
		`id="queue-depth">0<`, `id="dead-letters">0<`,
	} {
		if !strings.Contains(page, want) {
			t.Errorf("the page lacks %q", want)
		}
	}
	rows := listRows(page)
	if len(rows) != 2 {
		t.Fatalf("the page shows %d lists, want 2 (EMAIL and MAID):\n%s", len(rows), page)
	}
	for _, r := range rows {
		want := map[string]string{"EMAIL": "3", "MAID": "1"}[r.typ]
		if r.fields["members"] != want || r.fields["adds"] != want || r.fields["removes"] != "0" {
			t.Errorf("list %s (%s) shows %v, want %s members, %s adds, 0 removes", r.id, r.typ, r.fields, want, want)
		}
	}
	if m := regexp.MustCompile(`id="calls-total">(\d+)<`).FindStringSubmatch(page); m == nil || m[1] == "0" {
		t.Errorf("the page counts no Pinterest calls in the last hour (%v)", m)
	}
	assertNoIdentifiers(t, page, plainEmails(p), hashesOf(p))
}

// hashesOf are the hashes of every identity of profiles.
func hashesOf(profiles ...profile) []string {
	var out []string
	for _, p := range profiles {
		for _, i := range p.ids {
			_, h := i.hashed()
			out = append(out, h)
		}
	}
	return out
}

// assertNoIdentifiers fails if page holds an email, a hash or any run of 64
// hex digits.
func assertNoIdentifiers(t *testing.T, page string, emails, hashes []string) {
	t.Helper()
	lower := strings.ToLower(page)
	for _, e := range emails {
		if strings.Contains(lower, strings.ToLower(e)) {
			t.Errorf("the status page shows the email %q", e)
		}
	}
	for _, h := range hashes {
		if strings.Contains(lower, h) {
			t.Errorf("the status page shows the hash %s", h)
		}
	}
	if h := regexp.MustCompile(`[0-9a-fA-F]{64}`).FindString(page); h != "" {
		t.Errorf("the status page shows a 64-hex-digit value %s", h)
	}
}

// listRow is one list row of the page: its key ("<audience key>/<TYPE>"), type and data-field cells.
type listRow struct {
	id, typ string
	fields  map[string]string
}

var (
	rowPattern   = regexp.MustCompile(`(?s)<tr[^>]* data-list="([^"]+)"[^>]*>(.*?)</tr>`)
	typePattern  = regexp.MustCompile(`<th scope="row"[^>]*>([^<]*)</th>`)
	fieldPattern = regexp.MustCompile(`data-field="([a-z]+)"[^>]*>([^<]*)<`)
)

// listRows reads the list rows of a status page (as served, or as a
// browser's DOM dump).
func listRows(page string) []listRow {
	var rows []listRow
	for _, m := range rowPattern.FindAllStringSubmatch(page, -1) {
		r := listRow{id: m[1], fields: map[string]string{}}
		if tm := typePattern.FindStringSubmatch(m[2]); tm != nil {
			r.typ = tm[1]
		}
		for _, f := range fieldPattern.FindAllStringSubmatch(m[2], -1) {
			r.fields[f[1]] = strings.TrimSpace(f[2])
		}
		rows = append(rows, r)
	}
	return rows
}

func TestScrub(t *testing.T) {
	hash := strings.Repeat("ab12", 16)
	for _, tc := range []struct{ name, in, want string }{
		{"plain text", "upload batch failed: status 500", "upload batch failed: status 500"},
		{"an email", "bad member Person.1@Example.COM in list", "bad member [email] in list"},
		{"an email in quotes", `record "a.b+c@example.org" refused`, `record "[email]" refused`},
		{"a hash", "member " + hash + " refused", "member [hash] refused"},
		{"an uppercase hash", "member " + strings.ToUpper(hash) + ".", "member [hash]."},
		{"a short hex value", "request id 0123abcd", "request id 0123abcd"},
		{"an audience UUID", "list for ups:5b0f8a3e-2f1c-4d8e-9a55-0c1d2e3f4a5b", "list for ups:5b0f8a3e-2f1c-4d8e-9a55-0c1d2e3f4a5b"},
		{"too long", strings.Repeat("x", maxErrorText+10), strings.Repeat("x", maxErrorText) + "…"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if got := scrub(tc.in); got != tc.want {
				t.Errorf("scrub(%q) = %q, want %q", tc.in, got, tc.want)
			}
		})
	}
}

func FuzzScrub(f *testing.F) {
	f.Add("add " + strings.Repeat("0f", 32) + " for someone@example.com")
	f.Add("é" + strings.Repeat("é", maxErrorText))
	f.Fuzz(func(t *testing.T, s string) {
		out := scrub(s)
		if emailPattern.MatchString(out) || hexPattern.MatchString(out) {
			t.Errorf("scrub(%q) = %q still holds an identifier", s, out)
		}
	})
}

// TestErrorRecorder: the warnings and errors of the stack's components are
// kept, scrubbed, newest first, at most maxRecentErrors; ingest's warnings
// (callers' bad requests) and info lines are not; every line still reaches
// the log.
func TestErrorRecorder(t *testing.T) {
	var logs bytes.Buffer
	ring := &errorRing{}
	log := slogJSON(&logs, ring)
	log.With("component", "ingest").Warn("request", "status", 400)
	log.With("component", "ingest").Error("request", "status", 503)
	log.Info("local stack started")
	log.With("component", "worker").Warn("release failed messages", "error", "queue closed", "group", "ups:x")
	got := ring.recent()
	if len(got) != 2 || got[0].Text != "release failed messages: queue closed" || got[0].Component != "worker" ||
		got[1].Component != "ingest" || got[1].Level != "ERROR" {
		t.Fatalf("recent = %+v, want the worker's warning, then ingest's error", got)
	}
	if n := strings.Count(logs.String(), "\n"); n != 4 {
		t.Errorf("%d log lines reached the log, want 4:\n%s", n, logs.String())
	}
	for i := range maxRecentErrors + 3 {
		log.Error("failure", "error", strings.Repeat("x", i))
	}
	got = ring.recent()
	if len(got) != maxRecentErrors || got[0].Text != "failure: "+strings.Repeat("x", maxRecentErrors+2) {
		t.Errorf("after %d more errors, recent = %d entries, newest %q", maxRecentErrors+3, len(got), got[0].Text)
	}
}

func TestMinuteRing(t *testing.T) {
	start := time.Date(2026, 12, 4, 10, 0, 30, 0, time.UTC)
	var r minuteRing
	r.add(start, 5, 1)
	r.add(start.Add(20*time.Second), 2, 0) // the same minute
	r.add(start.Add(30*time.Minute), 7, 0)
	if a, b := r.sum(start.Add(30 * time.Minute)); a != 14 || b != 1 {
		t.Errorf("sum after 30 minutes = %d, %d; want 14, 1", a, b)
	}
	s := r.series(start.Add(30 * time.Minute))
	if s[historyMinutes-1] != [2]int64{7, 0} || s[historyMinutes-31] != [2]int64{7, 1} {
		t.Errorf("series = %v", s)
	}
	// An hour after the first minute it has left the window, and a new
	// count in its slot replaces it.
	if a, _ := r.sum(start.Add(60 * time.Minute)); a != 7 {
		t.Errorf("sum an hour later = %d, want 7 (the first minute has left the window)", a)
	}
	r.add(start.Add(60*time.Minute), 1, 0)
	if a, b := r.sum(start.Add(60 * time.Minute)); a != 8 || b != 0 {
		t.Errorf("sum after reusing the slot = %d, %d; want 8, 0", a, b)
	}
}

func TestCallHistory(t *testing.T) {
	now := time.Date(2026, 12, 4, 10, 0, 0, 0, time.UTC)
	st := pinterest.Stats{}
	h := &callHistory{stats: func() pinterest.Stats { return st }}
	st = pinterest.Stats{Calls: 10, RateLimited: 2}
	h.sample(now)
	st = pinterest.Stats{Calls: 13, RateLimited: 2}
	h.sample(now.Add(time.Minute))
	h.sample(now.Add(2 * time.Minute))
	s := h.perMinute(now.Add(2 * time.Minute))
	if s[historyMinutes-3] != [2]int64{10, 2} || s[historyMinutes-2] != [2]int64{3, 0} || s[historyMinutes-1] != [2]int64{} {
		t.Errorf("per minute = %v, want 10/2, 3/0, 0/0 at the end", s[historyMinutes-3:])
	}
}

func TestCountOps(t *testing.T) {
	hash := strings.Repeat("0a", 32)
	body := `{"v":1,"kind":"changes","audience":{"ns":"ups","id":"x"},"records":[` +
		`{"l":"EMAIL","o":"ADD","h":"` + hash + `","t":1},{"l":"EMAIL","o":"REMOVE","h":"` + hash + `","t":2},` +
		`{"l":"MAID","o":"ADD","h":"` + hash + `","t":3}]}`
	for _, tc := range []struct {
		name string
		body string
		want map[string]int
	}{
		{"changes", body, map[string]int{"EMAIL ADD": 1, "EMAIL REMOVE": 1, "MAID ADD": 1}},
		{"an audience message", `{"v":1,"kind":"audience","audience":{"ns":"ups","id":"x"},"name":"VIPs"}`, map[string]int{}},
		{"cut short", body[:len(body)/2], map[string]int{"EMAIL ADD": 1}},
		{"empty", "", map[string]int{}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got := map[string]int{}
			countOps([]byte(tc.body), func(l, o []byte) { got[string(l)+" "+string(o)]++ })
			if len(got) != len(tc.want) {
				t.Fatalf("countOps = %v, want %v", got, tc.want)
			}
			for k, v := range tc.want {
				if got[k] != v {
					t.Errorf("countOps = %v, want %v", got, tc.want)
				}
			}
		})
	}
	var h changeHistory
	now := time.Date(2026, 12, 4, 10, 0, 0, 0, time.UTC)
	h.record(now, "ups:x", [][]byte{[]byte(body), []byte(body)})
	if a := h.get(now, "ups:x EMAIL"); a.AddsLastHour != 2 || a.RemovesLastHour != 2 || !a.LastChange.Equal(now) {
		t.Errorf("EMAIL activity = %+v", a)
	}
	if a := h.get(now.Add(2*time.Hour), "ups:x MAID"); a.AddsLastHour != 0 || !a.LastChange.Equal(now) {
		t.Errorf("MAID activity two hours later = %+v, want no adds in the last hour and the last change kept", a)
	}
}

func FuzzCountOps(f *testing.F) {
	f.Add([]byte(`{"records":[{"l":"EMAIL","o":"ADD","h":"x","t":1}]}`))
	f.Add([]byte(`"l":"`))
	f.Fuzz(func(t *testing.T, body []byte) {
		n := 0
		countOps(body, func(list, op []byte) { n++ })
		if max := bytes.Count(body, listKey); n > max {
			t.Errorf("countOps found %d records in a body with %d list keys", n, max)
		}
	})
}

// TestCallChart: bars scale to a round axis top, the 429s draw over the
// calls, and the SVG names itself for screen readers.
func TestCallChart(t *testing.T) {
	now := time.Date(2026, 12, 4, 10, 30, 10, 0, time.UTC)
	var per [historyMinutes][2]int64
	per[historyMinutes-1] = [2]int64{40, 0}
	per[historyMinutes-2] = [2]int64{30, 12}
	c := newCallChart(per, now)
	if c.Max != 50 || c.Calls != 70 || c.RateLimited != 12 || c.Peak != 40 {
		t.Errorf("chart max %d, calls %d, 429s %d, peak %d; want 50, 70, 12, 40", c.Max, c.Calls, c.RateLimited, c.Peak)
	}
	last := c.Bars[historyMinutes-1]
	if want := float64(c.Bottom-c.Top) * 40 / 50; last.CallsH != want || last.Minute != "10:30 UTC" {
		t.Errorf("last bar = %+v, want height %v at 10:30 UTC", last, want)
	}
	var buf bytes.Buffer
	if err := statusPageTemplate.Execute(&buf, statusPage{Calls: c, Refresh: statusPageRefresh, Generated: now}); err != nil {
		t.Fatal(err)
	}
	page := buf.String()
	for _, want := range []string{`role="img"`, `aria-labelledby="calls-title calls-desc"`, "70 calls in all, 12 of them answered 429",
		"<title>10:29 UTC: 30 calls, 12 rate-limited</title>", `fill="#b3261e"`, `id="calls-429">12<`} {
		if !strings.Contains(page, want) {
			t.Errorf("the page lacks %q", want)
		}
	}
	if n := strings.Count(page, "<rect"); n != 3 {
		t.Errorf("%d bars drawn, want 3 (two minutes of calls, one of 429s)", n)
	}
}

func TestNiceCeil(t *testing.T) {
	for _, tc := range []struct{ in, want int64 }{{0, 1}, {1, 1}, {2, 2}, {3, 5}, {7, 10}, {11, 20}, {400, 500}, {501, 1000}} {
		if got := niceCeil(tc.in); got != tc.want {
			t.Errorf("niceCeil(%d) = %d, want %d", tc.in, got, tc.want)
		}
	}
}

// slogJSON is a JSON logger into w whose warnings and errors ring keeps.
func slogJSON(w io.Writer, ring *errorRing) *slog.Logger {
	return slog.New(&errorRecorder{next: slog.NewJSONHandler(w, nil), ring: ring})
}

// TestStatusPageNeedsAttention: what a person must do is on the page, with
// the exact command: reconnect, redrive; parts that could not be read say
// why.
func TestStatusPageNeedsAttention(t *testing.T) {
	now := time.Date(2026, 12, 4, 10, 0, 0, 0, time.UTC)
	age := 95.0
	expiring := &TokenStatus{AccountExpiresAt: now.Add(3 * 24 * time.Hour), AccountDaysLeft: 3,
		AccessTokenExpiresAt: now.Add(time.Hour), Warning: "the connection expires in 3.0 days, within the 14-day warning threshold: reconnect before then",
		ReconnectCommand: "pinlist connect --store file:/data/token.json"}
	for _, tc := range []struct {
		name     string
		st       Status
		want     []string
		mustNot  []string
		audience []audienceView
	}{
		{
			name: "connection expiring, dead letters",
			st: Status{Warnings: []string{"2 dead letters: fix their cause, then run pinlist redrive"}, Token: expiring,
				Queue: &QueueStatus{Kind: QueueKindLocal, Depth: 3, Waiting: 3, DeadLetters: 2, OldestAgeSeconds: &age}, Lists: []ListStatus{}},
			want: []string{"Needs attention", `<code id="reconnect-command">pinlist connect --store file:/data/token.json</code>`,
				`id="dead-letters">2<`, `<code id="redrive-command">pinlist redrive --data-dir /data</code>`,
				`id="queue-oldest">1m35s old<`, "2 dead letters: fix their cause", `id="no-lists"`},
		},
		{
			name: "healthy",
			st: Status{Healthy: true, Token: &TokenStatus{AccountExpiresAt: now.Add(50 * 24 * time.Hour), AccountDaysLeft: 50, ReconnectCommand: "pinlist connect"},
				Queue: &QueueStatus{Kind: QueueKindLocal}, Lists: []ListStatus{}},
			want:    []string{"Healthy", `id="dead-letters">0<`, `id="queue-oldest">none waiting<`},
			mustNot: []string{"reconnect-command", "redrive-command", "Needs attention"},
		},
		{
			name: "nothing could be read",
			st: Status{Warnings: []string{"x"}, TokenError: "no Pinterest token in file:/data/token.json: run pinlist connect --store file:/data/token.json",
				QueueError: "read the queue: disk I/O error", ListsError: "no token to read the lists with", Lists: []ListStatus{}},
			want: []string{`id="token-error">no Pinterest token in file:/data/token.json: run pinlist connect --store file:/data/token.json<`,
				`id="queue-error">The queue could not be read: read the queue: disk I/O error<`, `id="lists-error">The lists could not be read: no token to read the lists with<`},
			mustNot: []string{`id="no-lists"`},
		},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var buf bytes.Buffer
			p := statusPage{Status: tc.st, Generated: now, Refresh: statusPageRefresh, RedriveCommand: "pinlist redrive --data-dir /data",
				Audiences: groupLists(tc.st.Lists, func(string) ListActivity { return ListActivity{} }), Calls: newCallChart([historyMinutes][2]int64{}, now)}
			if err := statusPageTemplate.Execute(&buf, p); err != nil {
				t.Fatal(err)
			}
			page := buf.String()
			for _, want := range tc.want {
				if !strings.Contains(page, want) {
					t.Errorf("the page lacks %q", want)
				}
			}
			for _, not := range tc.mustNot {
				if strings.Contains(page, not) {
					t.Errorf("the page shows %q", not)
				}
			}
		})
	}
}

// TestGroupLists: lists grouped by audience from their names, sorted by
// type, with the audience's display name and latest change.
func TestGroupLists(t *testing.T) {
	t1 := time.Date(2026, 12, 4, 10, 0, 0, 0, time.UTC)
	lists := []ListStatus{
		{ID: "3", Name: "pinlist ups:b MAID - VIPs"},
		{ID: "1", Name: "pinlist ups:a EMAIL"},
		{ID: "2", Name: "pinlist ups:b EMAIL - VIPs"},
		{ID: "4", Name: "someone else's list"},
	}
	got := groupLists(lists, func(key string) ListActivity {
		if key == "ups:b MAID" {
			return ListActivity{AddsLastHour: 5, LastChange: t1}
		}
		return ListActivity{}
	})
	if len(got) != 3 || got[0].Key != "someone else's list" || got[1].Key != "ups:a" || got[2].Key != "ups:b" {
		t.Fatalf("audiences = %+v", got)
	}
	b := got[2]
	if b.Name != "VIPs" || len(b.Lists) != 2 || b.Lists[0].Type != "EMAIL" || b.Lists[1].Type != "MAID" ||
		b.Lists[1].Activity.AddsLastHour != 5 || !b.LastChange.Equal(t1) {
		t.Errorf("audience ups:b = %+v", b)
	}
}
