package audience

import (
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"testing"
	"testing/iotest"

	"github.com/google/go-cmp/cmp"
	"github.com/google/go-cmp/cmp/cmpopts"
)

const (
	audA  = "ups:aaaaaaaa-0000-4000-8000-000000000001"
	audB  = "ups:bbbbbbbb-0000-4000-8000-000000000002"
	gaid  = "e4fe9bde-caa0-47b6-908d-ffba3fa184f2"
	idfa  = "AEBE52E7-03EE-455A-B3C4-E57283966239"
	tRecv = "2025-01-02T03:04:05Z (received)" // rows marks receive times
)

// profile builds one profile: identities as "<namespace>=<id>" and
// memberships as "<audience id>=<status>@<lastQualificationTime>" ("@" alone
// leaves the time out), all in the ups namespace. Of memberships of one
// audience only the first is written: a repeated key is a request error.
func profile(ids []string, mems []string) string {
	var b strings.Builder
	b.WriteString(`{"identityMap":{`)
	var order []string
	byNS := map[string][]string{}
	for _, id := range ids {
		ns, v, _ := strings.Cut(id, "=")
		if _, ok := byNS[ns]; !ok {
			order = append(order, ns)
		}
		byNS[ns] = append(byNS[ns], `{"id":`+quote(v)+`}`)
	}
	for i, ns := range order {
		if i > 0 {
			b.WriteByte(',')
		}
		fmt.Fprintf(&b, `%q:[%s]`, ns, strings.Join(byNS[ns], ","))
	}
	b.WriteString(`},"segmentMembership":{"ups":{`)
	seen := map[string]bool{}
	for _, m := range mems {
		aud, rest, _ := strings.Cut(m, "=")
		status, at, _ := strings.Cut(rest, "@")
		if seen[aud] {
			continue
		}
		if len(seen) > 0 {
			b.WriteByte(',')
		}
		seen[aud] = true
		fmt.Fprintf(&b, `%q:{"status":%q`, aud, status)
		if at != "" {
			fmt.Fprintf(&b, `,"lastQualificationTime":%q`, at)
		}
		b.WriteByte('}')
	}
	b.WriteString(`}}}`)
	return b.String()
}

// quote writes s as a JSON string, escaping only what JSON requires, so
// that bytes such as invalid UTF-8 reach the parser as they are.
func quote(s string) string {
	var b strings.Builder
	b.WriteByte('"')
	for i := 0; i < len(s); i++ {
		switch c := s[i]; {
		case c == '"' || c == '\\':
			b.WriteByte('\\')
			b.WriteByte(c)
		case c < 0x20:
			fmt.Fprintf(&b, `\u%04x`, c)
		default:
			b.WriteByte(c)
		}
	}
	b.WriteByte('"')
	return b.String()
}

const (
	idA = "aaaaaaaa-0000-4000-8000-000000000001"
	idB = "bbbbbbbb-0000-4000-8000-000000000002"
)

