package upload_test

// End to end on real AWS APIs (moto_server on loopback): the ingest handler
// puts AEP requests on an SQS FIFO queue with a dead-letter queue; batches
// received with every system attribute go through the upload handler to the
// Pinterest simulator; Lambda's part (delete what succeeded, release what
// failed) is played by awstest.Settle.

import (
	"encoding/json"
	"fmt"
	"math/rand/v2"
	"net/http"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/aws/aws-lambda-go/events"
	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/sqs"
	"github.com/aws/aws-sdk-go-v2/service/sqs/types"
	"github.com/google/go-cmp/cmp"

	"github.com/pinlist/pinlist/internal/audience"
	"github.com/pinlist/pinlist/internal/ingest"
	"github.com/pinlist/pinlist/internal/pinterestsim"
	"github.com/pinlist/pinlist/internal/queue"
	"github.com/pinlist/pinlist/internal/token"
	"github.com/pinlist/pinlist/internal/wire"
)

const ingestToken = "pipeline-ingest-token"

// receivedAt is the ingest clock: the event time of memberships without a
// lastQualificationTime.
var receivedAt = time.Date(2026, 11, 27, 9, 0, 0, 0, time.UTC)

// pipeline is ingest → SQS FIFO (+ DLQ) → upload → simulator.
type pipeline struct {
	t        *testing.T
	e        *env
	ingest   *ingest.Handler
	queueURL string
	dlqURL   string
	want     *oracle
	emails   []string // every plain email sent, lowercased
}

func newPipeline(t *testing.T, maxReceiveCount int, cfg envConfig) *pipeline {
	t.Helper()
	p := &pipeline{t: t, e: newEnv(t, cfg), want: newOracle()}
	p.queueURL, p.dlqURL = moto.CreateFIFOQueueWithDLQ(t, "upload-pipeline", maxReceiveCount, 30*time.Second)
	var err error
	p.ingest, err = ingest.New(ingest.Options{
		Sender:      queue.NewSQS(moto.SQS(), p.queueURL),
		IngestToken: ingest.StaticIngestToken(ingestToken),
		// Small messages: each audience spans several, so the ledger's
		// ordering across messages and batches comes into play.
		MaxMessageBytes: 4 << 10,
		Now:             func() time.Time { return receivedAt },
	})
	if err != nil {
		t.Fatalf("new ingest handler: %v", err)
	}
	return p
}

// post sends body to the ingest route path as API Gateway would, and wants 202.
func (p *pipeline) post(path string, body []byte) {
	p.t.Helper()
	resp, err := p.ingest.HandleAPIGateway(p.t.Context(), events.APIGatewayV2HTTPRequest{
		Version: "2.0",
		RawPath: path,
		Headers: map[string]string{"authorization": "Bearer " + ingestToken, "content-type": "application/json"},
		Body:    string(body),
		RequestContext: events.APIGatewayV2HTTPRequestContext{
			Stage: "$default",
			HTTP:  events.APIGatewayV2HTTPRequestContextHTTPDescription{Method: http.MethodPost, Path: path},
		},
	})
	if err != nil || resp.StatusCode != http.StatusAccepted {
		p.t.Fatalf("POST %s = %d %s, %v; want 202", path, resp.StatusCode, resp.Body, err)
	}
}

// postProfiles sends a /v1/profiles body and records what it means.
func (p *pipeline) postProfiles(body []byte) {
	p.t.Helper()
	p.emails = append(p.emails, p.want.add(p.t, body)...)
	p.post(ingest.PathProfiles, body)
}

// round receives one batch, checks its messages, runs the upload handler on
// it and settles it as Lambda would. It returns the batch and the failed IDs.
func (p *pipeline) round() (events.SQSEvent, []string) {
	p.t.Helper()
	ev := moto.ReceiveEvent(p.t, p.queueURL, 10)
	for _, r := range ev.Records {
		p.checkMessage(r)
	}
	if len(ev.Records) == 0 {
		return ev, nil
	}
	resp, err := p.e.h.HandleSQS(p.t.Context(), ev)
	if err != nil {
		p.t.Fatalf("HandleSQS returned an error: %v", err)
	}
	moto.Settle(p.t, p.queueURL, ev, resp)
	var failed []string
	for _, f := range resp.BatchItemFailures {
		failed = append(failed, f.ItemIdentifier)
	}
	return ev, failed
}

