package stack_test

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"

	"github.com/aws/aws-lambda-go/events"
	"github.com/google/go-cmp/cmp"

	"github.com/pinlist/pinlist/internal/awstest"
	"github.com/pinlist/pinlist/internal/lambdarie"
	"github.com/pinlist/pinlist/internal/lambdarie/stack"
	"github.com/pinlist/pinlist/internal/refresh"
	"github.com/pinlist/pinlist/internal/token"
)

// moto is this test binary's moto_server.
var moto *awstest.Moto

// binDir holds the bootstraps this test binary builds.
var binDir string

func TestMain(m *testing.M) {
	os.Exit(func() int {
		dir, err := os.MkdirTemp("", "pinlist-bootstraps-")
		if err != nil {
			fmt.Fprintln(os.Stderr, "FAIL: create a directory for the bootstraps:", err)
			return 1
		}
		defer os.RemoveAll(dir)
		binDir = dir
		return awstest.Main(m, &moto)
	}())
}

// emulator installs aws-lambda-rie once per test binary (about a minute the
// first time on a machine, then cached; see lambdarie.Install).
var emulator = sync.OnceValues(func() (string, error) {
	return lambdarie.Install(context.Background(), lambdarie.DefaultCacheDir())
})

// bootstraps builds the three functions for the host once per test binary.
var bootstraps = sync.OnceValues(func() (map[string]string, error) {
	root, err := lambdarie.ModuleDir(".")
	if err != nil {
		return nil, err
	}
	out := make(map[string]string)
	for _, name := range stack.Names() {
		path := filepath.Join(binDir, name, "bootstrap")
		if err := lambdarie.Build(context.Background(), root, stack.Package(name), path); err != nil {
			return nil, err
		}
		out[name] = path
	}
	return out, nil
})

// newStack stands up a stack for one test; the test's cleanup closes it.
func newStack(t *testing.T) *stack.Stack {
	t.Helper()
	rie, err := emulator()
	if err != nil {
		t.Fatalf("install aws-lambda-rie: %v", err)
	}
	st, err := stack.New(t.Context(), stack.Options{AWS: moto.Config(), AWSEnv: moto.Env(), RIE: rie})
	if err != nil {
		t.Fatalf("stand up the stack: %v", err)
	}
	t.Cleanup(func() {
		if err := st.Close(); err != nil {
			t.Errorf("close the stack: %v", err)
		}
	})
	return st
}

// start runs one of the functions in st; on failure the test prints its log.
func start(t *testing.T, st *stack.Stack, name string) *lambdarie.Function {
	t.Helper()
	bins, err := bootstraps()
	if err != nil {
		t.Fatalf("build the functions: %v", err)
	}
	f, err := st.Start(t.Context(), name, bins[name])
	if err != nil {
		t.Fatalf("start %s: %v", name, err)
	}
	t.Cleanup(func() {
		if t.Failed() {
			t.Logf("%s's log:\n%s", name, f.Log())
		}
	})
	return f
}

// event reads a file under events/.
func event(t *testing.T, name string) []byte {
	t.Helper()
	b, err := os.ReadFile(filepath.Join("..", "..", "..", "events", name))
	if err != nil {
		t.Fatalf("read event: %v", err)
	}
	return b
}

// invokeAPI invokes the ingest function with an API Gateway event file.
func invokeAPI(t *testing.T, f *lambdarie.Function, file string) (status int, body map[string]any) {
	t.Helper()
	out, err := f.Invoke(t.Context(), event(t, file))
	if err != nil {
		t.Fatalf("invoke ingest with %s: %v", file, err)
	}
	var resp events.APIGatewayV2HTTPResponse
	if err := json.Unmarshal(out, &resp); err != nil {
		t.Fatalf("decode ingest's response to %s: %v\n%s", file, err, out)
	}
	if err := json.Unmarshal([]byte(resp.Body), &body); err != nil {
		t.Fatalf("decode ingest's body for %s: %v\n%s", file, err, resp.Body)
	}
	return resp.StatusCode, body
}

// invokeBatch invokes a function with a batch event and decodes its
// partial batch response (SQS and DynamoDB stream responses have one shape).
func invokeBatch(t *testing.T, f *lambdarie.Function, ev []byte) events.SQSEventResponse {
	t.Helper()
	out, err := f.Invoke(t.Context(), ev)
	if err != nil {
		t.Fatalf("invoke %s: %v", f.Name(), err)
	}
	var resp events.SQSEventResponse
	if err := json.Unmarshal(out, &resp); err != nil || resp.BatchItemFailures == nil {
		t.Fatalf("decode %s's response (want batchItemFailures): %v\n%s", f.Name(), err, out)
	}
	return resp
}