// TestParseMapping covers every mapping rule with a named case.
func TestParseMapping(t *testing.T) {
	realizedA := []string{idA + "=realized@2024-05-06T07:08:09Z"}
	at := "2024-05-06T07:08:09Z"
	tests := []struct {
		name   string
		body   string
		want   []row
		report Report
	}{
		{
			name:   "email is trimmed and lowercased before hashing",
			body:   profile([]string{"email=  John.Doe@Example.COM\t"}, realizedA),
			want:   []row{{audA, ListEmail, OpAdd, sha("john.doe@example.com"), at, 1}},
			report: Report{Profiles: 1, Activated: 1},
		},
		{
			name: "namespaces match case-insensitively",
			body: profile([]string{"Email=a@example.com", "EMAIL=b@example.com", "GAID=" + gaid, "Idfa=" + idfa, "EMAIL_LC_SHA256=" + sha("c@example.com")}, realizedA),
			want: []row{
				{audA, ListEmail, OpAdd, sha("a@example.com"), at, 1},
				{audA, ListEmail, OpAdd, sha("b@example.com"), at, 2},
				{audA, ListMAID, OpAdd, sha(gaid), at, 3},
				{audA, ListIDFA, OpAdd, sha(idfa), at, 4},
				{audA, ListEmail, OpAdd, sha("c@example.com"), at, 5},
			},
			report: Report{Profiles: 1, Activated: 5},
		},
		{
			name:   "email_lc_sha256 is lowercased, not hashed again",
			body:   profile([]string{"email_lc_sha256=" + strings.ToUpper(sha("x@example.com"))}, realizedA),
			want:   []row{{audA, ListEmail, OpAdd, sha("x@example.com"), at, 1}},
			report: Report{Profiles: 1, Activated: 1},
		},
		{
			name:   "gaid is lowercased then hashed",
			body:   profile([]string{"gaid=" + strings.ToUpper(gaid)}, realizedA),
			want:   []row{{audA, ListMAID, OpAdd, sha(gaid), at, 1}},
			report: Report{Profiles: 1, Activated: 1},
		},
		{
			name:   "idfa is uppercased then hashed",
			body:   profile([]string{"idfa=" + strings.ToLower(idfa)}, realizedA),
			want:   []row{{audA, ListIDFA, OpAdd, sha(idfa), at, 1}},
			report: Report{Profiles: 1, Activated: 1},
		},
		{
			name: "all-zero advertising IDs are opted out",
			body: profile([]string{"gaid=00000000-0000-0000-0000-000000000000", "idfa=00000000-0000-0000-0000-000000000000", "email=a@example.com"}, realizedA),
			want: []row{{audA, ListEmail, OpAdd, sha("a@example.com"), at, 1}},
			report: Report{Profiles: 1, Activated: 1,
				Excluded: map[string]int{"opted_out": 2}},
		},
		{
			name: "MAIDs with braces, without dashes or with a URN prefix fail",
			body: profile([]string{"gaid={" + gaid + "}", "gaid=" + strings.ReplaceAll(gaid, "-", ""), "idfa=urn:uuid:" + idfa, "idfa=" + idfa + "0", "gaid=" + strings.Replace(gaid, "-", "_", 1)}, realizedA),
			report: Report{Profiles: 1,
				Failed: map[string]int{"invalid_maid": 3, "invalid_idfa": 2},
				Failures: []Failure{
					{"invalid_maid", "$.identityMap.gaid[0].id"}, {"invalid_maid", "$.identityMap.gaid[1].id"},
					{"invalid_maid", "$.identityMap.gaid[2].id"},
					{"invalid_idfa", "$.identityMap.idfa[0].id"}, {"invalid_idfa", "$.identityMap.idfa[1].id"},
				}},
		},
		{
			name:   "other namespaces are excluded",
			body:   profile([]string{"phone=+40744111222", "external_id=123456", "mobileIds=" + gaid, "email=a@example.com"}, realizedA),
			want:   []row{{audA, ListEmail, OpAdd, sha("a@example.com"), at, 1}},
			report: Report{Profiles: 1, Activated: 1, Excluded: map[string]int{"unsupported_namespace": 3}},
		},
		{
			name: "malformed emails fail alone",
			body: profile([]string{"email=no-at-sign", "email=a@b", "email=a@@example.com", "email=a b@example.com", "email=@example.com",
				"email=a@.example.com", "email=a@example.com.", "email=a@example..com", "email=" + strings.Repeat("x", 65) + "@example.com",
				"email=a\"b@example.com", "email=\xff@example.com", "email=ok@example.com"}, realizedA),
			want: []row{{audA, ListEmail, OpAdd, sha("ok@example.com"), at, 1}},
			report: Report{Profiles: 1, Activated: 1, Failed: map[string]int{"invalid_email": 11},
				Failures: repeatFailure(Failure{"invalid_email", "$.identityMap.email[0].id"}, 11)},
		},
		{
			name:   "non-ASCII emails are lowercased by Unicode rules",
			body:   profile([]string{"email=\u00a0ÉLODIE@Exämple.COM "}, realizedA),
			want:   []row{{audA, ListEmail, OpAdd, sha("élodie@exämple.com"), at, 1}},
			report: Report{Profiles: 1, Activated: 1},
		},
		{
			name: "email_lc_sha256 that is not 64 hex characters fails",
			body: profile([]string{"email_lc_sha256=" + sha("a")[:63], "email_lc_sha256=" + sha("a")[:63] + "g", "email_lc_sha256=a@example.com"}, realizedA),
			report: Report{Profiles: 1, Failed: map[string]int{"invalid_email_hash": 3},
				Failures: repeatFailure(Failure{"invalid_email_hash", "$.identityMap.email_lc_sha256[0].id"}, 3)},
		},
		{
			name: "statuses: realized and existing add, exited removes",
			body: profile([]string{"email=a@example.com"}, []string{idA + "=existing@" + at, idB + "=exited@" + at}),
			want: []row{
				{audA, ListEmail, OpAdd, sha("a@example.com"), at, 1},
				{audB, ListEmail, OpRemove, sha("a@example.com"), at, 2},
			},
			report: Report{Profiles: 1, Activated: 1},
		},
		{
			name: "unknown, missing or non-string status fails that membership",
			body: `{"identityMap":{"email":[{"id":"a@example.com"}]},"segmentMembership":{"ups":{` +
				`"` + idA + `":{"status":"active"},"x1":{"lastQualificationTime":"` + at + `"},"x2":{"status":1},"x3":{"status":"Realized"},` +
				`"` + idB + `":{"status":"realized"}}}}`,
			want: []row{{audB, ListEmail, OpAdd, sha("a@example.com"), tRecv, 1}},
			report: Report{Profiles: 1, Activated: 1, Failed: map[string]int{"invalid_status": 4},
				Failures: []Failure{
					{"invalid_status", "$.segmentMembership.ups." + idA + ".status"},
					{"invalid_status", "$.segmentMembership.ups.x1.status"},
					{"invalid_status", "$.segmentMembership.ups.x2.status"},
					{"invalid_status", "$.segmentMembership.ups.x3.status"},
				}},
		},
		{
			name: "timestamps in every AEP form, missing or null means received",
			body: profile([]string{"email=a@example.com"}, []string{
				"t1=realized@2019-04-15T02:41:50.000+0000",
				"t2=realized@2019-11-20T13:15:49Z",
				"t3=realized@2021-06-30T18:40:07.591378Z",
				"t4=realized@2018-04-26T15:52:25+00:00",
				"t5=realized@2018-04-26T15:52:25.123456789-05:30",
				"t6=realized@2018-04-26T15:52:25.1+0100",
				"t7=realized@",
			}),
			want: []row{
				{"ups:t1", ListEmail, OpAdd, sha("a@example.com"), "2019-04-15T02:41:50Z", 1},
				{"ups:t2", ListEmail, OpAdd, sha("a@example.com"), "2019-11-20T13:15:49Z", 2},
				{"ups:t3", ListEmail, OpAdd, sha("a@example.com"), "2021-06-30T18:40:07.591378Z", 3},
				{"ups:t4", ListEmail, OpAdd, sha("a@example.com"), "2018-04-26T15:52:25Z", 4},
				{"ups:t5", ListEmail, OpAdd, sha("a@example.com"), "2018-04-26T21:22:25.123456789Z", 5},
				{"ups:t6", ListEmail, OpAdd, sha("a@example.com"), "2018-04-26T14:52:25.1Z", 6},
				{"ups:t7", ListEmail, OpAdd, sha("a@example.com"), tRecv, 7},
			},
			report: Report{Profiles: 1, Activated: 1},
		},
		{
			name:   "a null lastQualificationTime means received",
			body:   `{"identityMap":{"email":[{"id":"a@example.com"}]},"segmentMembership":{"ups":{"x":{"status":"exited","lastQualificationTime":null}}}}`,
			want:   []row{{"ups:x", ListEmail, OpRemove, sha("a@example.com"), tRecv, 1}},
			report: Report{Profiles: 1, Activated: 1},
		},
		{
			name: "bad timestamps fail that membership",
			body: `{"identityMap":{"email":[{"id":"a@example.com"}]},"segmentMembership":{"ups":{` +
				`"b1":{"status":"realized","lastQualificationTime":"2019-02-29T00:00:00Z"},` +
				`"b2":{"status":"realized","lastQualificationTime":"2019-11-20 13:15:49Z"},` +
				`"b3":{"status":"realized","lastQualificationTime":"2019-11-20T13:15:49"},` +
				`"b4":{"status":"realized","lastQualificationTime":"2019-11-20T13:15:49.1234567890Z"},` +
				`"b5":{"status":"realized","lastQualificationTime":"2019-11-20T24:00:00Z"},` +
				`"b6":{"status":"realized","lastQualificationTime":1574255749},` +
				`"b7":{"status":"realized","lastQualificationTime":"2019-11-20T13:15:49.Z"},` +
				`"b8":{"status":"realized","lastQualificationTime":"2019-11-20T13:15:60Z"},` +
				`"b9":{"status":"realized","lastQualificationTime":"2019-11-20T13:15:49+2400"},` +
				`"c1":{"status":"realized","lastQualificationTime":"1500-01-01T00:00:00Z"},` +
				`"c2":{"status":"realized","lastQualificationTime":""},` +
				`"ok":{"status":"realized","lastQualificationTime":"2020-02-29T00:00:00Z"}}}}`,
			want: []row{{"ups:ok", ListEmail, OpAdd, sha("a@example.com"), "2020-02-29T00:00:00Z", 1}},
			report: Report{Profiles: 1, Activated: 1, Failed: map[string]int{"invalid_timestamp": 11},
				Failures: func() []Failure {
					var f []Failure
					for _, k := range []string{"b1", "b2", "b3", "b4", "b5", "b6", "b7", "b8", "b9", "c1", "c2"} {
						f = append(f, Failure{"invalid_timestamp", "$.segmentMembership.ups." + k + ".lastQualificationTime"})
					}
					return f
				}()},
		},
		{
			name: "one profile in two audiences with opposite statuses",
			body: profile([]string{"email=a@example.com", "gaid=" + gaid}, []string{idA + "=realized@" + at, idB + "=exited@" + at}),
			want: []row{
				{audA, ListEmail, OpAdd, sha("a@example.com"), at, 1},
				{audA, ListMAID, OpAdd, sha(gaid), at, 2},
				{audB, ListEmail, OpRemove, sha("a@example.com"), at, 3},
				{audB, ListMAID, OpRemove, sha(gaid), at, 4},
			},
			report: Report{Profiles: 1, Activated: 2},
		},
		{
			name: "bad identity entries fail alone",
			body: `{"identityMap":{"email":["a@example.com",{"id":7},{"other":"x"},null,{"id":"ok@example.com","primary":true}]},` +
				`"segmentMembership":{"ups":{"x":{"status":"realized"}}}}`,
			want: []row{{"ups:x", ListEmail, OpAdd, sha("ok@example.com"), tRecv, 1}},
			report: Report{Profiles: 1, Activated: 1, Failed: map[string]int{"invalid_identity": 4},
				Failures: []Failure{
					{"invalid_identity", "$.identityMap.email[0]"},
					{"invalid_identity", "$.identityMap.email[1].id"},
					{"invalid_identity", "$.identityMap.email[2]"},
					{"invalid_identity", "$.identityMap.email[3]"},
				}},
		},
		{
			name: "bad memberships and audiences fail alone",
			body: `{"identityMap":{"email":[{"id":"a@example.com"}]},"segmentMembership":{"ups":{"m1":"realized","m2":null,"bad id":{"status":"realized"},"ok":{"status":"realized"}},` +
				`"a:b":{"x":{"status":"realized"}},"long":{"` + strings.Repeat("x", 124) + `":{"status":"realized"}}}}`,
			want: []row{{"ups:ok", ListEmail, OpAdd, sha("a@example.com"), tRecv, 1}},
			report: Report{Profiles: 1, Activated: 1, Failed: map[string]int{"invalid_membership": 2, "invalid_audience": 3},
				Failures: []Failure{
					{"invalid_membership", "$.segmentMembership.ups.m1"},
					{"invalid_membership", "$.segmentMembership.ups.m2"},
					{"invalid_audience", `$.segmentMembership.ups["bad id"]`},
					{"invalid_audience", "$.segmentMembership.a:b.x"},
					{"invalid_audience", `$.segmentMembership.long["` + strings.Repeat("x", 64) + `…"]`},
				}},
		},
		{
			name: "duplicate identifiers across namespaces give one change each; coalescing keeps one",
			body: profile([]string{"email=a@example.com", "email_lc_sha256=" + sha("a@example.com"), "Email=A@EXAMPLE.COM"}, realizedA),
			want: []row{
				{audA, ListEmail, OpAdd, sha("a@example.com"), at, 1},
				{audA, ListEmail, OpAdd, sha("a@example.com"), at, 2},
				{audA, ListEmail, OpAdd, sha("a@example.com"), at, 3},
			},
			report: Report{Profiles: 1, Activated: 3},
		},
		{
			name: "escaped keys and values are decoded",
			body: `{"identityMap":{"\u0065mail":[{"\u0069d":"a\u0040example.com"}],"gaid":[{"id":"` + gaid + `"}]},` +
				`"segment\u004dembership":{"ups":{"x\/y":{"st\u0061tus":"re\u0061lized","lastQualificationTime":"2024-05-06T07:08:09\u005a"}}}}`,
			want: []row{
				{"ups:x/y", ListEmail, OpAdd, sha("a@example.com"), at, 1},
				{"ups:x/y", ListMAID, OpAdd, sha(gaid), at, 2},
			},
			report: Report{Profiles: 1, Activated: 2},
		},
		{
			name: "unknown keys are skipped, whatever their value",
			body: ` { "attributes" : { "a" : [ 1 , -2.5e3 , true , false , null , { "b" : "c\"]}" } ] } , "identityMap" : { "email" : [ { "id" : "a@example.com" , "x" : [ ] } ] } ,` +
				` "segmentMembership" : { "ups" : { "x" : { "status" : "realized" , "xdm:version" : "15" } } } , "z" : { } } `,
			want:   []row{{"ups:x", ListEmail, OpAdd, sha("a@example.com"), tRecv, 1}},
			report: Report{Profiles: 1, Activated: 1},
		},
		{
			name:   "a key repeated in a skipped value is not the parser's concern",
			body:   `{"attributes":{"a":1,"a":[{"b":1,"b":2}]},"identityMap":{"email":[{"id":"a@example.com","x":{"y":1,"y":2}}]},"segmentMembership":{"ups":{"x":{"status":"realized"}}}}`,
			want:   []row{{"ups:x", ListEmail, OpAdd, sha("a@example.com"), tRecv, 1}},
			report: Report{Profiles: 1, Activated: 1},
		},
		{
			name: "nesting at the limit (10,000, encoding/json's) is read",
			body: `{"attributes":` + strings.Repeat("[", maxDepth-1) + strings.Repeat("]", maxDepth-1) +
				`,"identityMap":{"email":[{"id":"a@example.com"}]},"segmentMembership":{"ups":{"x":{"status":"realized"}}}}`,
			want:   []row{{"ups:x", ListEmail, OpAdd, sha("a@example.com"), tRecv, 1}},
			report: Report{Profiles: 1, Activated: 1},
		},
		{
			name:   "null identityMap and segmentMembership are empty",
			body:   `[{"identityMap":null,"segmentMembership":null},{"identityMap":{"email":null},"segmentMembership":{"ups":null}}]`,
			report: Report{Profiles: 2},
		},
		{
			name:   "identities without memberships give no changes",
			body:   `{"identityMap":{"email":[{"id":"a@example.com"}]}}`,
			report: Report{Profiles: 1, Activated: 1},
		},
		{
			name:   "an empty array",
			body:   ` [ ] `,
			report: Report{},
		},
		{
			name:   "an empty wrapper",
			body:   `{"profiles":[]}`,
			report: Report{},
		},
		{
			name:   "an empty object is one empty profile",
			body:   `{}`,
			report: Report{Profiles: 1},
		},
		{
			name: "paths name the profile index and quote odd keys; a key with @ is hidden",
			body: `{"profiles":[{},{},{"identityMap":{"Email":[{"id":"x"}],"my ns":[{"id":1}],"email":[{"id":"a@example.com"},{"id":"bad"}]},` +
				`"segmentMembership":{"ups":{"someone@example.com":{"status":"gone"}}}}]}`,
			report: Report{Profiles: 3, Activated: 1, Excluded: map[string]int{"unsupported_namespace": 1},
				Failed: map[string]int{"invalid_email": 2, "invalid_status": 1},
				Failures: []Failure{
					{"invalid_email", "$.profiles[2].identityMap.Email[0].id"},
					{"invalid_email", "$.profiles[2].identityMap.email[1].id"},
					{"invalid_status", "$.profiles[2].segmentMembership.ups[?].status"},
				}},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			changes, rep := mustParse(t, tt.body, Limits{})
			if diff := cmp.Diff(tt.want, rows(changes), cmpopts.EquateEmpty()); diff != "" {
				t.Errorf("changes (-want +got):\n%s", diff)
			}
			if diff := cmp.Diff(fillReport(tt.report), rep); diff != "" {
				t.Errorf("report (-want +got):\n%s", diff)
			}
			for _, c := range changes {
				if !IsHash(c.Hash) {
					t.Errorf("hash %q is not 64 lowercase hex", c.Hash)
				}
			}
		})
	}
}

