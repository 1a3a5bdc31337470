package awsshape

import (
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"os"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"time"

	"gopkg.in/yaml.v3"
)

// Template is a SAM template (template.yaml) decoded into plain values, the
// short-form intrinsic tags (!Ref, !GetAtt, ...) turned into their long
// forms ({"Ref": x}, {"Fn::GetAtt": [resource, attribute]}), as the SAM
// transform's JSON has them. Only what the drivers need is read from it:
// the functions' event sources, timeouts and concurrency.
type Template struct {
	doc map[string]any
}

// Doc is the whole decoded template, for readers beyond the drivers (the
// template's own tests in infra/).
func (t *Template) Doc() map[string]any { return t.doc }

// LoadTemplate reads and decodes the template at path.
func LoadTemplate(path string) (*Template, error) {
	raw, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("read the template: %w", err)
	}
	t, err := ParseTemplate(raw)
	if err != nil {
		return nil, fmt.Errorf("decode %s: %w", path, err)
	}
	return t, nil
}

// ParseTemplate decodes a template.
func ParseTemplate(raw []byte) (*Template, error) {
	var doc yaml.Node
	if err := yaml.Unmarshal(raw, &doc); err != nil {
		return nil, fmt.Errorf("parse the template's YAML: %w", err)
	}
	v, err := decodeNode(&doc)
	if err != nil {
		return nil, fmt.Errorf("decode the template: %w", err)
	}
	m, ok := v.(map[string]any)
	if !ok {
		return nil, fmt.Errorf("decode the template: it is a %T, want a mapping", v)
	}
	return &Template{doc: m}, nil
}

// intrinsicNames maps CloudFormation's short-form YAML tags to the
// long-form function names.
var intrinsicNames = map[string]string{
	"!Ref": "Ref", "!Condition": "Condition", "!GetAtt": "Fn::GetAtt", "!Sub": "Fn::Sub",
	"!If": "Fn::If", "!Not": "Fn::Not", "!Equals": "Fn::Equals", "!And": "Fn::And", "!Or": "Fn::Or",
	"!Join": "Fn::Join", "!Select": "Fn::Select", "!Split": "Fn::Split", "!FindInMap": "Fn::FindInMap",
	"!Base64": "Fn::Base64", "!Cidr": "Fn::Cidr", "!GetAZs": "Fn::GetAZs", "!ImportValue": "Fn::ImportValue",
	"!Length": "Fn::Length", "!ToJsonString": "Fn::ToJsonString", "!Transform": "Fn::Transform",
}

// decodeNode turns a yaml.Node into plain values (see Template).
func decodeNode(n *yaml.Node) (any, error) {
	switch n.Kind {
	case yaml.DocumentNode:
		if len(n.Content) != 1 {
			return nil, fmt.Errorf("line %d: want one YAML document", n.Line)
		}
		return decodeNode(n.Content[0])
	case yaml.AliasNode:
		return decodeNode(n.Alias)
	}
	var v any
	switch n.Kind {
	case yaml.MappingNode:
		m := make(map[string]any, len(n.Content)/2)
		for i := 0; i+1 < len(n.Content); i += 2 {
			k, val := n.Content[i], n.Content[i+1]
			if k.Kind != yaml.ScalarNode {
				return nil, fmt.Errorf("line %d: mapping key is not a scalar", k.Line)
			}
			dv, err := decodeNode(val)
			if err != nil {
				return nil, err
			}
			if _, dup := m[k.Value]; dup {
				return nil, fmt.Errorf("line %d: duplicate key %q", k.Line, k.Value)
			}
			m[k.Value] = dv
		}
		v = m
	case yaml.SequenceNode:
		s := make([]any, 0, len(n.Content))
		for _, c := range n.Content {
			dv, err := decodeNode(c)
			if err != nil {
				return nil, err
			}
			s = append(s, dv)
		}
		v = s
	case yaml.ScalarNode:
		if strings.HasPrefix(n.Tag, "!") && !strings.HasPrefix(n.Tag, "!!") {
			v = n.Value // a tagged scalar is the function's string argument
			break
		}
		if err := n.Decode(&v); err != nil {
			return nil, fmt.Errorf("line %d: %w", n.Line, err)
		}
	default:
		return nil, fmt.Errorf("line %d: unexpected YAML node kind %v", n.Line, n.Kind)
	}
	if !strings.HasPrefix(n.Tag, "!") || strings.HasPrefix(n.Tag, "!!") {
		return v, nil
	}
	fn, ok := intrinsicNames[n.Tag]
	if !ok {
		return nil, fmt.Errorf("line %d: unknown tag %s", n.Line, n.Tag)
	}
	if s, ok := v.(string); ok && fn == "Fn::GetAtt" {
		res, attr, found := strings.Cut(s, ".")
		if !found {
			return nil, fmt.Errorf("line %d: !GetAtt %q has no attribute", n.Line, s)
		}
		v = []any{res, attr}
	}
	return map[string]any{fn: v}, nil
}

