// Package emf writes CloudWatch Embedded Metric Format records: one JSON line
// on stdout that CloudWatch Logs turns into metrics without an API call. All
// of pinlist's metrics live in namespace "pinlist" with the one dimension
// "Connection" (the deployment's connection name), so two deployments in one
// account never mix their numbers.
package emf

import (
	"encoding/json"
	"fmt"
	"io"
	"time"
)

// Namespace is the CloudWatch namespace of pinlist's metrics; the template's
// alarms read it.
const Namespace = "pinlist"

// Dimension is the one dimension every metric carries.
const Dimension = "Connection"

// Metric is one value of a record.
type Metric struct {
	Name  string
	Value float64
	Unit  string // a CloudWatch unit: "Count", "None", "Milliseconds", ...
}

// Write writes one record as a single JSON line with a single Write call, so
// lines written concurrently to one stream never interleave. The record holds
// only the connection's name and the numbers.
func Write(w io.Writer, at time.Time, connection string, metrics []Metric) error {
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
	d := directive{Namespace: Namespace, Dimensions: [][]string{{Dimension}}, Metrics: []metricDef{}}
	rec := make(map[string]any, len(metrics)+2)
	for _, m := range metrics {
		d.Metrics = append(d.Metrics, metricDef{Name: m.Name, Unit: m.Unit})
		rec[m.Name] = m.Value
	}
	rec["_aws"] = meta{Timestamp: at.UnixMilli(), CloudWatchMetrics: []directive{d}}
	rec[Dimension] = connection
	line, err := json.Marshal(rec)
	if err != nil {
		return fmt.Errorf("encode metrics record: %w", err)
	}
	if _, err := w.Write(append(line, '\n')); err != nil {
		return fmt.Errorf("write metrics record: %w", err)
	}
	return nil
}