func repeatFailure(f Failure, n int) []Failure {
	out := make([]Failure, n)
	for i := range out {
		out[i] = f
		out[i].Path = strings.Replace(f.Path, "[0]", fmt.Sprintf("[%d]", i), 1)
	}
	return out
}

// TestParseArrayPaths checks paths in a top-level array body.
func TestParseArrayPaths(t *testing.T) {
	body := `[{},{},{"identityMap":{"Email":[{"id":"a@example.com"},{"id":"nope"}]}}]`
	_, rep := mustParse(t, body, Limits{})
	want := []Failure{{"invalid_email", "$[2].identityMap.Email[1].id"}}
	if diff := cmp.Diff(want, rep.Failures); diff != "" {
		t.Errorf("failures (-want +got):\n%s", diff)
	}
}

// TestParseFailuresCap lists only MaxFailures failures but counts them all.
func TestParseFailuresCap(t *testing.T) {
	body := profile([]string{"email=1", "gaid=2", "idfa=3", "email=4", "email=5"}, nil)
	_, rep := mustParse(t, body, Limits{MaxFailures: 2})
	if got := rep.Failed["invalid_email"] + rep.Failed["invalid_maid"] + rep.Failed["invalid_idfa"]; got != 5 {
		t.Errorf("failed count %d, want 5", got)
	}
	if len(rep.Failures) != 2 || !rep.FailuresTruncated {
		t.Errorf("failures %v truncated %v, want 2 listed and truncated", rep.Failures, rep.FailuresTruncated)
	}
}