// Function is what the drivers need of one AWS::Serverless::Function.
type Function struct {
	// Name is the function's logical ID.
	Name string
	// Timeout is the invocation's time limit (Properties.Timeout, else
	// Globals.Function.Timeout, else Lambda's 3 seconds).
	Timeout time.Duration
	// ReservedConcurrency is ReservedConcurrentExecutions (0: not set).
	ReservedConcurrency int
	// Env is its environment (Globals' and its own), the values that
	// resolve to literals (parameter defaults); others are left out.
	Env map[string]string
	// SQS, Streams and Schedules are its event sources, by event name.
	SQS       []SQSSource
	Streams   []StreamSource
	Schedules []ScheduleSource
}

// SQSSource is an SQS event source mapping.
type SQSSource struct {
	Event string
	// Queue is the logical ID of the queue resource (!GetAtt Queue.Arn).
	Queue string
	// BatchSize (default 10) and Window (MaximumBatchingWindowInSeconds,
	// default 0) bound a batch.
	BatchSize int
	Window    time.Duration
	// ReportBatchItemFailures: the function's BatchItemFailures are
	// delivered again and the rest deleted; otherwise only an error fails
	// (and redelivers) the whole batch.
	ReportBatchItemFailures bool
	// MaxConcurrency is ScalingConfig.MaximumConcurrency (0: not set).
	MaxConcurrency int
}

// StreamSource is a DynamoDB stream event source mapping.
type StreamSource struct {
	Event string
	// Table is the logical ID of the table (!GetAtt Table.StreamArn).
	Table string
	// StartingPosition is TRIM_HORIZON or LATEST.
	StartingPosition string
	// BatchSize (default 100) and Window (default 0) bound a batch.
	BatchSize int
	Window    time.Duration
	// ReportBatchItemFailures: a response's BatchItemFailures retry the
	// batch from the lowest failed sequence number on.
	ReportBatchItemFailures bool
	// Bisect (BisectBatchOnFunctionError) halves a batch whose invocation
	// failed and retries the halves.
	Bisect bool
	// MaxRetries is MaximumRetryAttempts (-1, the default: until the
	// record expires).
	MaxRetries int
	// MaxRecordAge is MaximumRecordAgeInSeconds (0: not set, -1 in AWS).
	MaxRecordAge time.Duration
	// ParallelizationFactor is how many batches of one shard run at once
	// (default 1), records of one partition key always in the same one.
	ParallelizationFactor int
	// Filter passes the records the FilterCriteria's patterns match (all
	// records when there are none).
	Filter *Filter
	// OnFailure is the logical ID of the on-failure destination ("" none).
	OnFailure string
}

// ScheduleSource is a Schedule (EventBridge) event source.
type ScheduleSource struct {
	Event string
	// Every is the period of its rate(...) expression.
	Every time.Duration
	// Enabled is false when State is DISABLED (or Enabled false).
	Enabled bool
}

