package infra

import (
	"bytes"
	"crypto/md5"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"math/big"
	"os"
	"path/filepath"
	"reflect"
	"regexp"
	"slices"
	"strings"
	"testing"

	"github.com/aws/aws-lambda-go/events"
	"github.com/google/go-cmp/cmp"

	"github.com/pinlist/pinlist/internal/audience"
	"github.com/pinlist/pinlist/internal/ledger"
	"github.com/pinlist/pinlist/internal/wire"
)

// localTestIngestToken is the bearer token in the events/ API Gateway
// requests (documented in events/README.md): run the ingest function locally
// with PINLIST_INGEST_TOKEN set to it.
const localTestIngestToken = "local-test-ingest-token-0c6f9e2a7b1d4e58"

// eventKinds is every file in events/ and the aws-lambda-go type it holds.
var eventKinds = map[string]string{
	"apigw-audience.json":        "apigw",
	"apigw-bad-body.json":        "apigw",
	"apigw-healthz.json":         "apigw",
	"apigw-profiles.json":        "apigw",
	"apigw-profiles-base64.json": "apigw",
	"apigw-unauthorized.json":    "apigw",
	"schedule.json":              "eventbridge",
	"schedule-force.json":        "eventbridge",
	"schedule-sweep.json":        "eventbridge",
	"sqs-batch.json":             "sqs",
	"sqs-standard-batch.json":    "sqs",
	"dynamodb-stream.json":       "dynamodb",
}

// exampleIdentifiers are the identifiers in apigw-profiles.json as a caller
// sends them, and as ARCHITECTURE.md's mapping normalises them before
// SHA-256; the hashes in sqs-batch.json are of the normalised forms.
var exampleIdentifiers = []struct {
	namespace  string
	list       audience.ListType
	raw        string
	normalized string
}{
	{"Email", audience.ListEmail, "  Jane.Doe@Example.com ", "jane.doe@example.com"},
	{"email", audience.ListEmail, "marc.muller@example.org", "marc.muller@example.org"},
	{"GAID", audience.ListMAID, "38400000-8CF0-11BD-B23E-10B96E40000D", "38400000-8cf0-11bd-b23e-10b96e40000d"},
	{"IDFA", audience.ListIDFA, "6d92078a-8246-4ba4-ae5b-76104861e7dc", "6D92078A-8246-4BA4-AE5B-76104861E7DC"},
}

func readEvent(t *testing.T, name string) []byte {
	t.Helper()
	raw, err := os.ReadFile(filepath.Join(repoRoot(t), "events", name))
	if err != nil {
		t.Fatalf("read events/%s: %v", name, err)
	}
	return raw
}

func TestEventsDirectory(t *testing.T) {
	entries, err := os.ReadDir(filepath.Join(repoRoot(t), "events"))
	if err != nil {
		t.Fatalf("list events/: %v", err)
	}
	var got []string
	for _, e := range entries {
		if strings.HasSuffix(e.Name(), ".json") {
			got = append(got, e.Name())
		}
	}
	if diff := cmp.Diff(sortedKeys(eventKinds), got); diff != "" {
		t.Errorf("events/*.json (-covered by this test +present):\n%s", diff)
	}
}

// TestEventsRoundTrip decodes every sample into its aws-lambda-go type and
// encodes it again: every field in the file must survive, so none is
// misspelt or unknown to the type the function receives.
func TestEventsRoundTrip(t *testing.T) {
	for name, kind := range eventKinds {
		t.Run(name, func(t *testing.T) {
			raw := readEvent(t, name)
			var typed any
			switch kind {
			case "apigw":
				typed = new(events.APIGatewayV2HTTPRequest)
			case "sqs":
				typed = new(events.SQSEvent)
			case "eventbridge":
				typed = new(events.EventBridgeEvent)
			case "dynamodb":
				typed = new(events.DynamoDBEvent)
			default:
				t.Fatalf("unknown kind %q", kind)
			}
			if err := json.Unmarshal(raw, typed); err != nil {
				t.Fatalf("decode as %T: %v", typed, err)
			}
			again, err := json.Marshal(typed)
			if err != nil {
				t.Fatalf("encode %T: %v", typed, err)
			}
			var orig, round any
			if err := json.Unmarshal(raw, &orig); err != nil {
				t.Fatalf("decode: %v", err)
			}
			if err := json.Unmarshal(again, &round); err != nil {
				t.Fatalf("decode again: %v", err)
			}
			for _, p := range lostInRoundTrip("", orig, round) {
				t.Errorf("%s: lost or changed by %T", p, typed)
			}
		})
	}
}

