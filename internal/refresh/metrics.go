package refresh

import (
	"io"
	"time"

	"github.com/pinlist/pinlist/internal/emf"
)

// MetricsWriter writes the refresh run's CloudWatch EMF record
// (DaysToAccessTokenExpiry, DaysToRefreshTokenExpiry, RefreshFailures).
type MetricsWriter struct {
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

// Write emits one record; a write error is returned to be logged (metrics
// never fail a run).
func (m *MetricsWriter) Write(connection string, metrics []emf.Metric) error {
	return emf.Write(m.w, m.now(), connection, metrics)
}
