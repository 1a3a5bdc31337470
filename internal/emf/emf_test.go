package emf

import (
	"bytes"
	"encoding/json"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
)

func TestWrite(t *testing.T) {
	var buf bytes.Buffer
	at := time.Date(2026, 11, 27, 10, 0, 0, 0, time.UTC)
	err := Write(&buf, at, "shop-eu", []Metric{
		{Name: "ChangesApplied", Value: 12, Unit: "Count"},
		{Name: "DaysToAccessTokenExpiry", Value: 29.5, Unit: "None"},
	})
	if err != nil {
		t.Fatal(err)
	}
	line := buf.String()
	if strings.Count(line, "\n") != 1 || !strings.HasSuffix(line, "\n") {
		t.Fatalf("want exactly one line ending in a newline, got %q", line)
	}
	var got map[string]any
	if err := json.Unmarshal(buf.Bytes(), &got); err != nil {
		t.Fatalf("EMF line is not JSON: %v", err)
	}
	want := map[string]any{
		"_aws": map[string]any{
			"Timestamp": float64(at.UnixMilli()),
			"CloudWatchMetrics": []any{map[string]any{
				"Namespace":  "pinlist",
				"Dimensions": []any{[]any{"Connection"}},
				"Metrics": []any{
					map[string]any{"Name": "ChangesApplied", "Unit": "Count"},
					map[string]any{"Name": "DaysToAccessTokenExpiry", "Unit": "None"},
				},
			}},
		},
		"Connection":              "shop-eu",
		"ChangesApplied":          float64(12),
		"DaysToAccessTokenExpiry": 29.5,
	}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("EMF record (-want +got):\n%s", diff)
	}
}

type failingWriter struct{}

func (failingWriter) Write([]byte) (int, error) { return 0, errors.New("disk full") }

func TestWriteReportsWriteErrors(t *testing.T) {
	err := Write(failingWriter{}, time.Unix(0, 0), "c", nil)
	if err == nil || !strings.Contains(err.Error(), "write metrics record") {
		t.Fatalf("Write to a failing writer = %v, want a write error", err)
	}
}
