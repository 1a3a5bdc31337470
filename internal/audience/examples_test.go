package audience

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
	"github.com/google/go-cmp/cmp/cmpopts"
)

// Hashes of the example addresses, computed outside Go:
// printf '%s' johndoe@example.com | sha256sum
const (
	hashJohnDoe = "55e79200c1635b37ad31a378c39feb12f120f116625093a19bc32fff15041149"
	hashJD      = "d1d1fda965404c9f0064ffd3b8d0029e61447619f3d7d9051b108d892f2e1ca7"
	hashJane    = "86e0b9e56c17cc4d12387e1949b85053fbe73bc3ce5a1188713a9d300cc6133d"
	hashHarry   = "6abaa492d931a5fe5007d22afdc274a67b7057ff1aae70fcc3dac05851cbf769"
)

const (
	aud36 = "ups:36a51c13-9dd6-4d2c-8aa3-07d785ea5075"
	aud78 = "ups:788d8874-8007-4253-92b7-ee6b6c20c6f3"
	aud8f = "ups:8f812592-3f06-416b-bd50-e7831848a31a"
)

// TestExamples maps every AEP example (testdata/aep, copied from the AEP
// documentation) that has an identityMap or a segmentMembership, and checks
// the changes and the report written out by hand.
func TestExamples(t *testing.T) {
	realizedAndExited := realizedAndExitedRows()
	tests := []struct {
		file    string
		changes []row
		report  Report
	}{
		{
			file:   "aggkey-identity-input-profile1-email-phone-idfa-gaid.json",
			report: Report{Profiles: 1, Activated: 4, Excluded: map[string]int{"unsupported_namespace": 1}},
		},
		{
			// The example's IDFA and GAID are not hexadecimal: both fail.
			file: "aggkey-identity-input-profile2-email-phones-idfa-gaid.json",
			report: Report{Profiles: 1, Activated: 1,
				Excluded: map[string]int{"unsupported_namespace": 2},
				Failed:   map[string]int{"invalid_idfa": 1, "invalid_maid": 1},
				Failures: []Failure{{"invalid_idfa", "$.identityMap.IDFA[0].id"}, {"invalid_maid", "$.identityMap.GAID[0].id"}}},
		},
		{file: "aggkey-segment-input-profile1-ups.json", report: Report{Profiles: 1}},
		{file: "aggkey-segment-input-profile2-ups.json", report: Report{Profiles: 1}},
		{file: "aggkey-segment-input-profile3-customeraudienceupload.json", report: Report{Profiles: 1}},
		{file: "aggkey-segment-input-profile4-two-namespaces.json", report: Report{Profiles: 1}},
		{file: "audience-membership-input-profile1-realized-and-exited.json", report: Report{Profiles: 1}},
		{file: "audience-membership-input-profile2-all-realized.json", report: Report{Profiles: 1}},
		{
			file:   "identities-input-profile1-two-emails-external-id.json",
			report: Report{Profiles: 1, Activated: 2, Excluded: map[string]int{"unsupported_namespace": 1}},
		},
		{file: "identities-input-profile2-one-email.json", report: Report{Profiles: 1, Activated: 1}},
		{
			// mobileIds is not a namespace pinlist maps.
			file:   "profile-structure-ex1-freeform-attributes.json",
			report: Report{Profiles: 1, Excluded: map[string]int{"unsupported_namespace": 1}},
		},
		{
			file:   "profile-structure-ex2-predefined-attributes.json",
			report: Report{Profiles: 1, Excluded: map[string]int{"unsupported_namespace": 1}},
		},
		{
			// The XDM field group form (xdm:segmentMembership) is not the
			// destination payload: its keys are ignored like any attribute.
			file:   "segmentMembership-xdm-field-group-example-realized-exited.json",
			report: Report{Profiles: 1},
		},
		{
			file:    "segments-identities-attributes-input-profile1.json",
			changes: realizedAndExited,
			report:  Report{Profiles: 1, Activated: 2, Excluded: map[string]int{"unsupported_namespace": 1}},
		},
		{
			file:    "segments-identities-attributes-input-profile2.json",
			changes: []row{{aud36, ListEmail, OpAdd, hashHarry, "2019-11-20T13:15:49Z", 1}},
			report:  Report{Profiles: 1, Activated: 1},
		},
		{
			file:    "segments-identities-input-profile1-realized-and-exited.json",
			changes: realizedAndExited,
			report:  Report{Profiles: 1, Activated: 2, Excluded: map[string]int{"unsupported_namespace": 1}},
		},
		{
			file:    "segments-identities-input-profile2-realized.json",
			changes: []row{{aud36, ListEmail, OpAdd, hashJane, "2021-08-31T10:01:42Z", 1}},
			report:  Report{Profiles: 1, Activated: 1},
		},
	}
	files, err := filepath.Glob("testdata/aep/*.json")
	if err != nil {
		t.Fatal(err)
	}
	if len(files) != len(tests) {
		t.Errorf("testdata/aep has %d files, the table %d: every example needs a case", len(files), len(tests))
	}
	for _, tt := range tests {
		t.Run(tt.file, func(t *testing.T) {
			body, err := os.ReadFile(filepath.Join("testdata/aep", tt.file))
			if err != nil {
				t.Fatal(err)
			}
			changes, rep := mustParse(t, string(body), Limits{})
			if diff := cmp.Diff(tt.changes, rows(changes), cmpopts.EquateEmpty()); diff != "" {
				t.Errorf("changes (-want +got):\n%s", diff)
			}
			if diff := cmp.Diff(fillReport(tt.report), rep); diff != "" {
				t.Errorf("report (-want +got):\n%s", diff)
			}
		})
	}
}