// TestParseRequestErrors covers every request-level error: kind and path.
func TestParseRequestErrors(t *testing.T) {
	many := func(n int, item string) string {
		return "[" + strings.TrimSuffix(strings.Repeat(item+",", n), ",") + "]"
	}
	tests := []struct {
		name string
		body string
		lim  Limits
		kind string
		path string
	}{
		{"empty body", "", Limits{}, ErrMalformedJSON, "$"},
		{"only space", " \n", Limits{}, ErrMalformedJSON, "$"},
		{"not JSON", "hello", Limits{}, ErrMalformedJSON, "$"},
		{"truncated", `{"identityMap":{"email":[{"id":"a@example.com"}`, Limits{}, ErrMalformedJSON, "$.identityMap.email"},
		{"trailing data", `{} {}`, Limits{}, ErrMalformedJSON, "$"},
		{"trailing comma", `[{},]`, Limits{}, ErrMalformedJSON, "$[1]"},
		{"control character in a string", "{\"identityMap\":{\"email\":[{\"id\":\"a\nb\"}]}}", Limits{}, ErrMalformedJSON, "$.identityMap.email"},
		{"bad escape", `{"identityMap":{"email":[{"id":"a\qb"}]}}`, Limits{}, ErrMalformedJSON, "$.identityMap.email"},
		{"invalid value in skipped attributes", `{"attributes":{"a":[1,2,]}}`, Limits{}, ErrMalformedJSON, "$"},
		{"invalid literal", `{"identityMap":nul}`, Limits{}, ErrMalformedJSON, "$.identityMap"},
		{"leading zero number", `{"attributes":01}`, Limits{}, ErrMalformedJSON, "$"},
		{"a string body", `"profiles"`, Limits{}, ErrWrongType, "$"},
		{"a null body", `null`, Limits{}, ErrWrongType, "$"},
		{"profiles not an array", `{"profiles":{}}`, Limits{}, ErrWrongType, "$.profiles"},
		{"a profile that is not an object", `[{},[]]`, Limits{}, ErrWrongType, "$[1]"},
		{"identityMap not an object", `{"identityMap":[]}`, Limits{}, ErrWrongType, "$.identityMap"},
		{"a namespace that is not an array", `[{"identityMap":{"email":{"id":"a@example.com"}}}]`, Limits{}, ErrWrongType, "$[0].identityMap.email"},
		{"segmentMembership not an object", `{"segmentMembership":"ups"}`, Limits{}, ErrWrongType, "$.segmentMembership"},
		{"an audience namespace that is not an object", `{"segmentMembership":{"ups":[]}}`, Limits{}, ErrWrongType, "$.segmentMembership.ups"},
		{"profiles and profile fields together", `{"profiles":[],"identityMap":{}}`, Limits{}, ErrAmbiguousBody, "$"},
		{"profile fields then profiles", `{"segmentMembership":{},"profiles":[]}`, Limits{}, ErrAmbiguousBody, "$"},
		{"profiles twice", `{"profiles":[],"profiles":[]}`, Limits{}, ErrDuplicateKey, "$.profiles"},
		{"identityMap twice, once escaped", `{"identityMap":{},"\u0069dentityMap":{}}`, Limits{}, ErrDuplicateKey, "$.identityMap"},
		{"segmentMembership twice in a listed profile", `[{},{"segmentMembership":{},"segmentMembership":{}}]`, Limits{}, ErrDuplicateKey, "$[1].segmentMembership"},
		{"a namespace twice", `{"identityMap":{"email":[],"gaid":[],"email":[]}}`, Limits{}, ErrDuplicateKey, "$.identityMap.email"},
		{"id twice", `[{"identityMap":{"email":[{"id":"a@example.com","id":"b@example.com"}]}}]`, Limits{}, ErrDuplicateKey, "$[0].identityMap.email[0].id"},
		{"an audience namespace twice", `{"segmentMembership":{"ups":{},"ups":{}}}`, Limits{}, ErrDuplicateKey, "$.segmentMembership.ups"},
		{"an audience twice", `{"segmentMembership":{"ups":{"x":{},"x":{}}}}`, Limits{}, ErrDuplicateKey, "$.segmentMembership.ups.x"},
		{"an audience key with @ twice: the path hides it", `{"segmentMembership":{"ups":{"a@example.com":{},"a@example.com":{}}}}`, Limits{}, ErrDuplicateKey, "$.segmentMembership.ups[?]"},
		{"status twice", `{"segmentMembership":{"ups":{"x":{"status":"realized","status":"exited"}}}}`, Limits{}, ErrDuplicateKey, "$.segmentMembership.ups.x.status"},
		{"lastQualificationTime twice", `{"segmentMembership":{"ups":{"x":{"lastQualificationTime":null,"lastQualificationTime":null}}}}`, Limits{}, ErrDuplicateKey, "$.segmentMembership.ups.x.lastQualificationTime"},
		{"a key repeated in a large object", `{"identityMap":{` + manyKeys(40) + `,"k7":[]}}`, Limits{}, ErrDuplicateKey, "$.identityMap.k7"},
		{"nesting one over the limit", `{"attributes":` + strings.Repeat("[", maxDepth) + strings.Repeat("]", maxDepth) + `}`, Limits{}, ErrTooDeep, "$"},
		{"nesting 100,000 deep in a profile list", strings.Repeat("[", 100_000) + strings.Repeat("]", 100_000), Limits{}, ErrTooDeep, "$[0]"},
		{"too large", `[{},{}]`, Limits{MaxBodyBytes: 6}, ErrTooLarge, "$"},
		{"too many profiles", many(4, "{}"), Limits{MaxProfiles: 3}, ErrTooManyProfiles, "$[3]"},
		{"too many profiles in the wrapper", `{"profiles":` + many(3, "{}") + `}`, Limits{MaxProfiles: 2}, ErrTooManyProfiles, "$.profiles[2]"},
		{"too many identities in one namespace", `{"identityMap":{"phone":` + many(3, `{"id":"1"}`) + `}}`, Limits{MaxIdentitiesPerNS: 2}, ErrTooManyIdentities, "$.identityMap.phone"},
		{"too many audiences in one profile", `[{"segmentMembership":{"a":{"1":{},"2":{}},"b":{"3":{}}}}]`, Limits{MaxAudiencesPerProfile: 2}, ErrTooManyAudiences, "$[0].segmentMembership"},
		{"too many changes", `[` + profile([]string{"email=a@example.com", "email=b@example.com"}, []string{"x=realized@", "y=realized@"}) + `]`, Limits{MaxChanges: 3}, ErrTooManyChanges, "$[0]"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			changes, rep, err := ParseProfiles(strings.NewReader(tt.body), tt.lim, recv)
			var re *RequestError
			if !errors.As(err, &re) {
				t.Fatalf("err = %v, want a *RequestError", err)
			}
			if re.Kind != tt.kind || re.Path != tt.path {
				t.Errorf("error %q at %q, want %q at %q (%v)", re.Kind, re.Path, tt.kind, tt.path, re)
			}
			if changes != nil || rep.Profiles != 0 {
				t.Errorf("got changes %v and report %+v with a request error", changes, rep)
			}
			if _, _, err := MapProfiles(strings.NewReader(tt.body), tt.lim, recv); !errors.As(err, &re) || re.Kind != tt.kind {
				t.Errorf("MapProfiles: err = %v, want kind %q", err, tt.kind)
			}
		})
	}
}

