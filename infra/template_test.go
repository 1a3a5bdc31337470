package infra

import (
	"bytes"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/pinlist/pinlist/internal/config"
	"github.com/pinlist/pinlist/internal/ledger"
)

// functionPackages is every function in the template and the package under
// functions/ its build-<LogicalId> Makefile target compiles.
var functionPackages = map[string]string{
	"IngestFunction":  "ingest",
	"ApplyFunction":   "apply",
	"UploadFunction":  "upload",
	"RefreshFunction": "refresh",
}

func TestTemplateParameters(t *testing.T) {
	tpl := loadTemplate(t)
	params := asMap(tpl["Parameters"])

	want := []string{"AdAccountId", "AlertEmail", "ApplyBatchSize", "ApplyBatchWindow", "ConnectionDescription", "ConnectionName",
		"LogLevel", "MaxRecordsPerRequest", "PinterestApiBaseUrl", "RefreshBefore", "RefreshSchedule"}
	if diff := cmp.Diff(want, sortedKeys(params)); diff != "" {
		t.Errorf("parameters (-want +got):\n%s", diff)
	}

	// Each pattern is CloudFormation's first line of defence; the code checks
	// the same values again at start-up, so both must agree.
	patterns := []struct {
		param  string
		accept []string
		reject []string
	}{
		{"AdAccountId", []string{"549756359984", "1", "123456789012345678"}, []string{"", "1234567890123456789", "12a4", " 549756359984"}},
		{"ConnectionName", []string{"pinlist", "eu-shop_2"}, []string{"", "-x", "has space", strings.Repeat("a", 41)}},
		{"PinterestApiBaseUrl", []string{"https://api.pinterest.com/v5", "https://api-sandbox.pinterest.com/v5"}, []string{"http://api.pinterest.com/v5", "https://api.pinterest.com/v5/", "ftp://x"}},
		{"RefreshBefore", []string{"240h", "200h30m", "1.5h"}, []string{"10d", "", "240"}},
		{"RefreshSchedule", []string{"rate(1 day)", "rate(12 hours)", "cron(0 6 * * ? *)"}, []string{"daily", "rate 1 day"}},
		{"AlertEmail", []string{"", "ops@example.com"}, []string{"ops", "a b@example.com", "ops@example"}},
	}
	for _, tc := range patterns {
		t.Run(tc.param, func(t *testing.T) {
			p := asMap(params[tc.param])
			pat, ok := p["AllowedPattern"].(string)
			if !ok {
				t.Fatalf("%s has no AllowedPattern", tc.param)
			}
			re, err := regexp.Compile(pat)
			if err != nil {
				t.Fatalf("%s AllowedPattern %q: %v", tc.param, pat, err)
			}
			if d, ok := p["Default"].(string); ok && !re.MatchString(d) {
				t.Errorf("%s default %q does not match its own pattern", tc.param, d)
			}
			for _, s := range tc.accept {
				if !re.MatchString(s) {
					t.Errorf("%s rejects %q, want accepted", tc.param, s)
				}
			}
			for _, s := range tc.reject {
				if re.MatchString(s) {
					t.Errorf("%s accepts %q, want rejected", tc.param, s)
				}
			}
		})
	}

	t.Run("defaults equal the code's defaults", func(t *testing.T) {
		env := map[string]string{
			config.EnvAPIBaseURL:           fmt.Sprint(get(params, "PinterestApiBaseUrl", "Default")),
			config.EnvRefreshBefore:        fmt.Sprint(get(params, "RefreshBefore", "Default")),
			config.EnvMaxRecordsPerRequest: fmt.Sprint(get(params, "MaxRecordsPerRequest", "Default")),
			config.EnvConnectionName:       fmt.Sprint(get(params, "ConnectionName", "Default")),
		}
		cfg, err := config.Load(mapLookup(env))
		if err != nil {
			t.Fatalf("the code rejects the template's defaults: %v", err)
		}
		if cfg.APIBaseURL != config.DefaultAPIBaseURL {
			t.Errorf("PinterestApiBaseUrl default %q, code default %q", cfg.APIBaseURL, config.DefaultAPIBaseURL)
		}
		if cfg.RefreshBefore != config.DefaultRefreshBefore {
			t.Errorf("RefreshBefore default %v, code default %v", cfg.RefreshBefore, config.DefaultRefreshBefore)
		}
		if cfg.MaxRecordsPerRequest != config.DefaultMaxRecordsPerRequest {
			t.Errorf("MaxRecordsPerRequest default %d, code default %d", cfg.MaxRecordsPerRequest, config.DefaultMaxRecordsPerRequest)
		}
		if cfg.ConnectionName != config.DefaultConnectionName {
			t.Errorf("ConnectionName default %q, code default %q", cfg.ConnectionName, config.DefaultConnectionName)
		}
	})

	t.Run("values the template admits, the code accepts", func(t *testing.T) {
		max, _ := number(get(params, "MaxRecordsPerRequest", "MaxValue"))
		min, _ := number(get(params, "MaxRecordsPerRequest", "MinValue"))
		cases := map[string]map[string]string{
			"longest ad account":  {config.EnvAdAccountID: "123456789012345678"},
			"largest batch":       {config.EnvMaxRecordsPerRequest: fmt.Sprint(int(max))},
			"smallest batch":      {config.EnvMaxRecordsPerRequest: fmt.Sprint(int(min))},
			"compound duration":   {config.EnvRefreshBefore: "200h30m"},
			"fractional duration": {config.EnvRefreshBefore: "1.5h"},
		}
		for name, env := range cases {
			if _, err := config.Load(mapLookup(env)); err != nil {
				t.Errorf("%s: the code rejects %v: %v", name, env, err)
			}
		}
		if _, err := config.Load(mapLookup(map[string]string{config.EnvMaxRecordsPerRequest: fmt.Sprint(int(max) + 1)})); err == nil {
			t.Errorf("the code accepts MaxRecordsPerRequest %d, above the template's MaxValue %d: keep them equal", int(max)+1, int(max))
		}
	})

	t.Run("LogLevel values", func(t *testing.T) {
		got := fmt.Sprint(get(params, "LogLevel", "AllowedValues"))
		if got != "[DEBUG INFO WARN ERROR]" {
			t.Errorf("LogLevel AllowedValues %s, want [DEBUG INFO WARN ERROR]", got)
		}
	})
}

