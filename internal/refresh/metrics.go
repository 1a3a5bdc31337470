package refresh

import (
	"encoding/json"
	"io"
	"sync"
	"time"
)

// Namespace is the CloudWatch namespace of pinlist's metrics.
const Namespace = "pinlist"

// Metric is one value in an EMF record.
type Metric struct {
	Name  string
	Unit  string
	Value float64
}

// MetricsWriter writes CloudWatch Embedded Metric Format records, one JSON
// line each, with the dimension Connection. In Lambda, stdout lines in this
// format become metrics without any API call.
type MetricsWriter struct {
	mu  sync.Mutex
	w   io.Writer
	now func() time.Time
}

// NewMetricsWriter writes to w (os.Stdout in Lambda).
func NewMetricsWriter(w io.Writer, now func() time.Time) *MetricsWriter {
	if now == nil {
		now = time.Now
	}
	return &MetricsWriter{w: w, now: now}
}

// Write emits one record; write errors are dropped (metrics never fail a run).
func (m *MetricsWriter) Write(connection string, metrics []Metric) {
	defs := make([]map[string]string, 0, len(metrics))
	rec := map[string]any{"Connection": connection}
	for _, x := range metrics {
		defs = append(defs, map[string]string{"Name": x.Name, "Unit": x.Unit})
		rec[x.Name] = x.Value
	}
	rec["_aws"] = map[string]any{
		"Timestamp": m.now().UnixMilli(),
		"CloudWatchMetrics": []any{map[string]any{
			"Namespace":  Namespace,
			"Dimensions": [][]string{{"Connection"}},
			"Metrics":    defs,
		}},
	}
	line, err := json.Marshal(rec)
	if err != nil {
		return
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	_, _ = m.w.Write(append(line, '\n'))
}