// checkMessage checks what ingest put on the queue: no plain email, the
// audience's key as the message group, the attributes Lambda delivers.
func (p *pipeline) checkMessage(r events.SQSMessage) {
	p.t.Helper()
	body := strings.ToLower(r.Body)
	if strings.Contains(body, "@") {
		p.t.Errorf("message %s holds an '@': %.200s", r.MessageId, r.Body)
	}
	for _, e := range p.emails {
		if strings.Contains(body, e) {
			p.t.Fatalf("message %s holds a plain email", r.MessageId)
		}
	}
	for _, attr := range []string{"MessageGroupId", "SequenceNumber", "ApproximateReceiveCount", "MessageDeduplicationId"} {
		if r.Attributes[attr] == "" {
			p.t.Errorf("message %s lacks attribute %s (attributes %v)", r.MessageId, attr, r.Attributes)
		}
	}
	if r.ReceiptHandle == "" || !strings.HasSuffix(r.EventSourceARN, ".fifo") {
		p.t.Errorf("message %s: receipt handle %q, event source %q", r.MessageId, r.ReceiptHandle, r.EventSourceARN)
	}
	m, err := wire.Decode([]byte(r.Body))
	if err != nil {
		return // the corrupt-message test puts such messages on the queue itself
	}
	if got, want := r.Attributes["MessageGroupId"], m.Audience.Key(); got != want {
		p.t.Errorf("message %s has group %q, want its audience %q", r.MessageId, got, want)
	}
}

// drain runs rounds until the queue is empty; it fails the test if any
// message fails.
func (p *pipeline) drain() {
	p.t.Helper()
	for range 500 {
		ev, failed := p.round()
		if len(failed) > 0 {
			p.t.Fatalf("messages failed: %v", failed)
		}
		if len(ev.Records) == 0 {
			p.wantQueueEmpty(p.queueURL)
			return
		}
	}
	p.t.Fatal("the queue did not drain in 500 rounds")
}

// depth is how many messages a queue holds, visible or in flight.
func (p *pipeline) depth(url string) int {
	p.t.Helper()
	out, err := moto.SQS().GetQueueAttributes(p.t.Context(), &sqs.GetQueueAttributesInput{
		QueueUrl: aws.String(url),
		AttributeNames: []types.QueueAttributeName{
			types.QueueAttributeNameApproximateNumberOfMessages,
			types.QueueAttributeNameApproximateNumberOfMessagesNotVisible,
		},
	})
	if err != nil {
		p.t.Fatalf("queue attributes of %s: %v", url, err)
	}
	n := 0
	for _, v := range out.Attributes {
		i, _ := strconv.Atoi(v)
		n += i
	}
	return n
}

func (p *pipeline) wantQueueEmpty(url string) {
	p.t.Helper()
	if n := p.depth(url); n != 0 {
		p.t.Fatalf("queue %s holds %d messages, want none", url, n)
	}
}

// wantMembership compares the simulator's non-empty lists with the oracle.
// (A list whose members all left, or that only ever saw removals, may or may
// not exist, depending on how changes fell into batches.)
func (p *pipeline) wantMembership() {
	p.t.Helper()
	got := map[string][]string{}
	for name, records := range p.e.membership() {
		if len(records) > 0 {
			got[name] = records
		}
	}
	if diff := cmp.Diff(p.want.membership(), got); diff != "" {
		p.t.Errorf("simulator membership differs from the input's (-want +got):\n%s", diff)
	}
}

// exampleBodies are the AEP example profiles (the repository's copy of
// Adobe's documented examples).
func exampleBodies(t *testing.T) [][]byte {
	t.Helper()
	files, err := filepath.Glob(filepath.Join("..", "audience", "testdata", "aep", "*.json"))
	if err != nil || len(files) == 0 {
		t.Fatalf("no AEP examples under internal/audience/testdata/aep: %v", err)
	}
	var bodies [][]byte
	for _, f := range files {
		b, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		if strings.Contains(string(b), "segmentMembership") {
			bodies = append(bodies, b)
		}
	}
	return bodies
}

// generator makes AEP profile requests about a fixed population, with event
// times that grow with every request (so "latest event time wins" and
// "latest arrival wins" agree, whatever the batching).
type generator struct {
	rnd       *rand.Rand
	audiences []audience.Ref
	people    int
	at        time.Time
}

func newGenerator(seed uint64, people int, audiences ...audience.Ref) *generator {
	return &generator{rnd: rand.New(rand.NewPCG(seed, seed)), audiences: audiences, people: people, at: time.Date(2026, 10, 1, 0, 0, 0, 0, time.UTC)}
}