func mapLookup(env map[string]string) func(string) (string, bool) {
	return func(k string) (string, bool) {
		v, ok := env[k]
		return v, ok
	}
}

func TestTemplateGlobals(t *testing.T) {
	tpl := loadTemplate(t)
	for id := range functionPackages {
		t.Run(id, func(t *testing.T) {
			p := tpl.functionProps(t, id)
			checks := []struct{ what, got, want string }{
				{"Runtime", fmt.Sprint(p["Runtime"]), "provided.al2023"},
				{"Architectures", fmt.Sprint(p["Architectures"]), "[arm64]"},
				{"Handler", fmt.Sprint(p["Handler"]), "bootstrap"},
				{"LoggingConfig.LogFormat", fmt.Sprint(get(p, "LoggingConfig", "LogFormat")), "JSON"},
				// EMF metric lines carry no "level"; Lambda counts them as
				// INFO, so its filter must not be above INFO.
				{"LoggingConfig.ApplicationLogLevel", fmt.Sprint(get(p, "LoggingConfig", "ApplicationLogLevel")), "DEBUG"},
				{"LoggingConfig.LogGroup", target(get(p, "LoggingConfig", "LogGroup")), strings.TrimSuffix(id, "Function") + "LogGroup"},
			}
			for _, c := range checks {
				if c.got != c.want {
					t.Errorf("%s = %s, want %s", c.what, c.got, c.want)
				}
			}
			timeout, ok := number(p["Timeout"])
			if !ok || timeout <= 0 {
				t.Errorf("Timeout %v is not a positive number", p["Timeout"])
			}
			if id == "IngestFunction" && timeout >= 30 {
				t.Errorf("ingest Timeout %v s: must stay below API Gateway's 30 s integration limit", timeout)
			}
		})
	}
}

