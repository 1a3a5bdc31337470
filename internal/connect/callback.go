package connect

import (
	"context"
	"crypto/subtle"
	"errors"
	"fmt"
	"html"
	"net/http"
	"net/url"
	"strings"
	"sync"
	"sync/atomic"
	"time"
)

// maxCode bounds an authorisation code (Pinterest's are about 40 characters).
const maxCode = 2048

// callback receives the browser's redirect to CallbackPath. The first such
// request decides the run, whatever it carries; later ones are turned away.
type callback struct {
	state   string
	claimed atomic.Bool
	arrived chan *arrival // buffered 1; claimed guarantees one send

	stopOnce sync.Once
	stopped  chan struct{} // closed when Run no longer answers
}

// arrival is the first callback request, as the run sees it.
type arrival struct {
	code string
	err  error          // the request is refused: wrong state, denied, no code
	done chan<- outcome // buffered 1: how the run ended, for the browser's page
}

type outcome struct {
	res Result
	err error
}

func newCallback(state string) *callback {
	return &callback{state: state, arrived: make(chan *arrival, 1), stopped: make(chan struct{})}
}

// reply tells the waiting browser request how the run ended.
func (a *arrival) reply(res Result, err error) { a.done <- outcome{res: res, err: err} }

// stop releases a browser request still waiting for a reply.
func (c *callback) stop() { c.stopOnce.Do(func() { close(c.stopped) }) }

// wait returns the first callback, or an error when timeout passes or ctx
// is done first.
func (c *callback) wait(ctx context.Context, timeout time.Duration) (*arrival, error) {
	timer := time.NewTimer(timeout)
	defer timer.Stop()
	select {
	case a := <-c.arrived:
		return a, nil
	case <-timer.C:
		return nil, fmt.Errorf("%w: the browser did not come back to the callback within %s, nothing was written: run pinlist connect again (--timeout waits longer)", ErrTimeout, timeout)
	case <-ctx.Done():
		return nil, fmt.Errorf("stopped while waiting for the approval, nothing was written: %w", ctx.Err())
	}
}

func (c *callback) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	if r.URL.Path != CallbackPath {
		http.NotFound(w, r) // e.g. /favicon.ico
		return
	}
	if r.Method != http.MethodGet {
		w.Header().Set("Allow", http.MethodGet)
		writePage(w, http.StatusMethodNotAllowed, "Method not allowed", "The callback takes GET only.")
		return
	}
	if !c.claimed.CompareAndSwap(false, true) {
		writePage(w, http.StatusConflict, "Already answered", "pinlist has already received an answer from Pinterest; this tab is not needed. See the terminal.")
		return
	}
	code, err := readCallback(r.URL.Query(), c.state)
	done := make(chan outcome, 1)
	c.arrived <- &arrival{code: code, err: err, done: done}
	if err != nil {
		writePage(w, http.StatusBadRequest, "pinlist refused this answer", sentence(err)+" Nothing was written. See the terminal.")
		return
	}
	select {
	case out := <-done:
		if out.err != nil {
			writePage(w, http.StatusBadGateway, "pinlist could not connect", sentence(out.err)+" See the terminal for what to do.")
			return
		}
		writePage(w, http.StatusOK, "pinlist is connected",
			fmt.Sprintf("pinlist is connected to Pinterest ad account %s. You can close this tab.", out.res.AdAccountID))
	case <-c.stopped:
		writePage(w, http.StatusServiceUnavailable, "pinlist stopped", "pinlist connect stopped before it finished; nothing was written. See the terminal.")
	case <-r.Context().Done():
	}
}

// readCallback checks a callback's query against the state this run sent and
// returns the authorisation code. The state is checked first, so a forged
// request learns nothing and can only end the run.
func readCallback(q url.Values, wantState string) (code string, err error) {
	states := q["state"]
	if len(states) != 1 || subtle.ConstantTimeCompare([]byte(states[0]), []byte(wantState)) != 1 {
		return "", fmt.Errorf("%w: close that tab and run pinlist connect again", ErrStateMismatch)
	}
	if e := q.Get("error"); e != "" {
		reason := clean(e)
		if d := clean(q.Get("error_description")); d != "" {
			reason += ": " + d
		}
		return "", fmt.Errorf("%w (%s): approve the request in the browser when you run pinlist connect again", ErrDenied, reason)
	}
	codes := q["code"]
	switch {
	case len(codes) != 1 || codes[0] == "":
		return "", errors.New("the callback carries no authorisation code: run pinlist connect again")
	case len(codes[0]) > maxCode:
		return "", fmt.Errorf("the callback's authorisation code is longer than %d bytes: run pinlist connect again", maxCode)
	}
	return codes[0], nil
}

// clean makes outside text safe to show: printable ASCII only, at most 200
// characters.
func clean(s string) string {
	s = strings.Map(func(r rune) rune {
		if r < 0x20 || r > 0x7e {
			return -1
		}
		return r
	}, s)
	s = strings.TrimSpace(s)
	if len(s) > 200 {
		s = s[:200] + "..."
	}
	return s
}

// sentence is err's text with a capital first letter and a full stop.
func sentence(err error) string {
	s := err.Error()
	if s == "" {
		return s
	}
	s = strings.ToUpper(s[:1]) + s[1:]
	if !strings.HasSuffix(s, ".") {
		s += "."
	}
	return s
}

// writePage answers the browser with a small page that is never cached and
// never sends the callback URL (which holds the code) on as a referrer.
func writePage(w http.ResponseWriter, status int, title, text string) {
	h := w.Header()
	h.Set("Content-Type", "text/html; charset=utf-8")
	h.Set("Cache-Control", "no-store")
	h.Set("Referrer-Policy", "no-referrer")
	h.Set("X-Content-Type-Options", "nosniff")
	w.WriteHeader(status)
	fmt.Fprintf(w, "<!doctype html>\n<html><head><meta charset=\"utf-8\"><title>%s</title></head>\n<body><h1>%s</h1>\n<p>%s</p></body></html>\n",
		html.EscapeString(title), html.EscapeString(title), html.EscapeString(text))
}