// Function reads the function with logical ID name.
func (t *Template) Function(name string) (Function, error) {
	fail := func(format string, args ...any) (Function, error) {
		return Function{}, fmt.Errorf("template function %s: %s", name, fmt.Sprintf(format, args...))
	}
	res, ok := t.resource(name)
	if !ok {
		return fail("no such resource")
	}
	if typ, _ := res["Type"].(string); typ != "AWS::Serverless::Function" {
		return fail("type %q, want AWS::Serverless::Function", typ)
	}
	if err := t.noEventSourceMappings(name); err != nil {
		return Function{}, err
	}
	props, _ := res["Properties"].(map[string]any)
	globals, _ := t.doc["Globals"].(map[string]any)
	gfn, _ := globals["Function"].(map[string]any)
	f := Function{Name: name, Timeout: 3 * time.Second}
	for _, src := range []map[string]any{gfn, props} {
		if v, ok := src["Timeout"]; ok {
			n, err := t.number(v)
			if err != nil {
				return fail("Timeout: %v", err)
			}
			f.Timeout = seconds(n)
		}
	}
	f.Env = map[string]string{}
	for _, src := range []map[string]any{gfn, props} {
		env, _ := src["Environment"].(map[string]any)
		vars, _ := env["Variables"].(map[string]any)
		for k, v := range vars {
			r, err := t.resolve(v)
			if err != nil {
				continue // a resource's ID or ARN: only known once deployed
			}
			f.Env[k] = fmt.Sprint(r)
		}
	}
	if v, ok := props["ReservedConcurrentExecutions"]; ok {
		n, err := t.integer(v)
		if err != nil {
			return fail("ReservedConcurrentExecutions: %v", err)
		}
		f.ReservedConcurrency = n
	}
	evs, _ := props["Events"].(map[string]any)
	names := make([]string, 0, len(evs))
	for ev := range evs {
		names = append(names, ev)
	}
	slices.Sort(names)
	for _, ev := range names {
		spec, _ := evs[ev].(map[string]any)
		typ, _ := spec["Type"].(string)
		p, _ := spec["Properties"].(map[string]any)
		var err error
		switch typ {
		case "SQS":
			var s SQSSource
			s, err = t.sqsSource(ev, p)
			f.SQS = append(f.SQS, s)
		case "DynamoDB":
			var s StreamSource
			s, err = t.streamSource(ev, p)
			f.Streams = append(f.Streams, s)
		case "Schedule":
			var s ScheduleSource
			s, err = t.scheduleSource(ev, p)
			f.Schedules = append(f.Schedules, s)
		case "HttpApi", "Api":
			// Invoked in-process by the caller (the ingest handler).
		default:
			err = fmt.Errorf("event type %q is not supported by the driver", typ)
		}
		if err != nil {
			return fail("event %s: %v", ev, err)
		}
	}
	return f, nil
}

// noEventSourceMappings fails when the template wires name with a plain
// AWS::Lambda::EventSourceMapping, which the driver does not read.
func (t *Template) noEventSourceMappings(name string) error {
	resources, _ := t.doc["Resources"].(map[string]any)
	for id, r := range resources {
		m, _ := r.(map[string]any)
		if typ, _ := m["Type"].(string); typ == "AWS::Lambda::EventSourceMapping" {
			b, _ := json.Marshal(m["Properties"])
			if strings.Contains(string(b), `"`+name+`"`) {
				return fmt.Errorf("template function %s: resource %s is an AWS::Lambda::EventSourceMapping, which the driver does not read (use the function's Events)", name, id)
			}
		}
	}
	return nil
}

func (t *Template) resource(name string) (map[string]any, bool) {
	resources, _ := t.doc["Resources"].(map[string]any)
	r, ok := resources[name].(map[string]any)
	return r, ok
}

// checkKeys fails on a property the driver does not understand: silently
// ignoring one would make the driver behave unlike Lambda.
func checkKeys(p map[string]any, known ...string) error {
	var unknown []string
	for k := range p {
		if !slices.Contains(known, k) {
			unknown = append(unknown, k)
		}
	}
	if len(unknown) > 0 {
		slices.Sort(unknown)
		return fmt.Errorf("properties %s are not supported by the driver", strings.Join(unknown, ", "))
	}
	return nil
}