// request is one /v1/profiles body of n profiles (n at most people).
func (g *generator) request(n int) []byte {
	g.at = g.at.Add(time.Minute)
	statuses := []string{"realized", "existing", "exited"}
	var profiles []any
	// Distinct people within a request: a request's changes share one event
	// time, and which of two tied changes wins is the tie rule's business
	// (audience.Precedence), tested where it lives; here the outcome must
	// not hang on it.
	for _, person := range g.rnd.Perm(g.people)[:n] {
		ids := map[string]any{
			"Email": []any{map[string]any{"id": fmt.Sprintf(" Person.%d@Example.com ", person)}},
		}
		if person%3 == 0 {
			ids["gaid"] = []any{map[string]any{"id": uuidOf("g", person)}}
		}
		if person%4 == 0 {
			ids["IDFA"] = []any{map[string]any{"id": uuidOf("i", person)}}
		}
		if person%10 == 0 {
			ids["phone"] = []any{map[string]any{"id": "+15555550100"}} // not mapped
		}
		seg := map[string]any{}
		for _, a := range g.audiences {
			if g.rnd.IntN(2) == 0 {
				continue
			}
			ns, _ := seg[a.Namespace].(map[string]any)
			if ns == nil {
				ns = map[string]any{}
				seg[a.Namespace] = ns
			}
			ns[a.ID] = map[string]any{"status": statuses[g.rnd.IntN(len(statuses))], "lastQualificationTime": g.at.Format(time.RFC3339)}
		}
		profiles = append(profiles, map[string]any{"identityMap": ids, "segmentMembership": seg})
	}
	body, err := json.Marshal(map[string]any{"profiles": profiles})
	if err != nil {
		panic(err)
	}
	return body
}

// uuidOf is a made-up advertising ID, in mixed case.
func uuidOf(kind string, n int) string {
	h := hashOf(kind + strconv.Itoa(n))
	return strings.ToUpper(h[:8]) + "-" + h[8:12] + "-" + strings.ToUpper(h[12:16]) + "-" + h[16:20] + "-" + h[20:32]
}

func TestPipelineAppliesAEPRequestsEndToEnd(t *testing.T) {
	p := newPipeline(t, 5, envConfig{})
	named := audience.Ref{Namespace: "ups", ID: "36a51c13-9dd6-4d2c-8aa3-07d785ea5075"}
	p.post(ingest.PathAudiences, []byte(`{"id":"`+named.ID+`","name":"High-value shoppers","description":"Two or more orders in the last 90 days","namespace":"ups"}`))
	for _, body := range exampleBodies(t) {
		p.postProfiles(body)
	}
	gen := newGenerator(7, 300, named, ref("c0ffee00-0000-4000-8000-000000000001"), audience.Ref{Namespace: "CustomerAudienceUpload", ID: "8f812592-3f06-416b-bd50-e7831848a31a"})
	for range 4 {
		p.postProfiles(gen.request(150))
	}
	if got := p.want.membership(); len(got) < 9 || len(got["pinlist ups:788d8874-8007-4253-92b7-ee6b6c20c6f3 EMAIL"]) != 2 {
		t.Fatalf("the input should fill every list type of three audiences and the examples' audience 788d8874: %d lists", len(got))
	}
	if n := p.depth(p.queueURL); n < 20 {
		t.Fatalf("ingest enqueued %d messages; want many (small message bound)", n)
	}

	p.drain()
	p.wantMembership()
	for _, l := range p.e.sim.State().AdAccounts[adAccount].CustomerLists {
		if strings.HasPrefix(l.Name, "pinlist "+named.Key()+" ") && !strings.HasSuffix(l.Name, " - High-value shoppers") {
			t.Errorf("list %q of the named audience lacks its name", l.Name)
		}
	}

	// Later requests change the membership again.
	for range 2 {
		p.postProfiles(gen.request(100))
	}
	p.drain()
	p.wantMembership()
	p.wantQueueEmpty(p.dlqURL)
}