// lostInRoundTrip lists the paths in orig that are missing from or differ in
// round; round may have more (zero-valued fields the type always writes).
func lostInRoundTrip(path string, orig, round any) []string {
	switch o := orig.(type) {
	case map[string]any:
		r, ok := round.(map[string]any)
		if !ok {
			return []string{path}
		}
		var out []string
		for k, v := range o {
			rv, ok := r[k]
			if !ok {
				out = append(out, path+"/"+k)
				continue
			}
			out = append(out, lostInRoundTrip(path+"/"+k, v, rv)...)
		}
		return out
	case []any:
		r, ok := round.([]any)
		if !ok || len(r) != len(o) {
			return []string{path}
		}
		var out []string
		for i := range o {
			out = append(out, lostInRoundTrip(fmt.Sprintf("%s/%d", path, i), o[i], r[i])...)
		}
		return out
	default:
		if !reflect.DeepEqual(orig, round) {
			return []string{path}
		}
		return nil
	}
}

func TestLostInRoundTrip(t *testing.T) {
	tests := []struct {
		name        string
		orig, round string
		want        []string
	}{
		{"identical", `{"a":1,"b":[1,{"c":"x"}]}`, `{"a":1,"b":[1,{"c":"x"}]}`, nil},
		{"extra zero fields are fine", `{"a":1}`, `{"a":1,"z":""}`, nil},
		{"dropped field", `{"a":1,"typo":2}`, `{"a":1}`, []string{"/typo"}},
		{"changed value", `{"a":{"b":"x"}}`, `{"a":{"b":"y"}}`, []string{"/a/b"}},
		{"shorter list", `{"a":[1,2]}`, `{"a":[1]}`, []string{"/a"}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			var o, r any
			if err := json.Unmarshal([]byte(tc.orig), &o); err != nil {
				t.Fatal(err)
			}
			if err := json.Unmarshal([]byte(tc.round), &r); err != nil {
				t.Fatal(err)
			}
			if diff := cmp.Diff(tc.want, lostInRoundTrip("", o, r)); diff != "" {
				t.Errorf("(-want +got):\n%s", diff)
			}
		})
	}
}

