package awsshape

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"strings"

	"github.com/aws/aws-lambda-go/events"
)

// Filter is a Lambda event filter (FilterCriteria): a record passes when
// any of its patterns matches the record's JSON. Only the subset of the
// pattern language pinlist's template uses is implemented: nested objects
// down to a list of {"exists": true} or {"exists": false} matchers. Any
// other matcher (a literal, prefix, numeric, anything-but, ...) is an error
// at NewFilter, never a silent pass or drop. A nil *Filter passes every
// record, as a mapping without FilterCriteria does.
type Filter struct {
	patterns []*patternNode
	source   []string
}

// patternNode is one level of a pattern: either fields (nested objects) or
// matchers (a leaf's list), never both.
type patternNode struct {
	fields   map[string]*patternNode
	matchers []bool // each an "exists" matcher: true = present, false = absent
}

// NewFilter parses patterns (JSON, as in FilterCriteria.Filters[].Pattern).
func NewFilter(patterns ...string) (*Filter, error) {
	f := &Filter{source: slices.Clone(patterns)}
	for i, p := range patterns {
		dec := json.NewDecoder(strings.NewReader(p))
		dec.UseNumber()
		var v any
		if err := dec.Decode(&v); err != nil {
			return nil, fmt.Errorf("filter pattern %d: not JSON: %w", i, err)
		}
		if dec.More() {
			return nil, fmt.Errorf("filter pattern %d: text after the JSON object", i)
		}
		obj, ok := v.(map[string]any)
		if !ok {
			return nil, fmt.Errorf("filter pattern %d: a %T, want a JSON object", i, v)
		}
		n, err := parsePattern(obj, "")
		if err != nil {
			return nil, fmt.Errorf("filter pattern %d: %w", i, err)
		}
		f.patterns = append(f.patterns, n)
	}
	return f, nil
}

func parsePattern(obj map[string]any, path string) (*patternNode, error) {
	if len(obj) == 0 {
		return nil, fmt.Errorf("%s: an empty object matches nothing useful", orRoot(path))
	}
	n := &patternNode{fields: map[string]*patternNode{}}
	for k, v := range obj {
		p := path + "." + k
		switch x := v.(type) {
		case map[string]any:
			child, err := parsePattern(x, p)
			if err != nil {
				return nil, err
			}
			n.fields[k] = child
		case []any:
			if len(x) == 0 {
				return nil, fmt.Errorf("%s: an empty matcher list", p)
			}
			leaf := &patternNode{}
			for _, m := range x {
				exists, err := existsMatcher(m)
				if err != nil {
					return nil, fmt.Errorf("%s: %w", p, err)
				}
				leaf.matchers = append(leaf.matchers, exists)
			}
			n.fields[k] = leaf
		default:
			return nil, fmt.Errorf("%s: %v is neither an object nor a list of matchers", p, v)
		}
	}
	return n, nil
}

// errUnsupported says which part of the pattern language is missing.
var errUnsupported = errors.New(`only {"exists": true|false} matchers are supported by the driver`)

func existsMatcher(m any) (bool, error) {
	obj, ok := m.(map[string]any)
	if !ok || len(obj) != 1 {
		return false, fmt.Errorf("matcher %v: %w", m, errUnsupported)
	}
	v, ok := obj["exists"]
	if !ok {
		return false, fmt.Errorf("matcher %v: %w", m, errUnsupported)
	}
	b, ok := v.(bool)
	if !ok {
		return false, fmt.Errorf(`matcher %v: "exists" takes true or false`, m)
	}
	return b, nil
}

func orRoot(p string) string {
	if p == "" {
		return "the pattern"
	}
	return p
}

// String is the filter's patterns as given.
func (f *Filter) String() string {
	if f == nil {
		return "(none)"
	}
	return strings.Join(f.source, " OR ")
}

// Match reports whether any pattern matches the JSON object doc (as
// json.Unmarshal decodes it into a map[string]any).
func (f *Filter) Match(doc map[string]any) bool {
	if f == nil || len(f.patterns) == 0 {
		return true
	}
	for _, p := range f.patterns {
		if p.match(doc) {
			return true
		}
	}
	return false
}

func (n *patternNode) match(obj map[string]any) bool {
	for k, child := range n.fields {
		v, present := obj[k]
		if child.matchers != nil {
			if !child.leafMatch(v, present) {
				return false
			}
			continue
		}
		sub, ok := v.(map[string]any)
		if !present {
			// Below an absent object only "exists": false can match.
			ok, sub = true, map[string]any{}
		}
		if !ok || !child.match(sub) {
			return false
		}
	}
	return true
}

// leafMatch: any matcher passing passes. "exists": true matches a present
// leaf (not an object), as in EventBridge's pattern language.
func (n *patternNode) leafMatch(v any, present bool) bool {
	_, isObject := v.(map[string]any)
	for _, exists := range n.matchers {
		if exists && present && !isObject {
			return true
		}
		if !exists && !present {
			return true
		}
	}
	return false
}

// MatchDynamoDB reports whether the filter passes a stream record, matched
// against the record's JSON as Lambda sees it ({"eventName": ...,
// "dynamodb": {"Keys": ..., "NewImage": {"attr": {"S": "..."}}}}).
func (f *Filter) MatchDynamoDB(r events.DynamoDBEventRecord) (bool, error) {
	if f == nil || len(f.patterns) == 0 {
		return true, nil
	}
	raw, err := json.Marshal(r)
	if err != nil {
		return false, fmt.Errorf("filter a stream record: encode it: %w", err)
	}
	var doc map[string]any
	dec := json.NewDecoder(bytes.NewReader(raw))
	dec.UseNumber()
	if err := dec.Decode(&doc); err != nil {
		return false, fmt.Errorf("filter a stream record: decode it: %w", err)
	}
	return f.Match(doc), nil
}