// TestTemplateBuildTargets checks that `sam build` finds a Makefile target for
// every function and that the target cross-compiles the right package for
// provided.al2023 on arm64.
func TestTemplateBuildTargets(t *testing.T) {
	tpl := loadTemplate(t)
	root := repoRoot(t)

	fns := tpl.resources("AWS::Serverless::Function")
	if diff := cmp.Diff(sortedKeys(functionPackages), sortedKeys(fns)); diff != "" {
		t.Fatalf("functions in the template (-want +got):\n%s", diff)
	}
	makefile, err := os.ReadFile(filepath.Join(root, "Makefile"))
	if err != nil {
		t.Fatalf("read the Makefile: %v", err)
	}
	makeBin, err := exec.LookPath("make")
	if err != nil {
		t.Fatalf("make is needed to check the build targets: install GNU make (apt-get install make)")
	}

	for id, pkg := range functionPackages {
		t.Run(id, func(t *testing.T) {
			fn := fns[id]
			if got := get(fn, "Metadata", "BuildMethod"); got != "makefile" {
				t.Errorf("Metadata.BuildMethod = %v, want makefile", got)
			}
			if got := get(fn, "Properties", "CodeUri"); got != "." {
				t.Errorf("CodeUri = %v, want . (the module root, where the Makefile is)", got)
			}
			targetName := "build-" + id
			if !regexp.MustCompile(`(?m)^` + regexp.QuoteMeta(targetName) + `:`).Match(makefile) {
				t.Fatalf("the Makefile has no target %s: (sam build runs it for BuildMethod: makefile)", targetName)
			}

			artifacts := t.TempDir()
			cmd := exec.Command(makeBin, "--no-print-directory", "-n", targetName, "ARTIFACTS_DIR="+artifacts)
			cmd.Dir = root
			out, err := cmd.CombinedOutput()
			if err != nil {
				t.Fatalf("make -n %s: %v\n%s", targetName, err, out)
			}
			recipe := string(out)
			for _, want := range []string{
				"GOOS=linux", "GOARCH=arm64", "CGO_ENABLED=0", "-tags lambda.norpc", "-trimpath",
				"-o " + filepath.Join(artifacts, "bootstrap") + " ./functions/" + pkg,
			} {
				if !strings.Contains(recipe, want) {
					t.Errorf("make %s does not run %q; recipe:\n%s", targetName, want, recipe)
				}
			}
		})
	}
}

func TestTemplateQueues(t *testing.T) {
	tpl := loadTemplate(t)
	q := asMap(tpl.resource(t, "ChangesQueue", "AWS::SQS::Queue")["Properties"])
	dlq := asMap(tpl.resource(t, "ChangesDeadLetterQueue", "AWS::SQS::Queue")["Properties"])
	parked := asMap(tpl.resource(t, "ParkedUploadsQueue", "AWS::SQS::Queue")["Properties"])

	for name, p := range map[string]map[string]any{"ChangesQueue": q, "ChangesDeadLetterQueue": dlq, "ParkedUploadsQueue": parked} {
		t.Run(name, func(t *testing.T) {
			// Standard: the ledger orders by event time; FIFO's groups
			// would only cap throughput.
			if p["FifoQueue"] != nil {
				t.Errorf("FifoQueue = %v, want a standard queue", p["FifoQueue"])
			}
			if p["SqsManagedSseEnabled"] != true {
				t.Errorf("SqsManagedSseEnabled = %v, want true", p["SqsManagedSseEnabled"])
			}
			if n, _ := number(p["MessageRetentionPeriod"]); n != 14*24*3600 {
				t.Errorf("MessageRetentionPeriod = %v, want %d (14 days)", p["MessageRetentionPeriod"], 14*24*3600)
			}
		})
	}
	if got := target(get(q, "RedrivePolicy", "deadLetterTargetArn")); got != "ChangesDeadLetterQueue" {
		t.Errorf("RedrivePolicy.deadLetterTargetArn points at %q, want ChangesDeadLetterQueue", got)
	}
	if n, ok := number(get(q, "RedrivePolicy", "maxReceiveCount")); !ok || n < 5 || n > 10 {
		t.Errorf("RedrivePolicy.maxReceiveCount = %v, want 5 to 10 (AWS's minimum for Lambda event sources)", get(q, "RedrivePolicy", "maxReceiveCount"))
	}
	for name, p := range map[string]map[string]any{"ChangesDeadLetterQueue": dlq, "ParkedUploadsQueue": parked} {
		if _, ok := p["RedrivePolicy"]; ok {
			t.Errorf("%s has a RedrivePolicy; what lands there must stay put", name)
		}
	}

	apply := tpl.functionProps(t, "ApplyFunction")
	timeout, _ := number(apply["Timeout"])
	visibility, _ := number(q["VisibilityTimeout"])
	window, _ := number(get(tpl["Parameters"], "ApplyBatchWindow", "MaxValue"))
	if timeout <= 0 || window <= 0 || visibility < 6*timeout+window {
		t.Errorf("ChangesQueue VisibilityTimeout %v s < 6 x ApplyFunction Timeout %v s + the largest ApplyBatchWindow %v s", visibility, timeout, window)
	}

	// The legacy FIFO queues stay, retained, so an upgrade from a FIFO stack
	// deletes no message still in them; nothing uses them.
	for _, id := range []string{"AudienceQueue", "AudienceDeadLetterQueue"} {
		r := tpl.resource(t, id, "AWS::SQS::Queue")
		if r["DeletionPolicy"] != "Retain" || r["UpdateReplacePolicy"] != "Retain" {
			t.Errorf("%s: DeletionPolicy %v, UpdateReplacePolicy %v; want Retain for both (it may hold changes from before the upgrade)", id, r["DeletionPolicy"], r["UpdateReplacePolicy"])
		}
		if get(r, "Properties", "FifoQueue") != true {
			t.Errorf("%s is no longer FIFO: changing it would replace the queue", id)
		}
		name, _ := get(r, "Properties", "QueueName", "Fn::Sub").(string)
		if !strings.HasSuffix(name, ".fifo") {
			t.Errorf("%s QueueName %v changed (a new name replaces the queue)", id, get(r, "Properties", "QueueName"))
		}
	}
}