func TestAPIGatewayEvents(t *testing.T) {
	tests := []struct {
		file   string
		method string
		path   string
		auth   string // the Authorization header, "" for none
		body   string // "profiles", "audience", "malformed" or "" for none
		base64 bool
	}{
		{"apigw-profiles.json", "POST", "/v1/profiles", "Bearer " + localTestIngestToken, "profiles", false},
		{"apigw-profiles-base64.json", "POST", "/v1/profiles", "Bearer " + localTestIngestToken, "profiles", true},
		{"apigw-audience.json", "POST", "/v1/audiences", "Bearer " + localTestIngestToken, "audience", false},
		{"apigw-bad-body.json", "POST", "/v1/profiles", "Bearer " + localTestIngestToken, "malformed", false},
		{"apigw-unauthorized.json", "POST", "/v1/profiles", "Bearer not-the-ingest-token", "profiles", false},
		{"apigw-healthz.json", "GET", "/healthz", "", "", false},
	}
	for _, tc := range tests {
		t.Run(tc.file, func(t *testing.T) {
			var ev events.APIGatewayV2HTTPRequest
			if err := json.Unmarshal(readEvent(t, tc.file), &ev); err != nil {
				t.Fatalf("decode: %v", err)
			}
			route := tc.method + " " + tc.path
			if ev.Version != "2.0" || ev.RouteKey != route || ev.RequestContext.RouteKey != route ||
				ev.RawPath != tc.path || ev.RequestContext.HTTP.Path != tc.path || ev.RequestContext.HTTP.Method != tc.method {
				t.Errorf("version %q route %q/%q path %q/%q method %q, want 2.0 %q %s %s",
					ev.Version, ev.RouteKey, ev.RequestContext.RouteKey, ev.RawPath, ev.RequestContext.HTTP.Path, ev.RequestContext.HTTP.Method, route, tc.path, tc.method)
			}
			if ev.RequestContext.Stage != "$default" {
				t.Errorf("stage %q, want $default (the template's HttpApi stage)", ev.RequestContext.Stage)
			}
			for k := range ev.Headers {
				if k != strings.ToLower(k) {
					t.Errorf("header %q: HTTP API v2 events carry lower-case header names", k)
				}
			}
			if got := ev.Headers["authorization"]; got != tc.auth {
				t.Errorf("authorization %q, want %q", got, tc.auth)
			}
			if ev.IsBase64Encoded != tc.base64 {
				t.Errorf("isBase64Encoded %v, want %v", ev.IsBase64Encoded, tc.base64)
			}

			body := []byte(ev.Body)
			if ev.IsBase64Encoded {
				var err error
				if body, err = base64.StdEncoding.DecodeString(ev.Body); err != nil {
					t.Fatalf("body is not base64: %v", err)
				}
			}
			if tc.body == "" {
				if len(body) != 0 {
					t.Errorf("unexpected body %q", body)
				}
				return
			}
			if ev.Headers["content-type"] != "application/json" {
				t.Errorf("content-type %q, want application/json", ev.Headers["content-type"])
			}
			if got := ev.Headers["content-length"]; got != fmt.Sprint(len(body)) {
				t.Errorf("content-length %s, body is %d bytes", got, len(body))
			}
			switch tc.body {
			case "malformed":
				if json.Valid(body) {
					t.Errorf("the bad body is valid JSON")
				}
			case "audience":
				var meta struct{ ID, Name, Description, Namespace string }
				if err := json.Unmarshal(body, &meta); err != nil || meta.ID == "" || meta.Name == "" || meta.Namespace == "" {
					t.Errorf("audience metadata %s: want id, name and namespace (%v)", body, err)
				}
			case "profiles":
				checkProfilesBody(t, body)
			}
		})
	}

	t.Run("base64 body equals the plain one", func(t *testing.T) {
		var plain, enc events.APIGatewayV2HTTPRequest
		if err := json.Unmarshal(readEvent(t, "apigw-profiles.json"), &plain); err != nil {
			t.Fatal(err)
		}
		if err := json.Unmarshal(readEvent(t, "apigw-profiles-base64.json"), &enc); err != nil {
			t.Fatal(err)
		}
		dec, err := base64.StdEncoding.DecodeString(enc.Body)
		if err != nil || string(dec) != plain.Body {
			t.Errorf("the base64 body does not decode to apigw-profiles.json's body (%v)", err)
		}
	})
}

// checkProfilesBody checks the sample AEP body covers what the mapping must
// handle: emails, GAID and IDFA, realized, existing and exited memberships.
func checkProfilesBody(t *testing.T, body []byte) {
	t.Helper()
	var profiles []struct {
		IdentityMap       map[string][]struct{ ID string }                                     `json:"identityMap"`
		SegmentMembership map[string]map[string]struct{ Status, LastQualificationTime string } `json:"segmentMembership"`
	}
	if err := json.Unmarshal(body, &profiles); err != nil {
		t.Fatalf("profiles body: %v", err)
	}
	namespaces := map[string]bool{}
	statuses := map[string]bool{}
	ids := map[string]bool{}
	for _, p := range profiles {
		for ns, list := range p.IdentityMap {
			namespaces[strings.ToLower(ns)] = true
			for _, id := range list {
				ids[ns+"="+id.ID] = true
			}
		}
		for _, auds := range p.SegmentMembership {
			for _, m := range auds {
				statuses[m.Status] = true
			}
		}
	}
	for _, ns := range []string{"email", "gaid", "idfa"} {
		if !namespaces[ns] {
			t.Errorf("no %s identities", ns)
		}
	}
	for _, st := range []string{"realized", "existing", "exited"} {
		if !statuses[st] {
			t.Errorf("no %s membership", st)
		}
	}
	for _, x := range exampleIdentifiers {
		if !ids[x.namespace+"="+x.raw] {
			t.Errorf("documented identifier %s %q is not in the body", x.namespace, x.raw)
		}
	}
}

