package pinterestsim

import (
	"fmt"
	"net/http"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
)

func TestNewRejectsBadAdAccount(t *testing.T) {
	if _, err := New(Options{AdAccounts: []string{"12a"}}); err == nil {
		t.Error("New accepted ad account ID 12a; want an error")
	}
}

func TestValidationRejects(t *testing.T) {
	f := newFixture(t)
	l := f.createList("list", "a")
	tests := []struct {
		name        string
		method      string
		path        string
		body        any
		wantMessage string // a part of the message
	}{
		{
			name:        "unknown list_type",
			method:      http.MethodPost,
			path:        "/v5/ad_accounts/" + testAd + "/customer_lists",
			body:        map[string]string{"name": "x", "records": "a", "list_type": "FOO"},
			wantMessage: "/list_type: value is not one of the allowed values",
		},
		{
			name:        "create without records",
			method:      http.MethodPost,
			path:        "/v5/ad_accounts/" + testAd + "/customer_lists",
			body:        map[string]string{"name": "x"},
			wantMessage: `/records: property "records" is missing`,
		},
		{
			name:        "patch without operation_type",
			method:      http.MethodPatch,
			path:        listPath(l.ID),
			body:        map[string]string{"records": "a"},
			wantMessage: `/operation_type: property "operation_type" is missing`,
		},
		{
			name:        "patch with unknown operation_type",
			method:      http.MethodPatch,
			path:        listPath(l.ID),
			body:        map[string]string{"operation_type": "REPLACE", "records": "a"},
			wantMessage: "/operation_type: value is not one of the allowed values",
		},
		{
			name:        "records not a string",
			method:      http.MethodPatch,
			path:        listPath(l.ID),
			body:        map[string]any{"operation_type": "ADD", "records": []string{"a"}},
			wantMessage: "/records:",
		},
		{
			name:        "ad account ID not digits",
			method:      http.MethodGet,
			path:        "/v5/ad_accounts/abc/customer_lists",
			wantMessage: `parameter "ad_account_id" in path`,
		},
		{
			name:        "page_size over 250",
			method:      http.MethodGet,
			path:        "/v5/ad_accounts/" + testAd + "/customer_lists?page_size=251",
			wantMessage: `parameter "page_size" in query`,
		},
		{
			name:        "unknown order",
			method:      http.MethodGet,
			path:        "/v5/ad_accounts/" + testAd + "/customer_lists?order=UP",
			wantMessage: `parameter "order" in query`,
		},
		{
			name:        "audience without rule",
			method:      http.MethodPost,
			path:        "/v5/ad_accounts/" + testAd + "/audiences",
			body:        map[string]string{"name": "a", "audience_type": "CUSTOMER_LIST"},
			wantMessage: `property "rule" is missing`,
		},
		{
			name:        "create without body",
			method:      http.MethodPost,
			path:        "/v5/ad_accounts/" + testAd + "/customer_lists",
			wantMessage: "request body",
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			resp := f.api(tt.method, tt.path, tt.body)
			if resp.status != http.StatusBadRequest {
				t.Fatalf("status = %d (%s), want 400", resp.status, resp.body)
			}
			e := resp.apiErr(t)
			if e.Code != 1 {
				t.Errorf("code = %d, want 1", e.Code)
			}
			if !strings.Contains(e.Message, tt.wantMessage) {
				t.Errorf("message = %q, want it to contain %q", e.Message, tt.wantMessage)
			}
			if strings.Contains(e.Message, "\n") || strings.Contains(e.Message, "Schema:") {
				t.Errorf("message %q carries a schema dump; want one short line", e.Message)
			}
		})
	}
	if got := f.sim.Records(testAd, l.ID); !slices.Equal(got, []string{"a"}) {
		t.Errorf("rejected requests changed the list: records = %v", got)
	}
}

func TestValidationMessageHasNoRecordValues(t *testing.T) {
	f := newFixture(t)
	secret := "someone@example.com"
	resp := f.api(http.MethodPost, "/v5/ad_accounts/"+testAd+"/customer_lists",
		map[string]any{"name": 7, "records": secret})
	if resp.status != http.StatusBadRequest {
		t.Fatalf("status = %d, want 400", resp.status)
	}
	if strings.Contains(string(resp.body), secret) {
		t.Errorf("error body %s echoes a record value", resp.body)
	}
}