// manyKeys is n distinct members "k0":[] … of an object.
func manyKeys(n int) string {
	keys := make([]string, n)
	for i := range keys {
		keys[i] = fmt.Sprintf(`"k%d":[]`, i)
	}
	return strings.Join(keys, ",")
}

// TestParseLimitsAtTheBound accepts exactly the limits.
func TestParseLimitsAtTheBound(t *testing.T) {
	body := `[` + profile([]string{"email=a@example.com", "email=b@example.com"}, []string{"x=realized@", "y=realized@"}) + `,{}]`
	lim := Limits{MaxBodyBytes: int64(len(body)), MaxProfiles: 2, MaxIdentitiesPerNS: 2, MaxAudiencesPerProfile: 2, MaxChanges: 4}
	changes, rep := mustParse(t, body, lim)
	if len(changes) != 4 || rep.Profiles != 2 {
		t.Errorf("got %d changes, %d profiles; want 4 and 2", len(changes), rep.Profiles)
	}
}

// TestParseReadError returns the reader's error wrapped, not as a request error.
func TestParseReadError(t *testing.T) {
	boom := errors.New("connection reset")
	_, _, err := ParseProfiles(iotest.TimeoutReader(strings.NewReader(`[{"a":1}]`)), Limits{}, recv)
	if err == nil {
		t.Fatal("no error from a failing reader")
	}
	_, _, err = ParseProfiles(iotest.ErrReader(boom), Limits{}, recv)
	var re *RequestError
	if !errors.Is(err, boom) || errors.As(err, &re) {
		t.Errorf("err = %v, want the reader's error wrapped", err)
	}
}