// TestExampleBatches sends examples the way AEP batches them: an array of
// profiles and the {"profiles": [...]} wrapper. Seq runs across profiles.
func TestExampleBatches(t *testing.T) {
	p1, err := os.ReadFile("testdata/aep/segments-identities-input-profile1-realized-and-exited.json")
	if err != nil {
		t.Fatal(err)
	}
	p2, err := os.ReadFile("testdata/aep/segments-identities-input-profile2-realized.json")
	if err != nil {
		t.Fatal(err)
	}
	want := append(realizedAndExitedRows(), row{aud36, ListEmail, OpAdd, hashJane, "2021-08-31T10:01:42Z", 7})
	// Coalesced: sorted by audience, list, op, hash.
	wantCoalesced := []row{
		{aud36, ListEmail, OpAdd, hashJohnDoe, "2019-11-20T13:15:49Z", 1},
		{aud36, ListEmail, OpAdd, hashJane, "2021-08-31T10:01:42Z", 7},
		{aud36, ListEmail, OpAdd, hashJD, "2019-11-20T13:15:49Z", 2},
		{aud78, ListEmail, OpAdd, hashJohnDoe, "2019-11-20T13:15:49Z", 3},
		{aud78, ListEmail, OpAdd, hashJD, "2019-11-20T13:15:49Z", 4},
		{aud8f, ListEmail, OpRemove, hashJohnDoe, "2019-11-20T13:15:49Z", 5},
		{aud8f, ListEmail, OpRemove, hashJD, "2019-11-20T13:15:49Z", 6},
	}
	wantReport := fillReport(Report{Profiles: 2, Activated: 3, Excluded: map[string]int{"unsupported_namespace": 1}})
	for name, body := range map[string]string{
		"array":   "[" + string(p1) + ",\n" + string(p2) + "]",
		"wrapper": `{"profiles": [` + string(p1) + "," + string(p2) + "]}",
	} {
		t.Run(name, func(t *testing.T) {
			changes, rep := mustParse(t, body, Limits{})
			if diff := cmp.Diff(want, rows(changes)); diff != "" {
				t.Errorf("changes (-want +got):\n%s", diff)
			}
			if diff := cmp.Diff(wantReport, rep); diff != "" {
				t.Errorf("report (-want +got):\n%s", diff)
			}
			if diff := cmp.Diff(wantCoalesced, rows(Coalesce(changes))); diff != "" {
				t.Errorf("coalesced (-want +got):\n%s", diff)
			}
			mapped, _, err := MapProfiles(strings.NewReader(body), Limits{}, recv)
			if err != nil {
				t.Fatal(err)
			}
			if diff := cmp.Diff(wantCoalesced, rows(mapped)); diff != "" {
				t.Errorf("MapProfiles (-want +got):\n%s", diff)
			}
		})
	}
}

// realizedAndExitedRows are the changes of the examples with johndoe and jd
// in two audiences realized and one exited: memberships in order, each with
// both identities.
func realizedAndExitedRows() []row {
	return []row{
		{aud36, ListEmail, OpAdd, hashJohnDoe, "2019-11-20T13:15:49Z", 1},
		{aud36, ListEmail, OpAdd, hashJD, "2019-11-20T13:15:49Z", 2},
		{aud78, ListEmail, OpAdd, hashJohnDoe, "2019-11-20T13:15:49Z", 3},
		{aud78, ListEmail, OpAdd, hashJD, "2019-11-20T13:15:49Z", 4},
		{aud8f, ListEmail, OpRemove, hashJohnDoe, "2019-11-20T13:15:49Z", 5},
		{aud8f, ListEmail, OpRemove, hashJD, "2019-11-20T13:15:49Z", 6},
	}
}

// fillReport gives a hand-written report the empty maps and slice a parsed
// one has.
func fillReport(r Report) Report {
	if r.Excluded == nil {
		r.Excluded = map[string]int{}
	}
	if r.Failed == nil {
		r.Failed = map[string]int{}
	}
	if r.Failures == nil {
		r.Failures = []Failure{}
	}
	return r
}