// flips is the template's stream filter (ledger.DynamoStreamFilter): rows
// whose new image has f.
func flips(r events.DynamoDBEventRecord) bool {
	_, ok := r.Change.NewImage["f"]
	return ok
}

// The sample audiences and the hashes of their members (events/README.md).
const (
	highValue     = "36a51c13-9dd6-4d2c-8aa3-07d785ea5075" // Jane and Marc join
	exited        = "8f812592-3f06-416b-bd50-e7831848a31a" // Jane leaves
	highValueName = "High-value shoppers"
	janeEmail     = "86e0b9e56c17cc4d12387e1949b85053fbe73bc3ce5a1188713a9d300cc6133d"
	marcEmail     = "d9e809565975a49b72d76fe4f9f48413240ec2c442b85a3d4eb5a5f939c77775"
	janeMAID      = "d4181bb455a74b3bc8b37c75ac9b2c702eb6b9930bd040b861403b31ca85634d"
	janeIDFA      = "2afcf919a0c1953d177fcb412ea65138b44b4a42dda7d322225811767c0c530c"
)

// plainIdentifiers are what must never leave ingest: the sample profiles'
// plain emails (as sent and normalised) and advertising IDs.
var plainIdentifiers = []string{
	"jane.doe@example.com", "marc.muller@example.org",
	"38400000-8cf0-11bd-b23e-10b96e40000d", "6d92078a-8246-4ba4-ae5b-76104861e7dc",
}

// checkSampleLists checks the simulator's customer lists after the sample
// profiles were uploaded: the high-value audience has one list per type with
// its members, named after the audience; the exited audience has none (a
// list is not created only to remove records from it).
func checkSampleLists(t *testing.T, st *stack.Stack) {
	t.Helper()
	want := map[string][]string{
		"EMAIL": {janeEmail, marcEmail},
		"MAID":  {janeMAID},
		"IDFA":  {janeIDFA},
	}
	slices.Sort(want["EMAIL"])
	got := make(map[string][]string)
	for _, l := range st.Sim().State().AdAccounts[stack.AdAccountID].CustomerLists {
		switch {
		case strings.Contains(l.Name, exited):
			t.Errorf("list %q (%s) exists for the exited audience", l.Name, l.ListType)
		case strings.Contains(l.Name, highValue):
			if _, dup := got[l.ListType]; dup {
				t.Errorf("two %s lists for audience %s", l.ListType, highValue)
			}
			if !strings.Contains(l.Name, highValueName) {
				t.Errorf("list name %q lacks the audience's name %q", l.Name, highValueName)
			}
			got[l.ListType] = l.Records
		}
	}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("members of audience %s's lists (-want +got):\n%s", highValue, diff)
	}
}

// checkLogClean fails when a function's log holds any of secrets.
func checkLogClean(t *testing.T, f *lambdarie.Function, secrets ...string) {
	t.Helper()
	log := strings.ToLower(f.Log())
	for _, s := range secrets {
		if strings.Contains(log, strings.ToLower(s)) {
			t.Errorf("%s's log contains a secret or a plain identifier (%d characters)", f.Name(), len(s))
		}
	}
}

func TestIngestAnswersTheSampleRequests(t *testing.T) {
	st := newStack(t)
	ingest := start(t, st, stack.Ingest)
	for _, tc := range []struct {
		file       string
		wantStatus int
		want       map[string]any // fields of the body
		wantCode   string         // the error's code, for an error
	}{
		{"apigw-profiles.json", 202, map[string]any{
			"profiles": 2.0, "identitiesActivated": 4.0, "changesEnqueued": 7.0, "messages": 2.0,
			"excluded": map[string]any{"opted_out": 1.0, "unsupported_namespace": 1.0},
		}, ""},
		{"apigw-profiles-base64.json", 202, map[string]any{"profiles": 2.0, "changesEnqueued": 7.0}, ""},
		{"apigw-audience.json", 202, map[string]any{"externalAudienceId": "ups:" + highValue}, ""},
		{"apigw-healthz.json", 200, map[string]any{"status": "ok"}, ""},
		{"apigw-bad-body.json", 400, nil, "malformed_json"},
		{"apigw-unauthorized.json", 401, nil, "unauthorized"},
	} {
		t.Run(tc.file, func(t *testing.T) {
			status, body := invokeAPI(t, ingest, tc.file)
			if status != tc.wantStatus {
				t.Errorf("status = %d, want %d; body %v", status, tc.wantStatus, body)
			}
			for k, want := range tc.want {
				if diff := cmp.Diff(want, body[k]); diff != "" {
					t.Errorf("body field %q (-want +got):\n%s", k, diff)
				}
			}
			if tc.wantCode != "" {
				errBody, _ := body["error"].(map[string]any)
				if got := errBody["code"]; got != tc.wantCode {
					t.Errorf("error code = %v, want %q; body %v", got, tc.wantCode, body)
				}
			}
		})
	}
	checkLogClean(t, ingest, append(plainIdentifiers, stack.IngestToken)...)
}

