package local

import (
	"bytes"
	"context"
	"log/slog"
	"regexp"
	"slices"
	"sync"
	"time"

	"github.com/pinlist/pinlist/internal/pinterest"
)

// The status page's recent history, kept in memory since start (a restart
// starts it empty): Pinterest calls and 429s per minute, changes applied per
// list per minute, and the last errors logged, without identifiers.

// historyMinutes is how many one-minute buckets a minuteRing keeps: the
// last hour.
const historyMinutes = 60

// minuteRing counts two series per minute over the last historyMinutes
// minutes. A bucket holds the Unix minute it counts; one older than the
// window is stale and reads as zero.
type minuteRing struct {
	minute [historyMinutes]int64
	n      [historyMinutes][2]int64
}

// add adds a and b to the bucket of now's minute.
func (r *minuteRing) add(now time.Time, a, b int64) {
	m := now.Unix() / 60
	i := m % historyMinutes
	if r.minute[i] != m {
		r.minute[i], r.n[i] = m, [2]int64{}
	}
	r.n[i][0] += a
	r.n[i][1] += b
}

// series returns the last historyMinutes minutes up to now's, oldest first.
func (r *minuteRing) series(now time.Time) [historyMinutes][2]int64 {
	var out [historyMinutes][2]int64
	last := now.Unix() / 60
	for k := range historyMinutes {
		m := last - historyMinutes + 1 + int64(k)
		if i := m % historyMinutes; r.minute[i] == m {
			out[k] = r.n[i]
		}
	}
	return out
}

// sum is the totals of the two series over the last hour up to now.
func (r *minuteRing) sum(now time.Time) (a, b int64) {
	for _, v := range r.series(now) {
		a += v[0]
		b += v[1]
	}
	return a, b
}

// callHistory samples a Pinterest client's cumulative counters and keeps
// calls and 429s per minute.
type callHistory struct {
	mu    sync.Mutex
	stats func() pinterest.Stats
	last  pinterest.Stats
	ring  minuteRing
}

// sample adds what the counters moved since the previous sample to now's
// minute.
func (h *callHistory) sample(now time.Time) {
	st := h.stats()
	h.mu.Lock()
	defer h.mu.Unlock()
	calls, limited := st.Calls-h.last.Calls, st.RateLimited-h.last.RateLimited
	if calls > 0 || limited > 0 {
		h.ring.add(now, calls, limited)
	}
	h.last = st
}

// perMinute is the last hour's calls and 429s per minute, oldest first.
func (h *callHistory) perMinute(now time.Time) [historyMinutes][2]int64 {
	h.mu.Lock()
	defer h.mu.Unlock()
	return h.ring.series(now)
}

// listActivity is one list's applied changes: adds and removes per minute
// and when it last changed.
type listActivity struct {
	ring minuteRing
	last time.Time
}

// ListActivity is what the stack applied to one list since start.
type ListActivity struct {
	AddsLastHour    int64
	RemovesLastHour int64
	LastChange      time.Time // zero: none since start
}

// changeHistory keeps the applied changes per list, keyed "<audience key>
// <LIST TYPE>" (the stable part of the list's name).
type changeHistory struct {
	mu    sync.Mutex
	lists map[string]*listActivity
}

// record counts the changes of applied message bodies of the audience
// group at now.
func (h *changeHistory) record(now time.Time, group string, bodies [][]byte) {
	counts := map[string][2]int64{}
	for _, b := range bodies {
		countOps(b, func(list, op []byte) {
			c := counts[string(list)]
			if string(op) == "REMOVE" {
				c[1]++
			} else {
				c[0]++
			}
			counts[string(list)] = c
		})
	}
	if len(counts) == 0 {
		return
	}
	h.mu.Lock()
	defer h.mu.Unlock()
	if h.lists == nil {
		h.lists = map[string]*listActivity{}
	}
	for list, c := range counts {
		key := group + " " + list
		a := h.lists[key]
		if a == nil {
			a = &listActivity{}
			h.lists[key] = a
		}
		a.ring.add(now, c[0], c[1])
		a.last = now
	}
}

// get is the activity of the list key ("<audience key> <LIST TYPE>").
func (h *changeHistory) get(now time.Time, key string) ListActivity {
	h.mu.Lock()
	defer h.mu.Unlock()
	a := h.lists[key]
	if a == nil {
		return ListActivity{}
	}
	adds, removes := a.ring.sum(now)
	return ListActivity{AddsLastHour: adds, RemovesLastHour: removes, LastChange: a.last}
}

