package awsshape

import (
	"bytes"
	"encoding/json"
	"io"
	"net/http"
	"strings"
	"sync"
	"time"

	"github.com/pinlist/pinlist/internal/pinterestsim"
)

// writeLog watches the Pinterest simulator's write calls: it counts them
// and notes when each record first arrived on each list with each op.
type writeLog struct {
	sim *pinterestsim.Server

	mu              sync.Mutex
	listWrites      int
	audienceCreates int
	rejected        int
	arrived         map[FlipKey]time.Time
	names           map[string]string // list ID → stable name
}

func newWriteLog(sim *pinterestsim.Server) *writeLog {
	return &writeLog{sim: sim, arrived: map[FlipKey]time.Time{}, names: map[string]string{}}
}

// writesSeen is a snapshot of the log.
type writesSeen struct {
	listWrites, audienceCreates, rejected int
	arrived                               map[FlipKey]time.Time
}

func (l *writeLog) reset() {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.listWrites, l.audienceCreates, l.rejected = 0, 0, 0
	l.arrived = map[FlipKey]time.Time{}
}

func (l *writeLog) snapshot() writesSeen {
	l.mu.Lock()
	defer l.mu.Unlock()
	a := make(map[FlipKey]time.Time, len(l.arrived))
	for k, v := range l.arrived {
		a[k] = v
	}
	return writesSeen{listWrites: l.listWrites, audienceCreates: l.audienceCreates, rejected: l.rejected, arrived: a}
}

// statusRecorder keeps a response's status.
type statusRecorder struct {
	http.ResponseWriter
	status int
}

func (s *statusRecorder) WriteHeader(code int) {
	s.status = code
	s.ResponseWriter.WriteHeader(code)
}

func (l *writeLog) wrap(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		p := r.URL.Path
		isCreate := r.Method == http.MethodPost && strings.HasSuffix(p, "/customer_lists")
		isUpdate := r.Method == http.MethodPatch && strings.Contains(p, "/customer_lists/")
		isAudience := r.Method == http.MethodPost && strings.HasSuffix(p, "/audiences")
		if !isCreate && !isUpdate && !isAudience {
			next.ServeHTTP(w, r)
			return
		}
		body, err := io.ReadAll(r.Body)
		if err != nil {
			http.Error(w, "read body", http.StatusBadRequest)
			return
		}
		r.Body = io.NopCloser(bytes.NewReader(body))
		rec := &statusRecorder{ResponseWriter: w, status: http.StatusOK}
		next.ServeHTTP(rec, r)
		at := time.Now()
		ok := rec.status >= 200 && rec.status < 300
		var in struct {
			Name          string `json:"name"`
			Records       string `json:"records"`
			OperationType string `json:"operation_type"`
		}
		_ = json.Unmarshal(body, &in)
		var list, op string
		switch {
		case isCreate:
			list, op = stableListName(in.Name), "ADD"
		case isUpdate:
			list, op = l.listName(p[strings.LastIndex(p, "/")+1:]), in.OperationType
		}
		l.mu.Lock()
		defer l.mu.Unlock()
		switch {
		case !ok:
			l.rejected++
			return
		case isAudience:
			l.audienceCreates++
			return
		}
		l.listWrites++
		if in.Records == "" {
			return
		}
		for _, h := range strings.Split(in.Records, ",") {
			k := FlipKey{List: list, Hash: h, Op: op}
			if _, seen := l.arrived[k]; !seen {
				l.arrived[k] = at
			}
		}
	})
}

// listName is the stable name of the list with ID id (read from the
// simulator's state the first time).
func (l *writeLog) listName(id string) string {
	l.mu.Lock()
	n, ok := l.names[id]
	l.mu.Unlock()
	if ok {
		return n
	}
	for _, acct := range l.sim.State().AdAccounts {
		for _, cl := range acct.CustomerLists {
			if cl.ID == id {
				n = stableListName(cl.Name)
			}
		}
	}
	l.mu.Lock()
	l.names[id] = n
	l.mu.Unlock()
	return n
}