func (t *Template) sqsSource(ev string, p map[string]any) (SQSSource, error) {
	if err := checkKeys(p, "Queue", "BatchSize", "MaximumBatchingWindowInSeconds", "FunctionResponseTypes", "ScalingConfig", "Enabled"); err != nil {
		return SQSSource{}, err
	}
	s := SQSSource{Event: ev, BatchSize: 10}
	var err error
	if s.Queue, err = t.getAttResource(p["Queue"], "Arn"); err != nil {
		return s, fmt.Errorf("Queue: %w", err)
	}
	if err := t.optInt(p, "BatchSize", &s.BatchSize); err != nil {
		return s, err
	}
	if s.Window, err = t.window(p); err != nil {
		return s, err
	}
	if s.ReportBatchItemFailures, err = t.reportFailures(p); err != nil {
		return s, err
	}
	if sc, ok := p["ScalingConfig"].(map[string]any); ok {
		if err := checkKeys(sc, "MaximumConcurrency"); err != nil {
			return s, fmt.Errorf("ScalingConfig: %w", err)
		}
		if err := t.optInt(sc, "MaximumConcurrency", &s.MaxConcurrency); err != nil {
			return s, err
		}
	}
	if err := t.enabled(p); err != nil {
		return s, err
	}
	if s.BatchSize < 1 || s.BatchSize > 10_000 {
		return s, fmt.Errorf("BatchSize %d is outside 1..10000", s.BatchSize)
	}
	if s.BatchSize > 10 && s.Window < time.Second {
		return s, fmt.Errorf("BatchSize %d over 10 needs MaximumBatchingWindowInSeconds of at least 1", s.BatchSize)
	}
	return s, nil
}

func (t *Template) streamSource(ev string, p map[string]any) (StreamSource, error) {
	if err := checkKeys(p, "Stream", "StartingPosition", "BatchSize", "MaximumBatchingWindowInSeconds",
		"FunctionResponseTypes", "FilterCriteria", "BisectBatchOnFunctionError", "MaximumRetryAttempts",
		"MaximumRecordAgeInSeconds", "ParallelizationFactor", "DestinationConfig", "Enabled"); err != nil {
		return StreamSource{}, err
	}
	s := StreamSource{Event: ev, BatchSize: 100, MaxRetries: -1, ParallelizationFactor: 1}
	var err error
	if s.Table, err = t.getAttResource(p["Stream"], "StreamArn"); err != nil {
		return s, fmt.Errorf("Stream: %w", err)
	}
	if s.StartingPosition, err = t.str(p["StartingPosition"]); err != nil {
		return s, fmt.Errorf("StartingPosition: %w", err)
	}
	if s.StartingPosition != "TRIM_HORIZON" && s.StartingPosition != "LATEST" {
		return s, fmt.Errorf("StartingPosition %q is not TRIM_HORIZON or LATEST", s.StartingPosition)
	}
	if err := t.optInt(p, "BatchSize", &s.BatchSize); err != nil {
		return s, err
	}
	if s.Window, err = t.window(p); err != nil {
		return s, err
	}
	if s.ReportBatchItemFailures, err = t.reportFailures(p); err != nil {
		return s, err
	}
	if v, ok := p["BisectBatchOnFunctionError"]; ok {
		b, ok := v.(bool)
		if !ok {
			return s, fmt.Errorf("BisectBatchOnFunctionError %v is not a boolean", v)
		}
		s.Bisect = b
	}
	if err := t.optInt(p, "MaximumRetryAttempts", &s.MaxRetries); err != nil {
		return s, err
	}
	var age int
	if err := t.optInt(p, "MaximumRecordAgeInSeconds", &age); err != nil {
		return s, err
	}
	if age > 0 {
		s.MaxRecordAge = time.Duration(age) * time.Second
	}
	if err := t.optInt(p, "ParallelizationFactor", &s.ParallelizationFactor); err != nil {
		return s, err
	}
	if fc, ok := p["FilterCriteria"]; ok {
		if s.Filter, err = t.filterCriteria(fc); err != nil {
			return s, fmt.Errorf("FilterCriteria: %w", err)
		}
	}
	if dc, ok := p["DestinationConfig"].(map[string]any); ok {
		if err := checkKeys(dc, "OnFailure"); err != nil {
			return s, fmt.Errorf("DestinationConfig: %w", err)
		}
		of, _ := dc["OnFailure"].(map[string]any)
		if err := checkKeys(of, "Type", "Destination"); err != nil {
			return s, fmt.Errorf("DestinationConfig.OnFailure: %w", err)
		}
		if s.OnFailure, err = t.getAttResource(of["Destination"], "Arn"); err != nil {
			return s, fmt.Errorf("DestinationConfig.OnFailure.Destination: %w", err)
		}
	}
	if err := t.enabled(p); err != nil {
		return s, err
	}
	switch {
	case s.BatchSize < 1 || s.BatchSize > 10_000:
		return s, fmt.Errorf("BatchSize %d is outside 1..10000", s.BatchSize)
	case s.ParallelizationFactor < 1 || s.ParallelizationFactor > 10:
		return s, fmt.Errorf("ParallelizationFactor %d is outside 1..10", s.ParallelizationFactor)
	case s.MaxRetries < -1:
		return s, fmt.Errorf("MaximumRetryAttempts %d is below -1", s.MaxRetries)
	}
	return s, nil
}

