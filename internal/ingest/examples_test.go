package ingest

import (
	"bytes"
	"encoding/json"
	"net/http"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/pinlist/pinlist/internal/audience"
	"github.com/pinlist/pinlist/internal/wire"
)

// The AEP documentation's example profiles that carry both an identityMap and
// a segmentMembership, copied from the AEP destination SDK docs into
// testdata/aep (see RESEARCH.md in the design notes).

// exampleChange is one expected membership change, written with the plain
// identifier; the test hashes it.
type exampleChange struct {
	audience string // audience key
	email    string // normalised
	op       audience.Op
	time     string
}

func TestAEPExamples(t *testing.T) {
	const (
		aud1 = "ups:36a51c13-9dd6-4d2c-8aa3-07d785ea5075"
		aud2 = "ups:788d8874-8007-4253-92b7-ee6b6c20c6f3"
		aud3 = "ups:8f812592-3f06-416b-bd50-e7831848a31a"
		t1   = "2019-11-20T13:15:49Z"
	)
	// Profile 1 of the "segments-identities" examples: two emails, three
	// memberships (two realized, one exited), an external_id (excluded).
	profile1 := []exampleChange{
		{aud1, "johndoe@example.com", audience.OpAdd, t1}, {aud1, "jd@example.com", audience.OpAdd, t1},
		{aud2, "johndoe@example.com", audience.OpAdd, t1}, {aud2, "jd@example.com", audience.OpAdd, t1},
		{aud3, "johndoe@example.com", audience.OpRemove, t1}, {aud3, "jd@example.com", audience.OpRemove, t1},
	}
	tests := []struct {
		file      string
		activated int
		excluded  map[string]int
		want      []exampleChange
	}{
		// mobileIds is not a namespace pinlist maps: nothing to enqueue.
		{file: "profile-structure-ex1-freeform-attributes.json", excluded: map[string]int{audience.ExcludedUnsupportedNamespace: 1}},
		{file: "profile-structure-ex2-predefined-attributes.json", excluded: map[string]int{audience.ExcludedUnsupportedNamespace: 1}},
		{file: "segments-identities-attributes-input-profile1.json", activated: 2, excluded: map[string]int{audience.ExcludedUnsupportedNamespace: 1}, want: profile1},
		{file: "segments-identities-input-profile1-realized-and-exited.json", activated: 2, excluded: map[string]int{audience.ExcludedUnsupportedNamespace: 1}, want: profile1},
		{file: "segments-identities-attributes-input-profile2.json", activated: 1, excluded: map[string]int{}, want: []exampleChange{{aud1, "harry.p@example.com", audience.OpAdd, t1}}},
		{file: "segments-identities-input-profile2-realized.json", activated: 1, excluded: map[string]int{}, want: []exampleChange{{aud1, "jane.doe@example.com", audience.OpAdd, "2021-08-31T10:01:42Z"}}},
	}
	files, err := filepath.Glob("testdata/aep/*.json")
	if err != nil || len(files) != len(tests) {
		t.Fatalf("testdata/aep holds %d examples (%v), the table %d", len(files), err, len(tests))
	}
	var all [][]byte
	var allWant []exampleChange
	for _, tc := range tests {
		body, err := os.ReadFile(filepath.Join("testdata/aep", tc.file))
		if err != nil {
			t.Fatal(err)
		}
		all = append(all, body)
		allWant = append(allWant, tc.want...)
		t.Run(tc.file, func(t *testing.T) {
			hs := newHarness(t, nil)
			resp := postProfiles(t, hs, body)
			if resp.Profiles != 1 || resp.Activated != tc.activated || resp.ChangesEnqueued != len(tc.want) || len(resp.Failures) != 0 {
				t.Errorf("report %+v, want 1 profile, %d activated, %d changes, no failures", resp, tc.activated, len(tc.want))
			}
			if diff := cmp.Diff(tc.excluded, resp.Excluded); diff != "" {
				t.Errorf("excluded (-want +got):\n%s", diff)
			}
			checkRecords(t, hs, tc.want)
		})
	}
	t.Run("all in one request", func(t *testing.T) {
		hs := newHarness(t, nil)
		body := append(append([]byte(`{"profiles":[`), bytes.Join(all, []byte(","))...), "]}"...)
		resp := postProfiles(t, hs, body)
		if resp.Profiles != len(tests) || resp.ChangesEnqueued != len(allWant)-len(profile1) {
			// profile1 comes twice: the second copy coalesces into the first.
			t.Errorf("report %+v, want %d profiles and %d changes", resp, len(tests), len(allWant)-len(profile1))
		}
		if resp.Messages != 3 {
			t.Errorf("%d messages, want one per audience (3)", resp.Messages)
		}
		checkRecords(t, hs, allWant)
	})
}

func postProfiles(t *testing.T, hs *harness, body []byte) profilesResponse {
	t.Helper()
	rec := hs.post(t, PathProfiles, string(body))
	if rec.Code != http.StatusAccepted {
		t.Fatalf("status %d, body %s", rec.Code, rec.Body)
	}
	var resp profilesResponse
	if err := json.Unmarshal(rec.Body.Bytes(), &resp); err != nil {
		t.Fatal(err)
	}
	if resp.Messages != len(hs.sender.enqueued()) {
		t.Errorf("messages %d, but %d enqueued", resp.Messages, len(hs.sender.enqueued()))
	}
	return resp
}

// checkRecords compares the enqueued records, as a set, with want (duplicates
// in want collapse, as coalescing does).
func checkRecords(t *testing.T, hs *harness, want []exampleChange) {
	t.Helper()
	type rec struct {
		Audience string
		Record   wire.Record
	}
	var wantRecs, gotRecs []rec
	for _, c := range want {
		tm, err := time.Parse(time.RFC3339, c.time)
		if err != nil {
			t.Fatal(err)
		}
		r := rec{c.audience, wire.Record{List: audience.ListEmail, Op: c.op, Hash: sha256Hex([]byte(c.email)), Time: tm.UnixNano()}}
		if !slices.Contains(wantRecs, r) {
			wantRecs = append(wantRecs, r)
		}
	}
	sent := hs.sender.enqueued()
	for i, m := range decodeMessages(t, sent) {
		for _, r := range m.Records {
			gotRecs = append(gotRecs, rec{m.Audience.Key(), r})
		}
		for _, c := range want {
			if leaks(sent[i].Body, c.email) {
				t.Errorf("message %d holds a plain email", i)
			}
		}
	}
	order := func(a, b rec) int {
		return strings.Compare(a.Audience+a.Record.Hash+string(a.Record.Op), b.Audience+b.Record.Hash+string(b.Record.Op))
	}
	slices.SortFunc(wantRecs, order)
	slices.SortFunc(gotRecs, order)
	if diff := cmp.Diff(wantRecs, gotRecs); diff != "" {
		t.Errorf("records (-want +got):\n%s", diff)
	}
}