// TestIngestApplyUpload runs the data path of a deployed stack: ingest
// enqueues the sample requests on the standard queue, the queue's real
// messages become the apply function's SQS event, the ledger table's real
// stream records (through the template's filter) become the upload
// function's event, and the lists appear in the simulator. The schedule's
// sweep then finds nothing left.
func TestIngestApplyUpload(t *testing.T) {
	st := newStack(t)
	ingest, apply, upload := start(t, st, stack.Ingest), start(t, st, stack.Apply), start(t, st, stack.Upload)
	for _, file := range []string{"apigw-audience.json", "apigw-profiles.json"} {
		if status, body := invokeAPI(t, ingest, file); status != http.StatusAccepted {
			t.Fatalf("ingest %s: status %d, body %v", file, status, body)
		}
	}

	ev := moto.ReceiveEvent(t, st.QueueURL, 10)
	if len(ev.Records) != 3 {
		t.Fatalf("%d messages on the queue, want 3", len(ev.Records))
	}
	for _, rec := range ev.Records {
		if g := rec.Attributes["MessageGroupId"]; g != "" {
			t.Errorf("message %s has group %q on a standard queue", rec.MessageId, g)
		}
		for _, plain := range plainIdentifiers {
			if strings.Contains(strings.ToLower(rec.Body), plain) {
				t.Errorf("queue message %s holds a plain identifier", rec.MessageId)
			}
		}
	}
	payload, err := json.Marshal(ev)
	if err != nil {
		t.Fatal(err)
	}
	resp := invokeBatch(t, apply, payload)
	if len(resp.BatchItemFailures) != 0 {
		t.Fatalf("apply: batch item failures %v, want none", resp.BatchItemFailures)
	}
	moto.Settle(t, st.QueueURL, ev, resp)
	if left := moto.ReceiveEvent(t, st.QueueURL, 10); len(left.Records) != 0 {
		t.Errorf("%d messages left on the queue after the batch settled", len(left.Records))
	}
	if len(st.Sim().State().AdAccounts[stack.AdAccountID].CustomerLists) != 0 {
		t.Fatal("apply wrote to Pinterest; it only records in the ledger")
	}

	stream := moto.DynamoDBStream(t, st.LedgerTable)
	batch := stream.Next(t, flips)
	if len(batch.Records) == 0 {
		t.Fatal("the ledger's stream passed no flips")
	}
	if payload, err = json.Marshal(batch); err != nil {
		t.Fatal(err)
	}
	if resp := invokeBatch(t, upload, payload); len(resp.BatchItemFailures) != 0 {
		t.Fatalf("upload: batch item failures %v, want none", resp.BatchItemFailures)
	}
	checkSampleLists(t, st)

	var sweep struct {
		Lists       int   `json:"lists"`
		RecordsSent int64 `json:"records_sent"`
	}
	if err := invokeEvent(t, upload, "schedule-sweep.json", &sweep); err != nil {
		t.Fatal(err)
	}
	if sweep.Lists != 0 || sweep.RecordsSent != 0 {
		t.Errorf("the sweep after the stream batch: %+v, want nothing left", sweep)
	}

	tok := storedToken(t, st)
	checkLogClean(t, ingest, append(plainIdentifiers, stack.IngestToken)...)
	checkLogClean(t, apply, plainIdentifiers...)
	checkLogClean(t, upload, append(plainIdentifiers, tok.AccessToken, tok.RefreshToken)...)
}

// TestUploadSampleEvents invokes upload with events/dynamodb-stream.json
// after the apply function's sample batch is in the ledger (what `make
// invoke-upload` does), twice: a redelivery sends nothing again. Then the
// sweep sample, with nothing left.
func TestUploadSampleEvents(t *testing.T) {
	st := newStack(t)
	var batch events.SQSEvent
	if err := json.Unmarshal(event(t, "sqs-standard-batch.json"), &batch); err != nil {
		t.Fatal(err)
	}
	if err := st.Record(t.Context(), batch); err != nil {
		t.Fatal(err)
	}
	upload := start(t, st, stack.Upload)
	for _, delivery := range []string{"first", "redelivered"} {
		t.Run(delivery, func(t *testing.T) {
			resp := invokeBatch(t, upload, event(t, "dynamodb-stream.json"))
			if len(resp.BatchItemFailures) != 0 {
				t.Errorf("batch item failures %v, want none", resp.BatchItemFailures)
			}
			checkSampleLists(t, st)
		})
	}
	if _, err := upload.Invoke(t.Context(), event(t, "sqs-standard-batch.json")); err == nil {
		t.Error("upload accepted an SQS batch; it takes stream batches and the schedule only")
	}
}