// TestParseTooLargeStream detects an oversized body from a reader that does
// not know its length.
func TestParseTooLargeStream(t *testing.T) {
	body := `[` + strings.Repeat(`{},`, 100) + `{}]`
	_, _, err := ParseProfiles(iotest.OneByteReader(strings.NewReader(body)), Limits{MaxBodyBytes: 50}, recv)
	var re *RequestError
	if !errors.As(err, &re) || re.Kind != ErrTooLarge {
		t.Errorf("err = %v, want too_large", err)
	}
	changes, rep, err := ParseProfiles(iotest.HalfReader(strings.NewReader(body)), Limits{}, recv)
	if err != nil || rep.Profiles != 101 || len(changes) != 0 {
		t.Errorf("got %d profiles, err %v; want 101 and no error", rep.Profiles, err)
	}
}

// TestRealizedThenExited sends one identifier realized and exited in one
// request, in both arrival orders: the later lastQualificationTime decides,
// and on equal times the exit, whatever the arrival order.
func TestRealizedThenExited(t *testing.T) {
	realized := func(at string) string { return profile([]string{"email=a@example.com"}, []string{"x=realized@" + at}) }
	exited := func(at string) string { return profile([]string{"Email= A@EXAMPLE.COM"}, []string{"x=exited@" + at}) }
	const early, late = "2024-01-01T00:00:00Z", "2024-01-01T00:00:00.000000001Z"
	tests := []struct {
		name   string
		body   string
		wantOp Op
	}{
		{"realized later, arriving first", "[" + realized(late) + "," + exited(early) + "]", OpAdd},
		{"realized later, arriving last", "[" + exited(early) + "," + realized(late) + "]", OpAdd},
		{"exited later, arriving first", "[" + exited(late) + "," + realized(early) + "]", OpRemove},
		{"exited later, arriving last", "[" + realized(early) + "," + exited(late) + "]", OpRemove},
		{"same time: the exit, arriving last", "[" + realized(early) + "," + exited(early) + "]", OpRemove},
		{"same time: the exit, arriving first", "[" + exited(early) + "," + realized(early) + "]", OpRemove},
		{"an event time over a later receive time", "[" + exited("") + "," + realized(early) + "]", OpAdd},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			changes, _, err := MapProfiles(strings.NewReader(tt.body), Limits{}, recv)
			if err != nil {
				t.Fatal(err)
			}
			if len(changes) != 1 || changes[0].Op != tt.wantOp || changes[0].Hash != sha("a@example.com") {
				t.Errorf("got %v, want one %s", rows(changes), tt.wantOp)
			}
		})
	}
}