// queueMessage is the queue message format between ingest and upload
// (internal/wire): many changes of one audience per message, or
// one audience's metadata.
type queueMessage struct {
	V           int          `json:"v"`
	Kind        string       `json:"kind"`
	Audience    audience.Ref `json:"audience"`
	Name        string       `json:"name,omitempty"`
	Description string       `json:"description,omitempty"`
	Records     []struct {
		List audience.ListType `json:"l"`
		Op   audience.Op       `json:"o"`
		Hash string            `json:"h"`
		Time int64             `json:"t"`
	} `json:"records,omitempty"`
}

var sha256Hex = regexp.MustCompile(`^[0-9a-f]{64}$`)

func TestSQSBatchEvent(t *testing.T) {
	var ev events.SQSEvent
	if err := json.Unmarshal(readEvent(t, "sqs-batch.json"), &ev); err != nil {
		t.Fatalf("decode: %v", err)
	}
	if n := len(ev.Records); n < 2 || n > 10 {
		t.Fatalf("%d records, want 2 to 10 (the template's BatchSize)", n)
	}

	known := map[string]audience.ListType{} // hash -> list type of the documented identifiers
	for _, x := range exampleIdentifiers {
		sum := sha256.Sum256([]byte(x.normalized))
		known[hex.EncodeToString(sum[:])] = x.list
	}
	seen := map[string]bool{}
	lastSeq := map[string]*big.Int{}
	hasMeta := map[string]bool{}

	for i, r := range ev.Records {
		where := fmt.Sprintf("record %d (%s)", i, r.MessageId)
		if r.EventSource != "aws:sqs" || !strings.HasPrefix(r.EventSourceARN, "arn:aws:sqs:"+r.AWSRegion+":") || !strings.HasSuffix(r.EventSourceARN, ".fifo") {
			t.Errorf("%s: source %s %s in %s, want aws:sqs from a .fifo queue in the record's region", where, r.EventSource, r.EventSourceARN, r.AWSRegion)
		}
		for _, a := range []string{"MessageGroupId", "MessageDeduplicationId", "SequenceNumber", "ApproximateReceiveCount", "SentTimestamp", "ApproximateFirstReceiveTimestamp", "SenderId"} {
			if r.Attributes[a] == "" {
				t.Errorf("%s: attribute %s missing", where, a)
			}
		}
		if sum := md5.Sum([]byte(r.Body)); r.Md5OfBody != hex.EncodeToString(sum[:]) {
			t.Errorf("%s: md5OfBody %s is not the body's MD5", where, r.Md5OfBody)
		}
		// ingest deduplicates by content: the ID is the body's SHA-256.
		if sum := sha256.Sum256([]byte(r.Body)); r.Attributes["MessageDeduplicationId"] != hex.EncodeToString(sum[:]) {
			t.Errorf("%s: MessageDeduplicationId is not the body's SHA-256", where)
		}
		if strings.Contains(r.Body, "@") {
			t.Errorf("%s: the body holds an '@': plain emails never reach the queue", where)
		}

		var m queueMessage
		dec := json.NewDecoder(bytes.NewReader([]byte(r.Body)))
		dec.DisallowUnknownFields()
		if err := dec.Decode(&m); err != nil {
			t.Errorf("%s: body is not a queue message: %v", where, err)
			continue
		}
		group := r.Attributes["MessageGroupId"]
		if m.V != 1 || m.Audience.Namespace == "" || m.Audience.ID == "" || group != m.Audience.Key() {
			t.Errorf("%s: v %d audience %+v in group %q, want v 1 and group = the audience's key", where, m.V, m.Audience, group)
		}

		seq, ok := new(big.Int).SetString(r.Attributes["SequenceNumber"], 10)
		if !ok {
			t.Errorf("%s: SequenceNumber %q is not a number", where, r.Attributes["SequenceNumber"])
		} else if prev := lastSeq[group]; prev != nil && seq.Cmp(prev) <= 0 {
			t.Errorf("%s: SequenceNumber %s does not follow %s in group %s (FIFO order)", where, seq, prev, group)
		} else {
			lastSeq[group] = seq
		}

		switch m.Kind {
		case "audience":
			if m.Name == "" || len(m.Records) != 0 {
				t.Errorf("%s: an audience message needs a name and no records", where)
			}
			hasMeta[group] = true
		case "changes":
			if len(m.Records) == 0 || m.Name != "" {
				t.Errorf("%s: a changes message needs records and no name", where)
			}
			for j, c := range m.Records {
				if !slices.Contains(audience.ListTypes, c.List) || (c.Op != audience.OpAdd && c.Op != audience.OpRemove) || c.Time <= 0 {
					t.Errorf("%s record %d: list %q op %q time %d", where, j, c.List, c.Op, c.Time)
				}
				if !sha256Hex.MatchString(c.Hash) {
					t.Errorf("%s record %d: hash %q is not 64 lower-case hex", where, j, c.Hash)
				} else if lt, ok := known[c.Hash]; !ok || lt != c.List {
					t.Errorf("%s record %d: hash %s is not the SHA-256 of a documented %s identifier", where, j, c.Hash, c.List)
				}
				seen[c.Hash] = true
			}
		default:
			t.Errorf("%s: kind %q, want audience or changes", where, m.Kind)
		}
	}
	if len(seen) != len(known) {
		t.Errorf("the batch uses %d of the %d documented identifiers; use them all", len(seen), len(known))
	}
	if len(lastSeq) < 2 || len(hasMeta) == 0 {
		t.Errorf("want at least two message groups and one audience message, got %d groups, %d audience messages", len(lastSeq), len(hasMeta))
	}
	redelivered := false
	for _, r := range ev.Records {
		redelivered = redelivered || r.Attributes["ApproximateReceiveCount"] != "1"
	}
	if !redelivered {
		t.Errorf("no record is a redelivery (ApproximateReceiveCount > 1)")
	}
}