// TestApplySampleBatch invokes apply with events/sqs-standard-batch.json
// twice: a redelivery is no failure (the ledger drops what is not newer).
func TestApplySampleBatch(t *testing.T) {
	st := newStack(t)
	apply := start(t, st, stack.Apply)
	for range 2 {
		if resp := invokeBatch(t, apply, event(t, "sqs-standard-batch.json")); len(resp.BatchItemFailures) != 0 {
			t.Errorf("batch item failures %v, want none", resp.BatchItemFailures)
		}
	}
	if n := len(moto.DynamoDBStream(t, st.LedgerTable).Next(t, flips).Records); n == 0 {
		t.Error("no flips in the ledger's stream after the sample batch")
	}
}

// TestRefresh invokes refresh with the daily schedule (the 30-day token is
// not due) and with the forced event (a new pair, stored in the secret and
// accepted by the simulator).
func TestRefresh(t *testing.T) {
	st := newStack(t)
	fn := start(t, st, stack.Refresh)
	before := storedToken(t, st)

	var scheduled refresh.Result
	if err := invokeEvent(t, fn, "schedule.json", &scheduled); err != nil {
		t.Fatal(err)
	}
	if scheduled.Refreshed {
		t.Errorf("the scheduled run refreshed a token valid for 30 days (result %+v)", scheduled)
	}
	if got := storedToken(t, st); got.AccessToken != before.AccessToken {
		t.Error("the scheduled run changed the stored token")
	}

	var forced refresh.Result
	if err := invokeEvent(t, fn, "schedule-force.json", &forced); err != nil {
		t.Fatal(err)
	}
	after := storedToken(t, st)
	if !forced.Refreshed {
		t.Errorf("forced run: refreshed = false, want true (result %+v)", forced)
	}
	if after.AccessToken == before.AccessToken || after.RefreshToken == before.RefreshToken {
		t.Error("forced run: the stored access or refresh token is unchanged, want a new pair")
	}
	if !after.AccessTokenExpiresAt.Equal(forced.AccessTokenExpiresAt) {
		t.Errorf("stored expiry %v, reported %v", after.AccessTokenExpiresAt, forced.AccessTokenExpiresAt)
	}
	if after.ClientID != stack.ClientID || after.ClientSecret != stack.ClientSecret {
		t.Error("forced run: the stored token lost its OAuth app")
	}
	if got := simStatus(t, st, after.AccessToken); got != http.StatusOK {
		t.Errorf("the simulator answers %d to the new access token, want 200", got)
	}
	checkLogClean(t, fn, before.AccessToken, before.RefreshToken, after.AccessToken, after.RefreshToken, stack.ClientSecret)
}

// invokeEvent invokes fn with an events/ file and decodes the response.
func invokeEvent(t *testing.T, fn *lambdarie.Function, file string, out any) error {
	t.Helper()
	body, err := fn.Invoke(t.Context(), event(t, file))
	if err != nil {
		return fmt.Errorf("invoke %s with %s: %w", fn.Name(), file, err)
	}
	if err := json.Unmarshal(body, out); err != nil {
		return fmt.Errorf("decode %s's response to %s: %w", fn.Name(), file, err)
	}
	return nil
}

// storedToken reads the stack's token secret through the token store.
func storedToken(t *testing.T, st *stack.Stack) token.Token {
	t.Helper()
	tok, err := token.NewSecretsManagerStore(moto.SecretsManager(), st.TokenSecretID).Load(t.Context())
	if err != nil {
		t.Fatalf("load the stored token: %v", err)
	}
	return tok
}

// simStatus is the simulator's status for listing the ad account's customer
// lists with accessToken.
func simStatus(t *testing.T, st *stack.Stack, accessToken string) int {
	t.Helper()
	req, err := http.NewRequestWithContext(t.Context(), http.MethodGet,
		st.APIBaseURL()+"/ad_accounts/"+stack.AdAccountID+"/customer_lists", nil)
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Authorization", "Bearer "+accessToken)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatalf("call the simulator: %v", err)
	}
	resp.Body.Close()
	return resp.StatusCode
}

// TestHandlerErrorIsReported checks that an event of the wrong shape comes
// back from the real bootstrap as a function error, not as a response.
func TestHandlerErrorIsReported(t *testing.T) {
	st := newStack(t)
	ingest := start(t, st, stack.Ingest)
	_, err := ingest.Invoke(t.Context(), []byte(`"not an API Gateway event"`))
	var fe *lambdarie.FunctionError
	if !errors.As(err, &fe) {
		t.Fatalf("Invoke = %v, want a *lambdarie.FunctionError", err)
	}
}