func TestAuth(t *testing.T) {
	f := newFixture(t)
	readOnly, _ := f.sim.IssueToken(testClient, []string{"ads:read"})
	writeOnly, _ := f.sim.IssueToken(testClient, []string{"ads:write"})
	f.sim.AddAccessToken("pina_given", []string{"ads:read"}, f.clock.Now().Add(time.Hour))
	f.sim.AddAccessToken("pina_old", []string{"ads:read", "ads:write"}, f.clock.Now().Add(-time.Second))
	lists := "/v5/ad_accounts/" + testAd + "/customer_lists"
	create := map[string]string{"name": "x", "records": "a"}
	tests := []struct {
		name       string
		token      string
		method     string
		body       any
		wantStatus int
		wantCode   int
	}{
		{name: "no token", token: "", method: http.MethodGet, wantStatus: 401, wantCode: 2},
		{name: "unknown token", token: "pina_nope", method: http.MethodGet, wantStatus: 401, wantCode: 2},
		{name: "expired token", token: "pina_old", method: http.MethodGet, wantStatus: 401, wantCode: 2},
		{name: "read token reads", token: readOnly, method: http.MethodGet, wantStatus: 200},
		{name: "given token reads", token: "pina_given", method: http.MethodGet, wantStatus: 200},
		{name: "read token cannot write", token: readOnly, method: http.MethodPost, body: create, wantStatus: 403, wantCode: 3},
		{name: "write token cannot read", token: writeOnly, method: http.MethodGet, wantStatus: 403, wantCode: 3},
		{name: "write token writes", token: writeOnly, method: http.MethodPost, body: create, wantStatus: 200},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			resp := f.apiWith(tt.token, tt.method, lists, tt.body)
			if resp.status != tt.wantStatus {
				t.Fatalf("status = %d (%s), want %d", resp.status, resp.body, tt.wantStatus)
			}
			if tt.wantCode != 0 {
				if e := resp.apiErr(t); e.Code != tt.wantCode {
					t.Errorf("code = %d, want %d", e.Code, tt.wantCode)
				}
			}
		})
	}

	t.Run("basic auth is not a bearer token", func(t *testing.T) {
		req, _ := http.NewRequest(http.MethodGet, f.srv.URL+lists, nil)
		req.SetBasicAuth(testClient, testSecret)
		if resp := f.send(req); resp.status != http.StatusUnauthorized {
			t.Errorf("status = %d, want 401", resp.status)
		}
	})
	t.Run("token expires with the clock", func(t *testing.T) {
		if resp := f.api(http.MethodGet, lists, nil); resp.status != http.StatusOK {
			t.Fatalf("before expiry: status = %d", resp.status)
		}
		f.clock.Advance(DefaultAccessTokenTTL)
		if resp := f.api(http.MethodGet, lists, nil); resp.status != http.StatusUnauthorized {
			t.Errorf("after 30 days: status = %d, want 401", resp.status)
		}
	})
}

func TestNotFound(t *testing.T) {
	f := newFixture(t)
	l := f.createList("list", "a")
	tests := []struct {
		name, method, path string
		body               any
		wantStatus         int
	}{
		{name: "unknown ad account", method: http.MethodGet, path: "/v5/ad_accounts/1234/customer_lists", wantStatus: 404},
		{name: "unknown ad account create", method: http.MethodPost, path: "/v5/ad_accounts/1234/customer_lists",
			body: map[string]string{"name": "x", "records": "a"}, wantStatus: 404},
		{name: "list in another ad account", method: http.MethodGet, path: "/v5/ad_accounts/1234/customer_lists/" + l.ID, wantStatus: 404},
		{name: "unknown list", method: http.MethodGet, path: listPath("99"), wantStatus: 404},
		{name: "patch unknown list", method: http.MethodPatch, path: listPath("99"),
			body: map[string]string{"operation_type": "ADD", "records": "a"}, wantStatus: 404},
		{name: "unknown audience", method: http.MethodGet, path: "/v5/ad_accounts/" + testAd + "/audiences/99", wantStatus: 404},
		{name: "unknown path", method: http.MethodGet, path: "/v5/boards", wantStatus: 404},
		{name: "method not served", method: http.MethodDelete, path: listPath(l.ID), wantStatus: 405},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			resp := f.api(tt.method, tt.path, tt.body)
			if resp.status != tt.wantStatus {
				t.Fatalf("status = %d (%s), want %d", resp.status, resp.body, tt.wantStatus)
			}
			if e := resp.apiErr(t); e.Message == "" {
				t.Error("error body has no message")
			}
		})
	}
}

