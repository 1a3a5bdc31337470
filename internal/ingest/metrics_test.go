package ingest

import (
	"bytes"
	"encoding/json"
	"errors"
	"net/http"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"

	"github.com/pinlist/pinlist/internal/config"
	"github.com/pinlist/pinlist/internal/emf"
	"github.com/pinlist/pinlist/internal/queue"
)

// TestProfilesMetrics checks the EMF line of a profiles request: the names
// and units template.yaml's dashboard reads, the connection as dimension,
// and ChangesReceived only for changes answered 202.
func TestProfilesMetrics(t *testing.T) {
	failAll := func(int, []queue.Outgoing) ([]int, error) { return nil, errors.New("queue down") }
	tests := []struct {
		name       string
		path       string
		body       string
		connection string
		fail       func(int, []queue.Outgoing) ([]int, error)
		status     int
		want       map[string]float64 // nil: no line
		wantConn   string
	}{
		{name: "accepted", path: PathProfiles, body: mixedBody, connection: "shop-eu", status: 202,
			want: map[string]float64{"ChangesReceived": 3, "IdentitiesFailed": 2, "IdentitiesExcluded": 2}, wantConn: "shop-eu"},
		{name: "default connection", path: PathProfiles, body: goodProfile, status: 202,
			want: map[string]float64{"ChangesReceived": 1, "IdentitiesFailed": 0, "IdentitiesExcluded": 0}, wantConn: config.DefaultConnectionName},
		{name: "queue down: nothing received", path: PathProfiles, body: mixedBody, connection: "c", fail: failAll, status: 503,
			want: map[string]float64{"ChangesReceived": 0, "IdentitiesFailed": 2, "IdentitiesExcluded": 2}, wantConn: "c"},
		{name: "malformed body: no line", path: PathProfiles, body: `{"identityMap":`, status: 400},
		{name: "audience: no line", path: PathAudiences, body: `{"id":"aud-1","name":"Shoppers"}`, status: 202},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			var out bytes.Buffer
			hs := newHarness(t, func(o *Options) {
				o.Metrics = &out
				o.Connection = tc.connection
				o.SendRetry.Attempts = 1
			})
			hs.sender.fail = tc.fail
			if rec := hs.post(t, tc.path, tc.body); rec.Code != tc.status {
				t.Fatalf("status %d, want %d; body %s", rec.Code, tc.status, rec.Body)
			}
			if tc.want == nil {
				if out.Len() != 0 {
					t.Fatalf("metrics written: %s", out.String())
				}
				return
			}
			lines := strings.Split(strings.TrimSuffix(out.String(), "\n"), "\n")
			if len(lines) != 1 {
				t.Fatalf("%d metrics lines, want 1: %q", len(lines), out.String())
			}
			var rec struct {
				AWS struct {
					CloudWatchMetrics []struct {
						Namespace  string
						Dimensions [][]string
						Metrics    []struct{ Name, Unit string }
					}
				} `json:"_aws"`
			}
			var values map[string]any
			if err := json.Unmarshal([]byte(lines[0]), &rec); err != nil {
				t.Fatalf("metrics line %q: %v", lines[0], err)
			}
			if err := json.Unmarshal([]byte(lines[0]), &values); err != nil {
				t.Fatalf("metrics line %q: %v", lines[0], err)
			}
			if len(rec.AWS.CloudWatchMetrics) != 1 {
				t.Fatalf("metrics line %s: want one directive", lines[0])
			}
			d := rec.AWS.CloudWatchMetrics[0]
			if d.Namespace != emf.Namespace || !cmp.Equal(d.Dimensions, [][]string{{emf.Dimension}}) || values[emf.Dimension] != tc.wantConn {
				t.Errorf("namespace %s, dimensions %v, %s=%v; want %s, [[%s]], %s", d.Namespace, d.Dimensions, emf.Dimension, values[emf.Dimension], emf.Namespace, emf.Dimension, tc.wantConn)
			}
			got := map[string]float64{}
			for _, m := range d.Metrics {
				if m.Unit != "Count" {
					t.Errorf("%s has unit %q, want Count", m.Name, m.Unit)
				}
				v, _ := values[m.Name].(float64)
				got[m.Name] = v
			}
			if diff := cmp.Diff(tc.want, got); diff != "" {
				t.Errorf("metrics (-want +got):\n%s", diff)
			}
			if strings.Contains(lines[0], "example.com") {
				t.Errorf("metrics line holds an identifier: %s", lines[0])
			}
		})
	}
}

// TestProfilesMetricsWriteFailure: a metrics line that cannot be written is
// logged and the request is still answered 202.
func TestProfilesMetricsWriteFailure(t *testing.T) {
	hs := newHarness(t, func(o *Options) { o.Metrics = brokenWriter{} })
	if rec := hs.post(t, PathProfiles, goodProfile); rec.Code != http.StatusAccepted {
		t.Fatalf("status %d, body %s", rec.Code, rec.Body)
	}
	if !strings.Contains(hs.logs.String(), "could not write the request metrics") {
		t.Errorf("the failed metrics write is not logged: %s", hs.logs.String())
	}
}

type brokenWriter struct{}

func (brokenWriter) Write([]byte) (int, error) { return 0, errors.New("stdout closed") }