func TestTemplateTriggers(t *testing.T) {
	tpl := loadTemplate(t)

	t.Run("IngestFunction routes", func(t *testing.T) {
		var routes []string
		for name, ev := range asMap(tpl.functionProps(t, "IngestFunction")["Events"]) {
			if get(ev, "Type") != "HttpApi" {
				t.Errorf("event %s is %v, want HttpApi", name, get(ev, "Type"))
				continue
			}
			if target(get(ev, "Properties", "ApiId")) != "IngestApi" {
				t.Errorf("event %s is not on IngestApi", name)
			}
			routes = append(routes, fmt.Sprint(get(ev, "Properties", "Method"), " ", get(ev, "Properties", "Path")))
		}
		slices.Sort(routes)
		want := []string{"GET /healthz", "POST /v1/audiences", "POST /v1/profiles"}
		if diff := cmp.Diff(want, routes); diff != "" {
			t.Errorf("routes (-want +got):\n%s", diff)
		}
	})

	t.Run("ApplyFunction SQS event", func(t *testing.T) {
		evs := asMap(tpl.functionProps(t, "ApplyFunction")["Events"])
		if len(evs) != 1 {
			t.Fatalf("ApplyFunction has %d events, want 1", len(evs))
		}
		for name, ev := range evs {
			p := asMap(get(ev, "Properties"))
			if get(ev, "Type") != "SQS" || target(p["Queue"]) != "ChangesQueue" {
				t.Errorf("event %s: %v on %s, want SQS on ChangesQueue", name, get(ev, "Type"), describe(p["Queue"]))
			}
			if target(p["BatchSize"]) != "ApplyBatchSize" || target(p["MaximumBatchingWindowInSeconds"]) != "ApplyBatchWindow" {
				t.Errorf("BatchSize %s, MaximumBatchingWindowInSeconds %s; want !Ref ApplyBatchSize and !Ref ApplyBatchWindow",
					describe(p["BatchSize"]), describe(p["MaximumBatchingWindowInSeconds"]))
			}
			if !slices.Contains(list(p["FunctionResponseTypes"]), any("ReportBatchItemFailures")) {
				t.Errorf("FunctionResponseTypes = %v, want ReportBatchItemFailures", p["FunctionResponseTypes"])
			}
		}
		// Lambda refuses a batch over 10 from a standard queue without a
		// window of at least 1 s.
		params := asMap(tpl["Parameters"])
		size, _ := number(get(params, "ApplyBatchSize", "Default"))
		minWindow, _ := number(get(params, "ApplyBatchWindow", "MinValue"))
		maxSize, _ := number(get(params, "ApplyBatchSize", "MaxValue"))
		if size < 1 || maxSize > 10000 || minWindow < 1 {
			t.Errorf("ApplyBatchSize default %v (max %v), ApplyBatchWindow min %v: want a batch of 1 to 10000 and a window of at least 1 s", size, maxSize, minWindow)
		}
	})

	t.Run("UploadFunction stream and sweep", func(t *testing.T) {
		evs := asMap(tpl.functionProps(t, "UploadFunction")["Events"])
		if got := sortedKeys(evs); !slices.Equal(got, []string{"LedgerStream", "Sweep"}) {
			t.Fatalf("UploadFunction events %v, want LedgerStream and Sweep", got)
		}
		p := asMap(get(evs["LedgerStream"], "Properties"))
		if get(evs["LedgerStream"], "Type") != "DynamoDB" || fmt.Sprint(get(p["Stream"], "Fn::GetAtt")) != "[LedgerTable StreamArn]" {
			t.Errorf("LedgerStream: %v on %s, want DynamoDB on !GetAtt LedgerTable.StreamArn", get(evs["LedgerStream"], "Type"), describe(p["Stream"]))
		}
		filters := list(get(p, "FilterCriteria", "Filters"))
		if len(filters) != 1 || get(filters[0], "Pattern") != ledger.DynamoStreamFilter {
			t.Errorf("FilterCriteria.Filters = %v, want the one pattern ledger.DynamoStreamFilter %s", filters, ledger.DynamoStreamFilter)
		}
		if p["BisectBatchOnFunctionError"] != true {
			t.Errorf("BisectBatchOnFunctionError = %v, want true", p["BisectBatchOnFunctionError"])
		}
		if !slices.Contains(list(p["FunctionResponseTypes"]), any("ReportBatchItemFailures")) {
			t.Errorf("FunctionResponseTypes = %v, want ReportBatchItemFailures", p["FunctionResponseTypes"])
		}
		if n, ok := number(p["MaximumRetryAttempts"]); !ok || n < 1 || n > 100 {
			t.Errorf("MaximumRetryAttempts = %v, want 1 to 100 (not the default: retry until the record expires)", p["MaximumRetryAttempts"])
		}
		if n, ok := number(p["MaximumRecordAgeInSeconds"]); !ok || n <= 0 || n >= 24*3600 {
			t.Errorf("MaximumRecordAgeInSeconds = %v, want under the stream's 24 h", p["MaximumRecordAgeInSeconds"])
		}
		if got := target(get(p, "DestinationConfig", "OnFailure", "Destination")); got != "ParkedUploadsQueue" || get(p, "DestinationConfig", "OnFailure", "Type") != "SQS" {
			t.Errorf("DestinationConfig.OnFailure = %v, want SQS ParkedUploadsQueue", get(p, "DestinationConfig", "OnFailure"))
		}
		sweep := evs["Sweep"]
		if get(sweep, "Type") != "Schedule" || get(sweep, "Properties", "Schedule") != "rate(1 minute)" {
			t.Errorf("Sweep: %v %v, want Schedule rate(1 minute)", get(sweep, "Type"), get(sweep, "Properties", "Schedule"))
		}
	})

	t.Run("RefreshFunction schedule", func(t *testing.T) {
		p := tpl.functionProps(t, "RefreshFunction")
		if n, _ := number(p["ReservedConcurrentExecutions"]); n != 1 {
			t.Errorf("ReservedConcurrentExecutions = %v, want 1 (one token writer)", p["ReservedConcurrentExecutions"])
		}
		evs := asMap(p["Events"])
		if len(evs) != 1 {
			t.Fatalf("RefreshFunction has %d events, want 1", len(evs))
		}
		for name, ev := range evs {
			if get(ev, "Type") != "Schedule" || target(get(ev, "Properties", "Schedule")) != "RefreshSchedule" {
				t.Errorf("event %s: %v with schedule %s, want Schedule with !Ref RefreshSchedule", name, get(ev, "Type"), describe(get(ev, "Properties", "Schedule")))
			}
		}
	})
}