func TestCustomerListSetSemanticsAndCounters(t *testing.T) {
	f := newFixture(t)
	created := f.createList("aud-1 EMAIL", "a,b,b,,c,")
	if created.NumBatches != 1 || created.NumUploadedUserRecords != 4 || created.NumRemovedUserRecords != 0 {
		t.Errorf("after create: batches %d uploaded %d removed %d, want 1 4 0",
			created.NumBatches, created.NumUploadedUserRecords, created.NumRemovedUserRecords)
	}
	if created.Status != "TOO_SMALL" || created.Type != "customerlist" || created.AdAccountID != testAd {
		t.Errorf("after create: status %q type %q ad account %q", created.Status, created.Type, created.AdAccountID)
	}

	steps := []struct {
		name                               string
		op, records                        string
		wantMembers                        []string
		wantBatches, wantUploaded, wantRem int64
	}{
		{name: "add overlapping", op: "ADD", records: "c,d", wantMembers: []string{"a", "b", "c", "d"}, wantBatches: 2, wantUploaded: 6},
		{name: "remove present and absent", op: "REMOVE", records: "a,zz,", wantMembers: []string{"b", "c", "d"}, wantBatches: 3, wantUploaded: 6, wantRem: 2},
		{name: "add present again", op: "ADD", records: "b", wantMembers: []string{"b", "c", "d"}, wantBatches: 4, wantUploaded: 7, wantRem: 2},
		{name: "empty records", op: "ADD", records: "", wantMembers: []string{"b", "c", "d"}, wantBatches: 5, wantUploaded: 7, wantRem: 2},
	}
	for _, st := range steps {
		f.clock.Advance(time.Minute)
		resp := f.api(http.MethodPatch, listPath(created.ID), map[string]string{"operation_type": st.op, "records": st.records})
		if resp.status != http.StatusOK {
			t.Fatalf("%s: status %d %s", st.name, resp.status, resp.body)
		}
		var got customerListJSON
		resp.decode(t, &got)
		if got.NumBatches != st.wantBatches || got.NumUploadedUserRecords != st.wantUploaded || got.NumRemovedUserRecords != st.wantRem {
			t.Errorf("%s: batches %d uploaded %d removed %d, want %d %d %d", st.name,
				got.NumBatches, got.NumUploadedUserRecords, got.NumRemovedUserRecords, st.wantBatches, st.wantUploaded, st.wantRem)
		}
		if got.UpdatedTime != f.clock.Now().Unix() || got.CreatedTime != created.CreatedTime {
			t.Errorf("%s: created %d updated %d; want created unchanged and updated now", st.name, got.CreatedTime, got.UpdatedTime)
		}
		if diff := cmp.Diff(st.wantMembers, f.sim.Records(testAd, created.ID)); diff != "" {
			t.Errorf("%s: members (-want +got):\n%s", st.name, diff)
		}
	}

	var many []string
	for i := range 100 {
		many = append(many, fmt.Sprintf("%064d", i))
	}
	resp := f.api(http.MethodPatch, listPath(created.ID), map[string]string{"operation_type": "ADD", "records": strings.Join(many, ",")})
	var got customerListJSON
	resp.decode(t, &got)
	if got.Status != "READY" {
		t.Errorf("with 103 members: status %q, want READY", got.Status)
	}
	get := f.api(http.MethodGet, listPath(created.ID), nil)
	var fetched customerListJSON
	get.decode(t, &fetched)
	if diff := cmp.Diff(got, fetched); diff != "" {
		t.Errorf("GET differs from the PATCH reply (-patch +get):\n%s", diff)
	}
}

func TestListTypeDefaultsToEmail(t *testing.T) {
	f := newFixture(t)
	f.createList("default", "a")
	resp := f.api(http.MethodPost, "/v5/ad_accounts/"+testAd+"/customer_lists",
		map[string]string{"name": "maid", "records": "a", "list_type": "MAID"})
	if resp.status != http.StatusOK {
		t.Fatalf("create MAID list: %d %s", resp.status, resp.body)
	}
	st := f.sim.State().AdAccounts[testAd]
	var types []string
	for _, l := range st.CustomerLists {
		types = append(types, l.ListType)
	}
	if !slices.Equal(types, []string{"EMAIL", "MAID"}) {
		t.Errorf("list types = %v, want [EMAIL MAID]", types)
	}
}