var rateExpr = regexp.MustCompile(`^rate\((\d+) (minute|minutes|hour|hours|day|days)\)$`)

func (t *Template) scheduleSource(ev string, p map[string]any) (ScheduleSource, error) {
	if err := checkKeys(p, "Schedule", "Description", "State", "Enabled", "Name"); err != nil {
		return ScheduleSource{}, err
	}
	s := ScheduleSource{Event: ev, Enabled: true}
	expr, err := t.str(p["Schedule"])
	if err != nil {
		return s, fmt.Errorf("Schedule: %w", err)
	}
	m := rateExpr.FindStringSubmatch(expr)
	if m == nil {
		return s, fmt.Errorf("Schedule %q: only rate(N minutes|hours|days) is supported by the driver", expr)
	}
	n, _ := strconv.Atoi(m[1])
	unit := map[string]time.Duration{"minute": time.Minute, "hour": time.Hour, "day": 24 * time.Hour}[strings.TrimSuffix(m[2], "s")]
	s.Every = time.Duration(n) * unit
	if v, ok := p["State"]; ok {
		st, err := t.str(v)
		if err != nil {
			return s, fmt.Errorf("State: %w", err)
		}
		s.Enabled = st == "ENABLED"
	}
	if v, ok := p["Enabled"].(bool); ok {
		s.Enabled = v
	}
	return s, nil
}

func (t *Template) window(p map[string]any) (time.Duration, error) {
	v, ok := p["MaximumBatchingWindowInSeconds"]
	if !ok {
		return 0, nil
	}
	n, err := t.integer(v)
	if err != nil {
		return 0, fmt.Errorf("MaximumBatchingWindowInSeconds: %w", err)
	}
	if n < 0 || n > 300 {
		return 0, fmt.Errorf("MaximumBatchingWindowInSeconds %d is outside 0..300", n)
	}
	return time.Duration(n) * time.Second, nil
}

func (t *Template) reportFailures(p map[string]any) (bool, error) {
	v, ok := p["FunctionResponseTypes"]
	if !ok {
		return false, nil
	}
	l, ok := v.([]any)
	if !ok {
		return false, fmt.Errorf("FunctionResponseTypes %v is not a list", v)
	}
	report := false
	for _, x := range l {
		s, err := t.str(x)
		if err != nil || s != "ReportBatchItemFailures" {
			return false, fmt.Errorf("FunctionResponseTypes: %v is not ReportBatchItemFailures", x)
		}
		report = true
	}
	return report, nil
}

func (t *Template) enabled(p map[string]any) error {
	if v, ok := p["Enabled"]; ok && v != true {
		return errors.New("a disabled event source (Enabled false) is not supported by the driver")
	}
	return nil
}

func (t *Template) optInt(p map[string]any, key string, dst *int) error {
	v, ok := p[key]
	if !ok {
		return nil
	}
	n, err := t.integer(v)
	if err != nil {
		return fmt.Errorf("%s: %w", key, err)
	}
	*dst = n
	return nil
}