func TestTemplateHTTPAPI(t *testing.T) {
	tpl := loadTemplate(t)
	p := asMap(tpl.resource(t, "IngestApi", "AWS::Serverless::HttpApi")["Properties"])
	for _, k := range []string{"ThrottlingRateLimit", "ThrottlingBurstLimit"} {
		if n, ok := number(get(p, "DefaultRouteSettings", k)); !ok || n <= 0 {
			t.Errorf("DefaultRouteSettings.%s = %v, want a positive limit", k, get(p, "DefaultRouteSettings", k))
		}
	}
	if got := target(get(p, "AccessLogSettings", "DestinationArn")); got != "IngestApiAccessLogs" {
		t.Errorf("AccessLogSettings.DestinationArn points at %q, want IngestApiAccessLogs", got)
	}
	format, _ := get(p, "AccessLogSettings", "Format").(string)
	for _, want := range []string{"$context.requestId", "$context.status", "$context.routeKey"} {
		if !strings.Contains(format, want) {
			t.Errorf("access log format lacks %s", want)
		}
	}
	if strings.Contains(strings.ToLower(format), "authorization") || strings.Contains(format, "$request.header") {
		t.Errorf("access log format logs request headers; the Authorization header must stay out: %s", format)
	}
}

func TestTemplateAlarms(t *testing.T) {
	tpl := loadTemplate(t)
	type alarm struct {
		namespace, metric, dimension, dimTarget, comparison, missing string
	}
	want := map[string]alarm{
		"DeadLetterAlarm":        {"AWS/SQS", "ApproximateNumberOfMessagesVisible", "QueueName", "ChangesDeadLetterQueue", "GreaterThanThreshold", "notBreaching"},
		"QueueAgeAlarm":          {"AWS/SQS", "ApproximateAgeOfOldestMessage", "QueueName", "ChangesQueue", "GreaterThanThreshold", "notBreaching"},
		"ParkedUploadsAlarm":     {"AWS/SQS", "ApproximateNumberOfMessagesVisible", "QueueName", "ParkedUploadsQueue", "GreaterThanThreshold", "notBreaching"},
		"ApplyErrorsAlarm":       {"AWS/Lambda", "Errors", "FunctionName", "ApplyFunction", "GreaterThanThreshold", "notBreaching"},
		"UploadErrorsAlarm":      {"AWS/Lambda", "Errors", "FunctionName", "UploadFunction", "GreaterThanThreshold", "notBreaching"},
		"StreamIteratorAgeAlarm": {"AWS/Lambda", "IteratorAge", "FunctionName", "UploadFunction", "GreaterThanThreshold", "notBreaching"},
		"RefreshErrorsAlarm":     {"AWS/Lambda", "Errors", "FunctionName", "RefreshFunction", "GreaterThanThreshold", "notBreaching"},
		// The metric the refresh function emits (EMF, namespace pinlist,
		// dimension Connection = the connection's name).
		"TokenExpiryAlarm": {"pinlist", "DaysToAccessTokenExpiry", "Connection", "ConnectionName", "LessThanThreshold", "breaching"},
	}
	// Metric math alarms: their metrics' namespace/name and dimension targets.
	mathWant := map[string][]string{
		"RateLimitShareAlarm": {"pinlist/RateLimited ConnectionName", "pinlist/APICalls ConnectionName"},
		"LegacyQueueAlarm":    {"AWS/SQS/ApproximateNumberOfMessagesVisible AudienceQueue", "AWS/SQS/ApproximateNumberOfMessagesVisible AudienceDeadLetterQueue"},
	}
	got := tpl.resources("AWS::CloudWatch::Alarm")
	all := sortedKeys(want)
	all = append(all, sortedKeys(mathWant)...)
	slices.Sort(all)
	if diff := cmp.Diff(all, sortedKeys(got)); diff != "" {
		t.Errorf("alarms (-want +got):\n%s", diff)
	}
	for id, metrics := range mathWant {
		t.Run(id, func(t *testing.T) {
			p := asMap(got[id]["Properties"])
			var seen []string
			returned := 0
			for _, m := range list(p["Metrics"]) {
				if get(m, "ReturnData") == true {
					returned++
				}
				ms := get(m, "MetricStat", "Metric")
				if ms == nil {
					continue
				}
				dims := list(get(ms, "Dimensions"))
				if len(dims) != 1 {
					t.Errorf("metric %v has dimensions %v, want one", get(ms, "MetricName"), dims)
					continue
				}
				dv := asMap(get(dims[0], "Value"))
				ref := target(dv)
				if ga := list(dv["Fn::GetAtt"]); len(ga) == 2 {
					ref, _ = ga[0].(string)
				}
				seen = append(seen, fmt.Sprintf("%v/%v %s", get(ms, "Namespace"), get(ms, "MetricName"), ref))
			}
			if diff := cmp.Diff(sorted(metrics), sorted(seen)); diff != "" {
				t.Errorf("metrics (-want +got):\n%s", diff)
			}
			if returned != 1 {
				t.Errorf("%d expressions return data, want exactly 1", returned)
			}
			if p["TreatMissingData"] != "notBreaching" || len(list(p["AlarmActions"])) != 1 || target(list(p["AlarmActions"])[0]) != "AlertTopic" {
				t.Errorf("TreatMissingData %v, AlarmActions %v; want notBreaching and the alert topic", p["TreatMissingData"], p["AlarmActions"])
			}
			if desc := fmt.Sprint(p["AlarmDescription"]); !strings.Contains(desc, "docs/DEPLOY.md#alarms") {
				t.Errorf("AlarmDescription does not point at docs/DEPLOY.md#alarms: %s", desc)
			}
		})
	}
	for id, w := range want {
		t.Run(id, func(t *testing.T) {
			p := asMap(got[id]["Properties"])
			if p == nil {
				t.Fatalf("no alarm %s", id)
			}
			dims := list(p["Dimensions"])
			if p["Namespace"] != w.namespace || p["MetricName"] != w.metric || len(dims) != 1 ||
				get(dims[0], "Name") != w.dimension {
				t.Errorf("watches %v/%v %v, want %s/%s with dimension %s", p["Namespace"], p["MetricName"], dims, w.namespace, w.metric, w.dimension)
			}
			if len(dims) == 1 {
				// !GetAtt Queue.QueueName or !Ref Function/Parameter.
				dv := asMap(get(dims[0], "Value"))
				ref := target(dv)
				if ga := list(dv["Fn::GetAtt"]); len(ga) == 2 {
					ref, _ = ga[0].(string)
				}
				if ref != w.dimTarget {
					t.Errorf("dimension value refers to %q, want %s", ref, w.dimTarget)
				}
			}
			if p["ComparisonOperator"] != w.comparison {
				t.Errorf("ComparisonOperator = %v, want %s", p["ComparisonOperator"], w.comparison)
			}
			// PutMetricAlarm's limits (cfn-lint does not check them).
			period, _ := number(p["Period"])
			evals, _ := number(p["EvaluationPeriods"])
			limit := 7 * 24 * 3600.0
			if period < 3600 {
				limit = 24 * 3600
			}
			if period <= 0 || evals < 1 || period*evals > limit {
				t.Errorf("Period %v x EvaluationPeriods %v exceeds CloudWatch's %v s evaluation range", period, evals, limit)
			}
			if p["TreatMissingData"] != w.missing {
				t.Errorf("TreatMissingData = %v, want %s", p["TreatMissingData"], w.missing)
			}
			for _, k := range []string{"AlarmActions", "OKActions"} {
				acts := list(p[k])
				if len(acts) != 1 || target(acts[0]) != "AlertTopic" {
					t.Errorf("%s = %v, want [!Ref AlertTopic]", k, p[k])
				}
			}
			if desc := fmt.Sprint(p["AlarmDescription"]); !strings.Contains(desc, "docs/DEPLOY.md#alarms") {
				t.Errorf("AlarmDescription does not point at docs/DEPLOY.md#alarms: %s", desc)
			}
		})
	}

	t.Run("expiry threshold below RefreshBefore", func(t *testing.T) {
		threshold, _ := number(get(got["TokenExpiryAlarm"], "Properties", "Threshold"))
		period, _ := number(get(got["TokenExpiryAlarm"], "Properties", "Period"))
		before, err := time.ParseDuration(fmt.Sprint(get(tpl, "Parameters", "RefreshBefore", "Default")))
		if err != nil {
			t.Fatalf("RefreshBefore default: %v", err)
		}
		// Healthy values never fall below RefreshBefore minus one day (the
		// schedule's interval); the alarm must stay under that.
		if lowest := before.Hours()/24 - 1; threshold >= lowest {
			t.Errorf("TokenExpiryAlarm threshold %v days would fire on a healthy token (RefreshBefore %v leaves at least %.1f days)", threshold, before, lowest)
		}
		// A daily schedule must land at least one data point in every window.
		if period <= 24*3600 {
			t.Errorf("TokenExpiryAlarm period %v s must exceed a day, or a daily data point can miss a window and read as breaching", period)
		}
	})

	t.Run("each alarm is explained in docs/DEPLOY.md", func(t *testing.T) {
		doc, err := os.ReadFile(filepath.Join(repoRoot(t), "docs", "DEPLOY.md"))
		if err != nil {
			t.Fatalf("read docs/DEPLOY.md: %v", err)
		}
		if !regexp.MustCompile(`(?m)^## Alarms$`).Match(doc) {
			t.Errorf("docs/DEPLOY.md has no \"## Alarms\" section (the alarm descriptions link to it)")
		}
		for id, r := range got {
			name := strings.ReplaceAll(fmt.Sprint(get(r, "Properties", "AlarmName", "Fn::Sub")), "${AWS::StackName}", "<stack>")
			if !bytes.Contains(doc, []byte("### `"+name+"`")) {
				t.Errorf("docs/DEPLOY.md has no \"### `%s`\" heading for %s", name, id)
			}
		}
	})

	t.Run("optional email subscription", func(t *testing.T) {
		sub := tpl.resource(t, "AlertEmailSubscription", "AWS::SNS::Subscription")
		if sub["Condition"] != "HasAlertEmail" {
			t.Errorf("AlertEmailSubscription Condition = %v, want HasAlertEmail", sub["Condition"])
		}
		cond := fmt.Sprint(get(tpl, "Conditions", "HasAlertEmail"))
		if cond != "map[Fn::Not:[map[Fn::Equals:[map[Ref:AlertEmail] ]]]]" {
			t.Errorf("HasAlertEmail = %s, want !Not [!Equals [!Ref AlertEmail, \"\"]]", cond)
		}
	})
}