func TestMaxRecordsPerRequest(t *testing.T) {
	f := newFixture(t, func(o *Options) { o.MaxRecordsPerRequest = 3 })
	l := f.createList("list", "a,b,c,") // the trailing empty entry does not count
	tests := []struct {
		name, method, path string
		body               map[string]string
		wantStatus         int
	}{
		{name: "create over", method: http.MethodPost, path: "/v5/ad_accounts/" + testAd + "/customer_lists",
			body: map[string]string{"name": "x", "records": "a,b,c,d"}, wantStatus: 400},
		{name: "patch over", method: http.MethodPatch, path: listPath(l.ID),
			body: map[string]string{"operation_type": "ADD", "records": "d,e,f,g"}, wantStatus: 400},
		{name: "patch at the limit", method: http.MethodPatch, path: listPath(l.ID),
			body: map[string]string{"operation_type": "REMOVE", "records": "a,b,c"}, wantStatus: 200},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if resp := f.api(tt.method, tt.path, tt.body); resp.status != tt.wantStatus {
				t.Errorf("status = %d (%s), want %d", resp.status, resp.body, tt.wantStatus)
			}
		})
	}
	st := f.sim.State().AdAccounts[testAd]
	if len(st.CustomerLists) != 1 || st.CustomerLists[0].NumBatches != 2 || len(st.CustomerLists[0].Records) != 0 {
		t.Errorf("state = %+v; want one list, 2 batches, no records (rejected requests change nothing)", st.CustomerLists)
	}
}

func TestPaginationOver600Lists(t *testing.T) {
	f := newFixture(t)
	var want []string
	for i := range 600 {
		want = append(want, f.createList(fmt.Sprintf("list-%03d", i), "a").ID)
	}

	collect := func(query string) (ids []string, pages []int) {
		t.Helper()
		bookmark := ""
		for {
			path := "/v5/ad_accounts/" + testAd + "/customer_lists?" + query
			if bookmark != "" {
				path += "&bookmark=" + bookmark
			}
			resp := f.api(http.MethodGet, path, nil)
			if resp.status != http.StatusOK {
				t.Fatalf("list: %d %s", resp.status, resp.body)
			}
			var p page[customerListJSON]
			resp.decode(t, &p)
			pages = append(pages, len(p.Items))
			for _, l := range p.Items {
				ids = append(ids, l.ID)
			}
			if p.Bookmark == nil {
				return ids, pages
			}
			bookmark = *p.Bookmark
			if len(pages) > 100 {
				t.Fatal("pagination does not end")
			}
		}
	}

	ids, pages := collect("page_size=250")
	if diff := cmp.Diff(want, ids); diff != "" {
		t.Errorf("ascending ids (-want +got):\n%s", diff)
	}
	if !slices.Equal(pages, []int{250, 250, 100}) {
		t.Errorf("page sizes = %v, want [250 250 100]", pages)
	}

	ids, pages = collect("page_size=200&order=DESCENDING")
	reversed := slices.Clone(want)
	slices.Reverse(reversed)
	if diff := cmp.Diff(reversed, ids); diff != "" {
		t.Errorf("descending ids (-want +got):\n%s", diff)
	}
	if !slices.Equal(pages, []int{200, 200, 200}) {
		t.Errorf("page sizes = %v, want [200 200 200] (no empty last page)", pages)
	}

	_, pages = collect("order=ASCENDING")
	if len(pages) != 24 || pages[0] != defaultPageSize {
		t.Errorf("default page size: %d pages of %d, want 24 of 25", len(pages), pages[0])
	}

	resp := f.api(http.MethodGet, "/v5/ad_accounts/"+testAd+"/customer_lists?bookmark=bogus", nil)
	if resp.status != http.StatusBadRequest {
		t.Errorf("bogus bookmark: status %d, want 400", resp.status)
	}
}

