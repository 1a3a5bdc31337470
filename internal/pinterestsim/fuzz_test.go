package pinterestsim

import (
	"bytes"
	"context"
	"fmt"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/getkin/kin-openapi/openapi3"
)

func TestEmbeddedSpecIsValid(t *testing.T) {
	doc, err := loadSpec()
	if err != nil {
		t.Fatalf("load: %v", err)
	}
	if err := doc.Validate(context.Background()); err != nil {
		t.Errorf("the embedded description does not validate: %v", err)
	}
	if doc.Info.License == nil || doc.Info.License.Name != "MIT" {
		t.Error("the embedded description lost its MIT licence notice")
	}
	license, err := specFS.ReadFile("openapi/LICENSE.openapi")
	if err != nil || !bytes.Contains(license, []byte("Permission is hereby granted")) {
		t.Errorf("the MIT licence text is not embedded beside the description (%v)", err)
	}
	var _ *openapi3.T = doc
}

func TestSplitRecords(t *testing.T) {
	tests := []struct {
		name, in string
		want     []string
	}{
		{name: "empty", in: "", want: []string{}},
		{name: "one", in: "a", want: []string{"a"}},
		{name: "trailing comma", in: "a,b,", want: []string{"a", "b"}},
		{name: "blanks and spaces", in: " a , ,b,,", want: []string{"a", "b"}},
		{name: "duplicates kept", in: "a,a", want: []string{"a", "a"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got := splitRecords(tt.in)
			if fmt.Sprint(got) != fmt.Sprint(tt.want) || len(got) != len(tt.want) {
				t.Errorf("splitRecords(%q) = %q, want %q", tt.in, got, tt.want)
			}
		})
	}
}

func FuzzSplitRecords(f *testing.F) {
	for _, seed := range []string{"", "a,b,", " , ,", "x@example.com,Y", strings.Repeat("a,", 50)} {
		f.Add(seed)
	}
	f.Fuzz(func(t *testing.T, in string) {
		for _, rec := range splitRecords(in) {
			if rec == "" || strings.Contains(rec, ",") || strings.TrimSpace(rec) != rec {
				t.Fatalf("splitRecords(%q) gave %q", in, rec)
			}
		}
	})
}

func FuzzBookmark(f *testing.F) {
	f.Add(encodeBookmark(549755813888))
	f.Add("")
	f.Add("bogus")
	f.Add("c2ltOi0x")
	f.Fuzz(func(t *testing.T, b string) {
		id, ok := decodeBookmark(b)
		if ok && encodeBookmark(id) != b {
			// Another spelling of the same ID is fine; it must still decode to it.
			if again, ok2 := decodeBookmark(encodeBookmark(id)); !ok2 || again != id {
				t.Fatalf("bookmark %d does not round-trip", id)
			}
		}
	})
}

// FuzzCreateCustomerList sends arbitrary bodies to the create route: the
// simulator answers 200 or 400 (never a 5xx or a panic), and a 400 carries a
// one-line message.
func FuzzCreateCustomerList(f *testing.F) {
	sim, err := New(Options{AdAccounts: []string{testAd}, MaxRecordsPerRequest: 50})
	if err != nil {
		f.Fatalf("New: %v", err)
	}
	token, _ := sim.IssueToken(testClient, []string{"ads:read", "ads:write"})
	for _, seed := range []string{
		`{"name":"x","records":"a,b","list_type":"EMAIL"}`,
		`{"name":"x","records":"a","list_type":"FOO"}`,
		`{"name":1}`, `{}`, `[]`, `null`, `{"name":"x","records":"` + strings.Repeat("a,", 60) + `"}`, `{bad`,
	} {
		f.Add(seed, "application/json")
	}
	f.Add(`name=x&records=a`, "application/x-www-form-urlencoded")
	f.Fuzz(func(t *testing.T, body, contentType string) {
		req := httptest.NewRequest(http.MethodPost, "/v5/ad_accounts/"+testAd+"/customer_lists", strings.NewReader(body))
		req.Header.Set("Content-Type", contentType)
		req.Header.Set("Authorization", "Bearer "+token)
		rec := httptest.NewRecorder()
		sim.ServeHTTP(rec, req)
		switch rec.Code {
		case http.StatusOK:
		case http.StatusBadRequest:
			if msg := rec.Body.String(); strings.Count(msg, "\n") > 1 || !strings.Contains(msg, `"code":1`) {
				t.Fatalf("400 body %q is not one Pinterest error line", msg)
			}
		default:
			t.Fatalf("status %d for body %q (content type %q): %s", rec.Code, body, contentType, rec.Body)
		}
	})
}

// BenchmarkUpdateCustomerList measures one validated PATCH of 1,000 SHA-256
// records, the simulator's hot path under the upload function.
func BenchmarkUpdateCustomerList(b *testing.B) {
	sim, err := New(Options{AdAccounts: []string{testAd}})
	if err != nil {
		b.Fatalf("New: %v", err)
	}
	token, _ := sim.IssueToken(testClient, []string{"ads:read", "ads:write"})
	create := httptest.NewRequest(http.MethodPost, "/v5/ad_accounts/"+testAd+"/customer_lists", strings.NewReader(`{"name":"bench","records":""}`))
	create.Header.Set("Content-Type", "application/json")
	create.Header.Set("Authorization", "Bearer "+token)
	rec := httptest.NewRecorder()
	sim.ServeHTTP(rec, create)
	if rec.Code != http.StatusOK {
		b.Fatalf("create: %d %s", rec.Code, rec.Body)
	}
	listID := sim.State().AdAccounts[testAd].CustomerLists[0].ID
	records := make([]string, 1000)
	for i := range records {
		records[i] = fmt.Sprintf("%064x", i)
	}
	body := []byte(`{"operation_type":"ADD","records":"` + strings.Join(records, ",") + `"}`)
	b.SetBytes(int64(len(body)))
	b.ReportAllocs()
	for b.Loop() {
		req := httptest.NewRequest(http.MethodPatch, "/v5/ad_accounts/"+testAd+"/customer_lists/"+listID, bytes.NewReader(body))
		req.Header.Set("Content-Type", "application/json")
		req.Header.Set("Authorization", "Bearer "+token)
		rec := httptest.NewRecorder()
		sim.ServeHTTP(rec, req)
		if rec.Code != http.StatusOK {
			b.Fatalf("patch: %d %s", rec.Code, rec.Body)
		}
	}
}

// BenchmarkNew measures building a simulator (loading the embedded
// description), which every test that starts one pays.
func BenchmarkNew(b *testing.B) {
	for b.Loop() {
		if _, err := New(Options{}); err != nil {
			b.Fatalf("New: %v", err)
		}
	}
}