func TestTemplateSecrets(t *testing.T) {
	tpl := loadTemplate(t)
	pin := asMap(tpl.resource(t, "PinterestTokenSecret", "AWS::SecretsManager::Secret")["Properties"])
	// No value: pinlist connect writes the first version, and a value here
	// would be written back over the live token by a stack update.
	for _, k := range []string{"SecretString", "GenerateSecretString"} {
		if _, ok := pin[k]; ok {
			t.Errorf("PinterestTokenSecret sets %s; it must be created empty", k)
		}
	}
	ing := asMap(tpl.resource(t, "IngestTokenSecret", "AWS::SecretsManager::Secret")["Properties"])
	gen := asMap(ing["GenerateSecretString"])
	if gen["ExcludePunctuation"] != true {
		t.Errorf("IngestTokenSecret GenerateSecretString.ExcludePunctuation = %v, want true (the token goes in an HTTP header)", gen["ExcludePunctuation"])
	}
	if n, _ := number(gen["PasswordLength"]); n < 32 {
		t.Errorf("IngestTokenSecret PasswordLength = %v, want at least 32", gen["PasswordLength"])
	}
	if _, ok := gen["SecretStringTemplate"]; ok {
		t.Errorf("IngestTokenSecret has a SecretStringTemplate; its value must be the bare token")
	}
}