func TestExampleIdentifiersNormalised(t *testing.T) {
	// The mapping rules of ARCHITECTURE.md, spelt out for the documented examples.
	for _, x := range exampleIdentifiers {
		var want string
		switch x.list {
		case audience.ListEmail:
			want = strings.ToLower(strings.TrimSpace(x.raw))
		case audience.ListMAID:
			want = strings.ToLower(x.raw)
		case audience.ListIDFA:
			want = strings.ToUpper(x.raw)
		}
		if x.normalized != want {
			t.Errorf("%s %q normalises to %q, the table says %q", x.list, x.raw, want, x.normalized)
		}
	}
}

func TestScheduleEvents(t *testing.T) {
	tests := []struct {
		file      string
		wantForce bool
	}{
		{"schedule.json", false},
		{"schedule-force.json", true},
		{"schedule-sweep.json", false},
	}
	for _, tc := range tests {
		t.Run(tc.file, func(t *testing.T) {
			var ev events.EventBridgeEvent
			if err := json.Unmarshal(readEvent(t, tc.file), &ev); err != nil {
				t.Fatalf("decode: %v", err)
			}
			if ev.Version != "0" || ev.ID == "" || ev.AccountID == "" || ev.Region == "" || ev.Time.IsZero() {
				t.Errorf("version %q id %q account %q region %q time %v: an EventBridge event has them all", ev.Version, ev.ID, ev.AccountID, ev.Region, ev.Time)
			}
			var detail struct {
				Force bool `json:"force"`
			}
			if err := json.Unmarshal(ev.Detail, &detail); err != nil {
				t.Fatalf("detail %s: %v", ev.Detail, err)
			}
			if detail.Force != tc.wantForce {
				t.Errorf("detail.force = %v, want %v", detail.Force, tc.wantForce)
			}
			if !tc.wantForce {
				if ev.DetailType != "Scheduled Event" || ev.Source != "aws.events" || len(ev.Resources) != 1 ||
					!strings.HasPrefix(ev.Resources[0], "arn:aws:events:"+ev.Region+":"+ev.AccountID+":rule/") {
					t.Errorf("detail-type %q source %q resources %v, want a scheduled event from an EventBridge rule", ev.DetailType, ev.Source, ev.Resources)
				}
			}
		})
	}
}