func TestPipelineServerErrorsForOneAudienceHoldOnlyItsList(t *testing.T) {
	p := newPipeline(t, 10, envConfig{})
	hit, other := ref("aaaaaaaa-0000-4000-8000-000000000001"), ref("bbbbbbbb-0000-4000-8000-000000000002")
	gen := newGenerator(11, 200, hit, other)
	p.postProfiles(gen.request(100))
	p.drain() // the lists exist now

	e := p.e
	hitList := e.listID("pinlist " + hit.Key() + " EMAIL")
	e.sim.SetFault(pinterestsim.RouteCustomerListsUpdate, pinterestsim.Fault{Rate500: 1, Match: pathEndsWith(hitList)})
	for range 3 {
		p.postProfiles(gen.request(100))
	}
	// With the fault on, no message fails (each is in the ledger once
	// received); the hit list's rows wait there, every other list is sent.
	p.drain()
	if diff := cmp.Diff([]string{hit.Key() + "/EMAIL"}, e.pendingLists()); diff != "" {
		t.Fatalf("pending lists (-want +got):\n%s", diff)
	}
	want := p.want.membership()
	got := e.membership()
	for name, records := range want {
		if name == "pinlist "+hit.Key()+" EMAIL" {
			continue
		}
		if diff := cmp.Diff(records, got[name]); diff != "" {
			t.Errorf("list %q (-want +got):\n%s", name, diff)
		}
	}

	// The fault clears; the schedule's sweep sends what waited.
	e.sim.ClearFaults()
	e.flushAll(t.Context())
	p.wantMembership()
	p.wantQueueEmpty(p.dlqURL)
	if got := e.pendingLists(); len(got) != 0 {
		t.Errorf("lists still pending: %v", got)
	}
}

func TestPipelineTokenExpiresMidBatch(t *testing.T) {
	secret := moto.CreateSecret(t, moto.UniqueName("pinlist-token"), `{}`)
	store := token.NewSecretsManagerStore(moto.SecretsManager(), secret)
	var sim atomic.Pointer[pinterestsim.Server]
	var calls atomic.Int64
	var refreshed atomic.Bool
	// On the simulator's 4th API call, the access token expires and the
	// refresh step (played here) stores a new one.
	rotate := func(next http.Handler) http.Handler {
		return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			if strings.HasPrefix(r.URL.Path, "/v5/") && calls.Add(1) == 4 {
				s := sim.Load()
				s.ExpireAccessTokens()
				tok, err := store.Load(r.Context())
				if err == nil {
					tok.AccessToken, _ = s.IssueToken(clientID, scopes)
					err = store.Save(r.Context(), tok)
				}
				if err != nil {
					t.Errorf("rotate the token: %v", err)
				}
				refreshed.Store(true)
			}
			next.ServeHTTP(w, r)
		})
	}
	p := newPipeline(t, 5, envConfig{store: store, wrap: rotate})
	sim.Store(p.e.sim)
	gen := newGenerator(13, 200, ref("aaaaaaaa-0000-4000-8000-000000000001"), ref("bbbbbbbb-0000-4000-8000-000000000002"))
	for range 3 {
		p.postProfiles(gen.request(100))
	}
	p.drain() // fails the test if any message fails
	if !refreshed.Load() {
		t.Fatal("the token was never rotated: too few calls")
	}
	if !strings.Contains(p.e.logs.String(), "reloading the access token") {
		t.Errorf("no reload logged:\n%s", p.e.logs.String())
	}
	p.wantMembership()
}

func TestPipelineCorruptMessageEndsInTheDLQ(t *testing.T) {
	const maxReceiveCount = 3
	p := newPipeline(t, maxReceiveCount, envConfig{})
	corrupt := `{"v":1,"kind":"changes","audience":{"ns":"ups","id":"broken"},"records":[{"l":"EMAIL","o":"ADD","h":"zz"}]}`
	_, err := moto.SQS().SendMessage(p.t.Context(), &sqs.SendMessageInput{
		QueueUrl: aws.String(p.queueURL), MessageBody: aws.String(corrupt),
		MessageGroupId: aws.String("ups:broken"), MessageDeduplicationId: aws.String("corrupt-1"),
	})
	if err != nil {
		t.Fatalf("send the corrupt message: %v", err)
	}
	gen := newGenerator(17, 200, ref("aaaaaaaa-0000-4000-8000-000000000001"), ref("bbbbbbbb-0000-4000-8000-000000000002"))
	for range 3 {
		p.postProfiles(gen.request(100))
	}

	receives := 0
	for range 100 {
		ev, failed := p.round()
		if len(ev.Records) == 0 {
			break
		}
		for _, r := range ev.Records {
			isCorrupt := r.Body == corrupt
			if isCorrupt {
				receives++
			}
			if slices.Contains(failed, r.MessageId) != isCorrupt {
				t.Fatalf("message %s (corrupt: %v) failed: %v; only the corrupt one should", r.MessageId, isCorrupt, slices.Contains(failed, r.MessageId))
			}
		}
	}
	if receives != maxReceiveCount {
		t.Errorf("the corrupt message was received %d times, want maxReceiveCount = %d", receives, maxReceiveCount)
	}
	p.wantQueueEmpty(p.queueURL)
	dead := moto.ReceiveEvent(t, p.dlqURL, 10)
	if len(dead.Records) != 1 || dead.Records[0].Body != corrupt {
		t.Fatalf("dead-letter queue holds %d messages, want just the corrupt one", len(dead.Records))
	}
	p.wantMembership()
}