func TestTemplateOutputs(t *testing.T) {
	tpl := loadTemplate(t)
	want := map[string]string{
		"IngestUrl":                  "IngestApi",
		"PinterestTokenSecretArn":    "PinterestTokenSecret",
		"IngestTokenSecretArn":       "IngestTokenSecret",
		"ChangesQueueUrl":            "ChangesQueue",
		"ChangesDeadLetterQueueUrl":  "ChangesDeadLetterQueue",
		"ParkedUploadsQueueUrl":      "ParkedUploadsQueue",
		"LedgerTableName":            "LedgerTable",
		"AudienceQueueUrl":           "AudienceQueue",
		"AudienceDeadLetterQueueUrl": "AudienceDeadLetterQueue",
		"AlertTopicArn":              "AlertTopic",
		"DashboardUrl":               "Dashboard",
	}
	outputs := asMap(tpl["Outputs"])
	if diff := cmp.Diff(sortedKeys(want), sortedKeys(outputs)); diff != "" {
		t.Errorf("outputs (-want +got):\n%s", diff)
	}
	// The dashboard's console address: the dashboard's name is its !Ref.
	const dashboardURL = "https://${AWS::Region}.console.aws.amazon.com/cloudwatch/home?region=${AWS::Region}#dashboards:name=${Dashboard}"
	if got := get(outputs, "DashboardUrl", "Value", "Fn::Sub"); got != dashboardURL {
		t.Errorf("output DashboardUrl = %v, want !Sub %q", get(outputs, "DashboardUrl", "Value"), dashboardURL)
	}
	doc, err := os.ReadFile(filepath.Join(repoRoot(t), "docs", "DEPLOY.md"))
	if err != nil {
		t.Fatalf("read docs/DEPLOY.md: %v", err)
	}
	for name := range outputs {
		if !bytes.Contains(doc, []byte("| `"+name+"`")) && !bytes.Contains(doc, []byte(", `"+name+"` |")) {
			t.Errorf("docs/DEPLOY.md's outputs table does not describe output %s", name)
		}
	}
	for name, res := range want {
		if name == "DashboardUrl" {
			continue
		}
		v := asMap(get(outputs, name, "Value"))
		ref := target(v)
		if ga := list(v["Fn::GetAtt"]); len(ga) == 2 {
			ref, _ = ga[0].(string)
		}
		if ref != res {
			t.Errorf("output %s refers to %q, want %s", name, ref, res)
		}
	}
}
