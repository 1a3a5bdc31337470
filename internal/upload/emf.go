package upload

import (
	"encoding/json"
	"fmt"
	"io"
	"time"
)

// emfNamespace is the CloudWatch namespace of pinlist's metrics.
const emfNamespace = "pinlist"

// emfDimension is the one dimension: the connection's name, so two pinlist
// deployments in one account do not mix their numbers.
const emfDimension = "Connection"

// metric is one value of an EMF record.
type metric struct {
	Name  string
	Value float64
	Unit  string // a CloudWatch unit: "Count", "Milliseconds", ...
}

// writeEMF writes one CloudWatch Embedded Metric Format record as a single
// JSON line: CloudWatch Logs turns it into metrics in namespace pinlist with
// dimension Connection. The record holds only the connection's name and the
// numbers — no identifiers.
func writeEMF(w io.Writer, at time.Time, connection string, metrics []metric) error {
	type metricDef struct {
		Name string `json:"Name"`
		Unit string `json:"Unit"`
	}
	type directive struct {
		Namespace  string      `json:"Namespace"`
		Dimensions [][]string  `json:"Dimensions"`
		Metrics    []metricDef `json:"Metrics"`
	}
	type meta struct {
		Timestamp         int64       `json:"Timestamp"`
		CloudWatchMetrics []directive `json:"CloudWatchMetrics"`
	}
	d := directive{Namespace: emfNamespace, Dimensions: [][]string{{emfDimension}}}
	rec := make(map[string]any, len(metrics)+2)
	for _, m := range metrics {
		d.Metrics = append(d.Metrics, metricDef{Name: m.Name, Unit: m.Unit})
		rec[m.Name] = m.Value
	}
	rec["_aws"] = meta{Timestamp: at.UnixMilli(), CloudWatchMetrics: []directive{d}}
	rec[emfDimension] = connection
	line, err := json.Marshal(rec)
	if err != nil {
		return fmt.Errorf("encode metrics record: %w", err)
	}
	// One Write call per line, so lines from concurrent batches never interleave.
	if _, err := w.Write(append(line, '\n')); err != nil {
		return fmt.Errorf("write metrics record: %w", err)
	}
	return nil
}
