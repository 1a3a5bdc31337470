package infra

import (
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"testing"
)

// emfMetrics are the metrics the functions emit in Embedded Metric Format,
// namespace pinlist, dimension Connection (the refresh and upload contracts).
var emfMetrics = []string{
	"APICalls", "ChangesApplied", "DaysToAccessTokenExpiry", "DaysToRefreshTokenExpiry",
	"Failures", "ListsCreated", "RefreshFailures", "Retries",
}

// dashboardPlaceholders are the ${NAME}s infra/README.md tells people to fill in.
var dashboardPlaceholders = []string{"CONNECTION", "INGEST_FUNCTION", "REFRESH_FUNCTION", "REGION", "STACK", "UPLOAD_FUNCTION"}

func TestDashboard(t *testing.T) {
	raw, err := os.ReadFile(filepath.Join(repoRoot(t), "infra", "dashboard.json"))
	if err != nil {
		t.Fatalf("read the dashboard: %v", err)
	}
	for _, m := range regexp.MustCompile(`\$\{([A-Za-z_:]+)\}`).FindAllStringSubmatch(string(raw), -1) {
		if !slices.Contains(dashboardPlaceholders, m[1]) {
			t.Errorf("placeholder ${%s} is not one infra/README.md documents", m[1])
		}
	}
	var body struct {
		Widgets []struct {
			Properties struct {
				Title       string
				Metrics     [][]any
				Annotations struct {
					Horizontal []struct{ Value float64 }
				}
			}
		}
	}
	if err := json.Unmarshal(raw, &body); err != nil {
		t.Fatalf("the dashboard is not valid JSON: %v", err)
	}
	if len(body.Widgets) == 0 {
		t.Fatalf("the dashboard has no widgets")
	}

	tpl := loadTemplate(t)
	queueNames := map[string]bool{}
	for _, id := range []string{"AudienceQueue", "AudienceDeadLetterQueue"} {
		name := fmt.Sprint(get(tpl, "Resources", id, "Properties", "QueueName", "Fn::Sub"))
		queueNames[strings.ReplaceAll(name, "${AWS::StackName}", "${STACK}")] = true
	}
	threshold, _ := number(get(tpl, "Resources", "TokenExpiryAlarm", "Properties", "Threshold"))

	for _, w := range body.Widgets {
		for _, m := range w.Properties.Metrics {
			if len(m) < 4 {
				t.Errorf("%q: metric %v has no dimension", w.Properties.Title, m)
				continue
			}
			ns, name, dim, val := fmt.Sprint(m[0]), fmt.Sprint(m[1]), fmt.Sprint(m[2]), fmt.Sprint(m[3])
			switch ns {
			case "pinlist":
				if !slices.Contains(emfMetrics, name) || dim != "Connection" || val != "${CONNECTION}" {
					t.Errorf("%q: %s %s by %s=%s is not an emitted metric by Connection", w.Properties.Title, ns, name, dim, val)
				}
			case "AWS/SQS":
				if dim != "QueueName" || !queueNames[val] {
					t.Errorf("%q: queue %s is not one the template names (%v)", w.Properties.Title, val, queueNames)
				}
			case "AWS/Lambda":
				if dim != "FunctionName" || !strings.HasSuffix(val, "_FUNCTION}") {
					t.Errorf("%q: %s=%s is not a function placeholder", w.Properties.Title, dim, val)
				}
			default:
				t.Errorf("%q: unexpected namespace %s", w.Properties.Title, ns)
			}
		}
		for _, a := range w.Properties.Annotations.Horizontal {
			if strings.Contains(w.Properties.Title, "expiry") && a.Value != threshold {
				t.Errorf("%q: annotation at %v, the alarm fires below %v", w.Properties.Title, a.Value, threshold)
			}
		}
	}
}