func TestAudiences(t *testing.T) {
	f := newFixture(t, func(o *Options) { o.AdAccounts = append(o.AdAccounts, "42") })
	l := f.createList("aud EMAIL", "a,b")
	audiences := "/v5/ad_accounts/" + testAd + "/audiences"
	body := map[string]any{
		"name":          "aud",
		"audience_type": "CUSTOMER_LIST",
		"description":   "from pinlist",
		"rule":          map[string]string{"customer_list_id": l.ID},
	}
	resp := f.api(http.MethodPost, audiences, body)
	if resp.status != http.StatusOK {
		t.Fatalf("create audience: %d %s", resp.status, resp.body)
	}
	var a audienceJSON
	resp.decode(t, &a)
	if a.Name != "aud" || a.AudienceType != "CUSTOMER_LIST" || a.Rule["customer_list_id"] != l.ID || a.Size != 2 ||
		a.Status != "TOO_SMALL" || a.Type != "audience" || a.AdAccountID != testAd || a.Description == nil {
		t.Errorf("created audience = %+v", a)
	}

	get := f.api(http.MethodGet, audiences+"/"+a.ID, nil)
	var got audienceJSON
	get.decode(t, &got)
	if diff := cmp.Diff(a, got); diff != "" {
		t.Errorf("GET audience differs (-create +get):\n%s", diff)
	}

	var p page[audienceJSON]
	f.api(http.MethodGet, audiences, nil).decode(t, &p)
	if len(p.Items) != 1 || p.Items[0].ID != a.ID || p.Bookmark != nil {
		t.Errorf("list audiences = %+v", p)
	}
	f.api(http.MethodGet, audiences+"?ownership_type=RECEIVED", nil).decode(t, &p)
	if len(p.Items) != 0 {
		t.Errorf("received audiences = %+v, want none", p.Items)
	}

	bad := []struct {
		name string
		path string
		body map[string]any
	}{
		{name: "unknown list", path: audiences, body: map[string]any{"name": "x", "audience_type": "CUSTOMER_LIST", "rule": map[string]string{"customer_list_id": "77"}}},
		{name: "list of another ad account", path: "/v5/ad_accounts/42/audiences", body: map[string]any{"name": "x", "audience_type": "CUSTOMER_LIST", "rule": map[string]string{"customer_list_id": l.ID}}},
		{name: "no customer_list_id", path: audiences, body: map[string]any{"name": "x", "audience_type": "CUSTOMER_LIST", "rule": map[string]string{}}},
		{name: "not a customer list audience", path: audiences, body: map[string]any{"name": "x", "audience_type": "VISITOR", "rule": map[string]string{"visitor_source_id": "1"}}},
	}
	for _, tt := range bad {
		t.Run(tt.name, func(t *testing.T) {
			if resp := f.api(http.MethodPost, tt.path, tt.body); resp.status != http.StatusBadRequest {
				t.Errorf("status = %d (%s), want 400", resp.status, resp.body)
			}
		})
	}
	if n := len(f.sim.State().AdAccounts[testAd].Audiences); n != 1 {
		t.Errorf("%d audiences after rejected creates, want 1", n)
	}
}

func TestConcurrentRequests(t *testing.T) {
	f := newFixture(t)
	l := f.createList("shared", "")
	const workers, perWorker = 8, 25
	var wg sync.WaitGroup
	errs := make(chan string, workers*perWorker*3)
	for w := range workers {
		wg.Go(func() {
			for i := range perWorker {
				rec := fmt.Sprintf("w%d-%d", w, i)
				if resp := f.api(http.MethodPatch, listPath(l.ID), map[string]string{"operation_type": "ADD", "records": rec + ",gone"}); resp.status != http.StatusOK {
					errs <- fmt.Sprintf("patch: %d", resp.status)
				}
				if resp := f.api(http.MethodPatch, listPath(l.ID), map[string]string{"operation_type": "REMOVE", "records": "gone"}); resp.status != http.StatusOK {
					errs <- fmt.Sprintf("remove: %d", resp.status)
				}
				if i%5 == 0 {
					f.createList(rec, "x")
					if resp := f.api(http.MethodGet, "/v5/ad_accounts/"+testAd+"/customer_lists?page_size=250", nil); resp.status != http.StatusOK {
						errs <- fmt.Sprintf("list: %d", resp.status)
					}
					_ = f.sim.State()
				}
			}
		})
	}
	wg.Wait()
	close(errs)
	for e := range errs {
		t.Error(e)
	}
	recs := f.sim.Records(testAd, l.ID)
	if len(recs) != workers*perWorker {
		t.Errorf("%d members, want %d", len(recs), workers*perWorker)
	}
	var got customerListJSON
	f.api(http.MethodGet, listPath(l.ID), nil).decode(t, &got)
	if want := int64(1 + 2*workers*perWorker); got.NumBatches != want {
		t.Errorf("num_batches = %d, want %d", got.NumBatches, want)
	}
	if got.NumUploadedUserRecords != 2*workers*perWorker || got.NumRemovedUserRecords != workers*perWorker {
		t.Errorf("uploaded %d removed %d, want %d %d", got.NumUploadedUserRecords, got.NumRemovedUserRecords, 2*workers*perWorker, workers*perWorker)
	}
	if n := len(f.sim.State().AdAccounts[testAd].CustomerLists); n != 1+workers*5 {
		t.Errorf("%d lists, want %d", n, 1+workers*5)
	}
	if calls := f.sim.Calls()[RouteCustomerListsUpdate]; calls != 2*workers*perWorker {
		t.Errorf("Calls()[update] = %d, want %d", calls, 2*workers*perWorker)
	}
}