// Keys of a change record in a queue message body
// ({"l":"<TYPE>","o":"<OP>","h":…,"t":…}); like recordKey, no other field
// of a message has these names.
var (
	listKey = []byte(`"l":"`)
	opKey   = []byte(`"o":"`)
)

// countOps calls fn with the list type and op of every record in a queue
// message body, without decoding it (the hashes are never looked at).
func countOps(body []byte, fn func(list, op []byte)) {
	for {
		i := bytes.Index(body, listKey)
		if i < 0 {
			return
		}
		body = body[i+len(listKey):]
		list, rest, ok := bytes.Cut(body, []byte{'"'})
		if !ok {
			return
		}
		j := bytes.Index(rest, opKey)
		if j < 0 {
			return
		}
		rest = rest[j+len(opKey):]
		op, rest, ok := bytes.Cut(rest, []byte{'"'})
		if !ok {
			return
		}
		fn(list, op)
		body = rest
	}
}

// maxRecentErrors is how many error lines the status page shows.
const maxRecentErrors = 10

// maxErrorText bounds one shown error line.
const maxErrorText = 400

// RecentError is a warning or error the stack logged, scrubbed of
// identifiers.
type RecentError struct {
	Time      time.Time
	Level     string
	Component string
	Text      string
}

// Patterns of identifiers scrubbed from an error line before it is kept:
// email addresses (a plain one should never be in a log line; this is the
// second net) and runs of 32 or more hex digits (SHA-256 hashes, tokens).
var (
	emailPattern = regexp.MustCompile(`[^\s@"'<>()\[\]{},;:]+@[^\s@"'<>()\[\]{},;:]+`)
	hexPattern   = regexp.MustCompile(`(?i)[0-9a-f]{32,}`)
)

// scrub removes identifiers from s and bounds its length.
func scrub(s string) string {
	s = emailPattern.ReplaceAllString(s, "[email]")
	s = hexPattern.ReplaceAllString(s, "[hash]")
	if len(s) > maxErrorText {
		cut := maxErrorText
		for cut > 0 && s[cut]&0xC0 == 0x80 { // not inside a UTF-8 sequence
			cut--
		}
		s = s[:cut] + "…"
	}
	return s
}

// errorRing keeps the last maxRecentErrors warnings and errors.
type errorRing struct {
	mu   sync.Mutex
	errs []RecentError
}

func (r *errorRing) add(e RecentError) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if len(r.errs) == maxRecentErrors {
		r.errs = slices.Delete(r.errs, 0, 1)
	}
	r.errs = append(r.errs, e)
}

// recent is the kept errors, newest first.
func (r *errorRing) recent() []RecentError {
	r.mu.Lock()
	defer r.mu.Unlock()
	out := slices.Clone(r.errs)
	slices.Reverse(out)
	return out
}

// errorRecorder is a slog.Handler that passes every record on to next and
// keeps the stack's warnings and errors in ring: every error, and the
// warnings of all but the ingest component (whose warnings are callers'
// bad requests, answered with a 4xx). It keeps the message and the "error"
// attribute, scrubbed, never the other attributes.
type errorRecorder struct {
	next      slog.Handler
	ring      *errorRing
	component string // the "component" attribute added by With
}

func (h *errorRecorder) Enabled(ctx context.Context, l slog.Level) bool {
	return l >= slog.LevelWarn || h.next.Enabled(ctx, l)
}

func (h *errorRecorder) Handle(ctx context.Context, r slog.Record) error {
	if r.Level >= slog.LevelError || r.Level >= slog.LevelWarn && h.component != "ingest" {
		text := r.Message
		comp := h.component
		r.Attrs(func(a slog.Attr) bool {
			switch a.Key {
			case "error":
				text += ": " + a.Value.String()
			case "component":
				comp = a.Value.String()
			}
			return true
		})
		h.ring.add(RecentError{Time: r.Time, Level: r.Level.String(), Component: comp, Text: scrub(text)})
	}
	if !h.next.Enabled(ctx, r.Level) {
		return nil
	}
	return h.next.Handle(ctx, r)
}

func (h *errorRecorder) WithAttrs(attrs []slog.Attr) slog.Handler {
	c := *h
	c.next = h.next.WithAttrs(attrs)
	for _, a := range attrs {
		if a.Key == "component" {
			c.component = a.Value.String()
		}
	}
	return &c
}

func (h *errorRecorder) WithGroup(name string) slog.Handler {
	c := *h
	c.next = h.next.WithGroup(name)
	return &c
}