// TestSQSStandardBatchEvent checks the apply function's sample: the same
// messages as sqs-batch.json (what ingest enqueues) as a standard queue
// delivers them: no message group, deduplication ID or sequence number.
func TestSQSStandardBatchEvent(t *testing.T) {
	var fifo, std events.SQSEvent
	if err := json.Unmarshal(readEvent(t, "sqs-batch.json"), &fifo); err != nil {
		t.Fatal(err)
	}
	if err := json.Unmarshal(readEvent(t, "sqs-standard-batch.json"), &std); err != nil {
		t.Fatal(err)
	}
	if len(std.Records) != len(fifo.Records) {
		t.Fatalf("%d records, want the %d of sqs-batch.json", len(std.Records), len(fifo.Records))
	}
	for i, r := range std.Records {
		if r.Body != fifo.Records[i].Body {
			t.Errorf("record %d: body differs from sqs-batch.json's", i)
		}
		for _, a := range []string{"MessageGroupId", "MessageDeduplicationId", "SequenceNumber"} {
			if _, ok := r.Attributes[a]; ok {
				t.Errorf("record %d has %s; a standard queue sets none", i, a)
			}
		}
		if strings.HasSuffix(r.EventSourceARN, ".fifo") || r.EventSource != "aws:sqs" {
			t.Errorf("record %d from %s %s, want a standard queue", i, r.EventSource, r.EventSourceARN)
		}
	}
}

// TestDynamoDBStreamEvent checks the upload function's sample: what the
// ledger table's stream passes through the template's filter after the
// apply function recorded sqs-standard-batch.json (made on moto with the
// real store), so every record is a ledger row just flipped.
func TestDynamoDBStreamEvent(t *testing.T) {
	var ev events.DynamoDBEvent
	if err := json.Unmarshal(readEvent(t, "dynamodb-stream.json"), &ev); err != nil {
		t.Fatal(err)
	}
	var std events.SQSEvent
	if err := json.Unmarshal(readEvent(t, "sqs-standard-batch.json"), &std); err != nil {
		t.Fatal(err)
	}
	lists := map[string]bool{}
	for _, r := range std.Records {
		m, err := wire.Decode([]byte(r.Body))
		if err != nil {
			t.Fatal(err)
		}
		for _, c := range m.Changes(0) {
			lists[ledger.List{Audience: c.Audience, Type: c.List}.Key()] = true
		}
	}
	if len(ev.Records) == 0 {
		t.Fatal("no records")
	}
	seqs := map[string]bool{}
	for i, r := range ev.Records {
		if r.EventSource != "aws:dynamodb" || !strings.Contains(r.EventSourceArn, ":table/") || !strings.Contains(r.EventSourceArn, "/stream/") {
			t.Errorf("record %d from %s %s, want a DynamoDB stream", i, r.EventSource, r.EventSourceArn)
		}
		if _, ok := r.Change.NewImage["f"]; !ok {
			t.Errorf("record %d has no f in its new image: the filter %s would drop it", i, ledger.DynamoStreamFilter)
		}
		pk, sk := r.Change.Keys["pk"].String(), r.Change.Keys["sk"].String()
		if !sha256Hex.MatchString(pk) {
			t.Errorf("record %d: pk %q is not a SHA-256 hash", i, pk)
		}
		l, err := ledger.ParseListKey(sk)
		if err != nil || !lists[l.Key()] {
			t.Errorf("record %d: sk %q (%v) is not a list of sqs-standard-batch.json", i, sk, err)
		}
		if r.Change.NewImage["pk"].String() != pk || r.Change.NewImage["sk"].String() != sk {
			t.Errorf("record %d: new image keys differ from the record's keys", i)
		}
		if seqs[r.Change.SequenceNumber] || r.Change.SequenceNumber == "" {
			t.Errorf("record %d: sequence number %q empty or repeated", i, r.Change.SequenceNumber)
		}
		seqs[r.Change.SequenceNumber] = true
	}
}