// TestReportHoldsNoIdentifier fails identities of every kind and checks
// that neither the report nor a request error quotes them.
func TestReportHoldsNoIdentifier(t *testing.T) {
	secrets := []string{"john.secret@@example.com", "{e4fe9bde-caa0-47b6-908d-ffba3fa184f2}", "AEBE52E703EE455AB3C4E57283966239", "not-a-hash-johnsecret"}
	body := profile([]string{"email=" + secrets[0], "gaid=" + secrets[1], "idfa=" + secrets[2], "email_lc_sha256=" + secrets[3]}, []string{"x=realized@"})
	_, rep := mustParse(t, body, Limits{})
	out, err := json.Marshal(rep)
	if err != nil {
		t.Fatal(err)
	}
	if len(rep.Failures) != 4 {
		t.Fatalf("want 4 failures, got %s", out)
	}
	_, _, reqErr := ParseProfiles(strings.NewReader(body[:len(body)-10]), Limits{}, recv)
	if reqErr == nil {
		t.Fatal("a truncated body was accepted")
	}
	for _, s := range secrets {
		for _, text := range []string{string(out), reqErr.Error()} {
			if strings.Contains(strings.ToLower(text), strings.ToLower(s)) || strings.Contains(text, "john") {
				t.Errorf("%q appears in %s", s, text)
			}
		}
	}
}