// oracle computes the expected membership from the requests themselves,
// independently of internal/audience: for each (audience, list type,
// identifier hash) the change with the latest event time wins, on a tie the
// exit, a receive time never above an event time; of equal ones the later.
type oracle struct {
	latest map[oracleKey]oracleChange
	n      int
}

type oracleKey struct{ list, hash string } // list: "pinlist <ns>:<id> <TYPE>"

type oracleChange struct {
	add      bool
	at       time.Time
	received bool // at is the receive time
	seq      int
}

// outranks is the coalescing order (audience.Precedence), then arrival.
func (c oracleChange) outranks(cur oracleChange) bool {
	switch {
	case c.received != cur.received:
		return cur.received
	case !c.at.Equal(cur.at):
		return c.at.After(cur.at)
	case c.add != cur.add:
		return !c.add
	}
	return c.seq >= cur.seq
}

func newOracle() *oracle { return &oracle{latest: map[oracleKey]oracleChange{}} }

// add records a /v1/profiles body and returns the plain emails in it.
func (o *oracle) add(t *testing.T, body []byte) (emails []string) {
	t.Helper()
	var raw any
	if err := json.Unmarshal(body, &raw); err != nil {
		t.Fatalf("oracle: body is not JSON: %v", err)
	}
	var profiles []any
	switch v := raw.(type) {
	case []any:
		profiles = v
	case map[string]any:
		if ps, ok := v["profiles"].([]any); ok {
			profiles = ps
		} else {
			profiles = []any{v}
		}
	}
	for _, pr := range profiles {
		prof, _ := pr.(map[string]any)
		type ident struct{ list, hash string }
		var idents []ident
		idm, _ := prof["identityMap"].(map[string]any)
		for ns, list := range idm {
			items, _ := list.([]any)
			for _, it := range items {
				m, _ := it.(map[string]any)
				id, _ := m["id"].(string)
				switch strings.ToLower(ns) {
				case "email":
					e := strings.ToLower(strings.TrimSpace(id))
					emails = append(emails, e)
					idents = append(idents, ident{"EMAIL", hashOf(e)})
				case "email_lc_sha256":
					idents = append(idents, ident{"EMAIL", strings.ToLower(id)})
				case "gaid":
					if u := strings.ToLower(id); strings.Trim(u, "0-") != "" {
						idents = append(idents, ident{"MAID", hashOf(u)})
					}
				case "idfa":
					if u := strings.ToUpper(id); strings.Trim(u, "0-") != "" {
						idents = append(idents, ident{"IDFA", hashOf(u)})
					}
				}
			}
		}
		seg, _ := prof["segmentMembership"].(map[string]any)
		for ns, auds := range seg {
			am, _ := auds.(map[string]any)
			for id, mem := range am {
				mm, _ := mem.(map[string]any)
				status, _ := mm["status"].(string)
				at, received := receivedAt, true
				if s, ok := mm["lastQualificationTime"].(string); ok {
					received = false
					var err error
					if at, err = time.Parse(time.RFC3339, s); err != nil {
						if at, err = time.Parse("2006-01-02T15:04:05.000-0700", s); err != nil {
							t.Fatalf("oracle: time %q: %v", s, err)
						}
					}
				}
				var add bool
				switch status {
				case "realized", "existing":
					add = true
				case "exited":
				default:
					continue
				}
				for _, in := range idents {
					o.n++
					k := oracleKey{"pinlist " + ns + ":" + id + " " + in.list, in.hash}
					c := oracleChange{add: add, at: at, received: received, seq: o.n}
					if cur, ok := o.latest[k]; !ok || c.outranks(cur) {
						o.latest[k] = c
					}
				}
			}
		}
	}
	return emails
}

// membership is the expected non-empty lists: stable name → sorted hashes.
func (o *oracle) membership() map[string][]string {
	out := map[string][]string{}
	for k, c := range o.latest {
		if c.add {
			out[k.list] = append(out[k.list], k.hash)
		}
	}
	for name := range out {
		slices.Sort(out[name])
	}
	return out
}