// resolve turns a value into a literal: a Ref to a parameter is the
// parameter's default; any other intrinsic function is an error.
func (t *Template) resolve(v any) (any, error) {
	m, ok := v.(map[string]any)
	if !ok {
		return v, nil
	}
	if len(m) != 1 {
		return nil, fmt.Errorf("%v is not a literal or a single intrinsic function", v)
	}
	ref, ok := m["Ref"].(string)
	if !ok {
		for k := range m {
			return nil, fmt.Errorf("intrinsic function %s is not supported here", k)
		}
	}
	params, _ := t.doc["Parameters"].(map[string]any)
	p, ok := params[ref].(map[string]any)
	if !ok {
		return nil, fmt.Errorf("!Ref %s: no such parameter", ref)
	}
	def, ok := p["Default"]
	if !ok {
		return nil, fmt.Errorf("!Ref %s: the parameter has no default", ref)
	}
	return def, nil
}

func (t *Template) number(v any) (float64, error) {
	r, err := t.resolve(v)
	if err != nil {
		return 0, err
	}
	switch x := r.(type) {
	case int:
		return float64(x), nil
	case float64:
		return x, nil
	case string:
		f, err := strconv.ParseFloat(x, 64)
		if err != nil {
			return 0, fmt.Errorf("%q is not a number", x)
		}
		return f, nil
	}
	return 0, fmt.Errorf("%v (%T) is not a number", r, r)
}

func (t *Template) integer(v any) (int, error) {
	f, err := t.number(v)
	if err != nil {
		return 0, err
	}
	if f != math.Trunc(f) || math.Abs(f) > 1<<31 {
		return 0, fmt.Errorf("%v is not an integer", f)
	}
	return int(f), nil
}

func (t *Template) str(v any) (string, error) {
	r, err := t.resolve(v)
	if err != nil {
		return "", err
	}
	s, ok := r.(string)
	if !ok {
		return "", fmt.Errorf("%v (%T) is not a string", r, r)
	}
	return s, nil
}

// getAttResource reads !GetAtt Resource.attr and returns Resource, which
// must exist.
func (t *Template) getAttResource(v any, attr string) (string, error) {
	m, _ := v.(map[string]any)
	ga, _ := m["Fn::GetAtt"].([]any)
	if len(m) != 1 || len(ga) != 2 {
		return "", fmt.Errorf("%v is not !GetAtt Resource.%s", v, attr)
	}
	res, _ := ga[0].(string)
	a, _ := ga[1].(string)
	if a != attr {
		return "", fmt.Errorf("!GetAtt %s.%s: want attribute %s", res, a, attr)
	}
	if _, ok := t.resource(res); !ok {
		return "", fmt.Errorf("!GetAtt %s.%s: no such resource", res, a)
	}
	return res, nil
}

func (t *Template) filterCriteria(v any) (*Filter, error) {
	m, ok := v.(map[string]any)
	if !ok {
		return nil, fmt.Errorf("%v is not a mapping", v)
	}
	if err := checkKeys(m, "Filters"); err != nil {
		return nil, err
	}
	l, _ := m["Filters"].([]any)
	var patterns []string
	for i, x := range l {
		f, _ := x.(map[string]any)
		if err := checkKeys(f, "Pattern"); err != nil {
			return nil, fmt.Errorf("Filters[%d]: %w", i, err)
		}
		p, err := t.str(f["Pattern"])
		if err != nil {
			return nil, fmt.Errorf("Filters[%d].Pattern: %w", i, err)
		}
		patterns = append(patterns, p)
	}
	return NewFilter(patterns...)
}

func seconds(n float64) time.Duration { return time.Duration(n * float64(time.Second)) }

// QueueVisibilityTimeout is the VisibilityTimeout of the queue resource
// name (SQS's default, 30 seconds, when it has none).
func (t *Template) QueueVisibilityTimeout(name string) (time.Duration, error) {
	res, ok := t.resource(name)
	if !ok {
		return 0, fmt.Errorf("template queue %s: no such resource", name)
	}
	if typ, _ := res["Type"].(string); typ != "AWS::SQS::Queue" {
		return 0, fmt.Errorf("template queue %s: type %q, want AWS::SQS::Queue", name, typ)
	}
	props, _ := res["Properties"].(map[string]any)
	v, ok := props["VisibilityTimeout"]
	if !ok {
		return 30 * time.Second, nil
	}
	n, err := t.integer(v)
	if err != nil {
		return 0, fmt.Errorf("template queue %s: VisibilityTimeout: %w", name, err)
	}
	return time.Duration(n) * time.Second, nil
}
