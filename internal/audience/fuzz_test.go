package audience

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"math/rand/v2"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"unicode"

	"github.com/google/go-cmp/cmp"

	"github.com/pinlist/pinlist/internal/audience/audiencetest"
	"github.com/pinlist/pinlist/internal/loadgen"
)

// vocabulary is every fixed text a report or error can hold besides keys and
// numbers; an identifier that is part of it cannot be told from it.
const vocabulary = "unsupported_namespace opted_out invalid_email invalid_email_hash invalid_maid invalid_idfa invalid_identity " +
	"invalid_membership invalid_audience invalid_status invalid_timestamp malformed_json wrong_type ambiguous_body too_large " +
	"too_many_profiles too_many_identities too_many_audiences too_many_changes profiles identityMap segmentMembership id status " +
	"lastQualificationTime identitiesActivated excluded failed failures failuresTruncated reason path " +
	"empty body data after the top-level value the body must be a profile object, an array of profiles or {\"profiles\": [...]} " +
	"profiles must be an array a profile must be an object identityMap must be an object an identity namespace must be an array " +
	"segmentMembership must be an object an audience namespace must be an object of audience IDs expected an object key " +
	"expected ':' after an object key unexpected end of body expected ',' or '}' expected ',' or ']' invalid literal " +
	"unterminated string control character in a string invalid \\u escape invalid escape invalid JSON value byte offset " +
	"an object with \"profiles\" must not also have a profile's identityMap or segmentMembership body is over bytes " +
	"more than profiles identities in one namespace of one profile audience memberships in one profile changes (identities × memberships) in the request " +
	"duplicate_key too_deep a key repeated in one object: which of its values counts is ambiguous objects and arrays nested more than deep"

// FuzzParseProfiles feeds any bytes to the parser: it must not panic; it
// must accept exactly the JSON encoding/json accepts (up to a shape error,
// a repeated key); every hash must be 64 lowercase hex; Seq must count
// from 1; a Mapper (which coalesces the compact records) must equal
// Coalesce of the parser's changes, error and report included, and so
// must what its At reads; and no identifier may appear in the report or the error.
func FuzzParseProfiles(f *testing.F) {
	files, _ := filepath.Glob("testdata/aep/*.json")
	for _, name := range files {
		body, err := os.ReadFile(name)
		if err != nil {
			f.Fatal(err)
		}
		f.Add(body)
	}
	f.Add([]byte(profile([]string{"email= A@Example.com ", "gaid=" + gaid, "idfa=" + idfa, "email_lc_sha256=" + sha("x"), "gaid=00000000-0000-0000-0000-000000000000"},
		[]string{idA + "=realized@2024-05-06T07:08:09.123+0200", idB + "=exited@", "c=existing@2024-05-06T07:08:09Z", "d=gone@x"})))
	f.Add([]byte(`{"profiles":[{"identityMap":{"\u0045mail":[{"id":"a\u0040b.co"},7,null]},"segmentMembership":{"ups":{"x":{"status":"realized"}}}}]}`))
	f.Add([]byte(`[{"attributes":{"a":[1,{"b":"c\"]}"}]},"identityMap":{"phone":[{"id":"+1"}]}}]`))
	// The bad-input corpus (testdata/bad, issue 8).
	bad, err := loadgen.BadCorpus("../../testdata/bad")
	if err != nil {
		f.Fatal(err)
	}
	for _, b := range bad {
		f.Add(b)
	}
	// Bodies of the usual shape, for mutations to start from.
	gen, _ := audiencetest.Body(f, 3, 2)
	f.Add(gen)
	f.Add([]byte("[" + strings.Join(mixedBody(rand.New(rand.NewPCG(1, 2)), 4), ",") + "]"))
	f.Fuzz(func(t *testing.T, body []byte) {
		changes, rep, err := ParseProfiles(bytes.NewReader(body), Limits{}, recv)
		valid := json.Valid(body)
		var re *RequestError
		switch {
		case err != nil && !errors.As(err, &re):
			t.Fatalf("error %v is not a *RequestError", err)
		case valid && re != nil && (re.Kind == ErrMalformedJSON || re.Kind == ErrTooDeep):
			t.Fatalf("valid JSON rejected as malformed or too deep: %v", err)
		case !valid && err == nil:
			t.Fatalf("invalid JSON accepted")
		}
		for i, c := range changes {
			if !IsHash(c.Hash) || c.Seq != uint64(i+1) {
				t.Fatalf("change %d: hash %q, Seq %d", i, c.Hash, c.Seq)
			}
		}
		mapped, rep2, err2 := MapProfilesBytes(body, Limits{}, recv)
		if fmt.Sprint(err) != fmt.Sprint(err2) {
			t.Fatalf("ParseProfiles err %v, MapProfiles err %v", err, err2)
		}
		if diff := cmp.Diff(rows(Coalesce(changes)), rows(mapped)); diff != "" {
			t.Fatalf("MapProfiles differs from Coalesce(ParseProfiles):\n%s", diff)
		}
		if diff := cmp.Diff(rep, rep2); diff != "" {
			t.Fatalf("reports differ:\n%s", diff)
		}
		m := NewMapper(Limits{})
		if _, err := m.Map(body, recv); err == nil {
			checkAt(t, m, mapped)
		}
		if valid {
			checkNoIdentifier(t, body, rep, err)
		}
	})
}

// checkNoIdentifier fails if an identifier of body (an "id" string) shows in
// the report or the error. Identifiers that cannot be told from text the
// output holds anyway (shorter than 6 bytes, without a letter, or part of a
// key of the body or of the fixed vocabulary) are not checked.
func checkNoIdentifier(t *testing.T, body []byte, rep Report, err error) {
	t.Helper()
	ids, keys := identifiersAndKeys(body)
	out, mErr := json.Marshal(rep)
	if mErr != nil {
		t.Fatal(mErr)
	}
	text := string(out)
	if err != nil {
		text += err.Error()
	}
	for _, id := range ids {
		for _, form := range []string{id, strings.TrimSpace(id), strings.ToLower(strings.TrimSpace(id))} {
			if len(form) < 6 || !strings.ContainsFunc(form, unicode.IsLetter) ||
				strings.Contains(keys, form) || strings.Contains(vocabulary, form) {
				continue
			}
			if strings.Contains(text, form) {
				t.Fatalf("identifier %q appears in the output %s", form, text)
			}
		}
	}
}

// identifiersAndKeys returns every string value of an "id" key in body and
// all object keys joined with newlines.
func identifiersAndKeys(body []byte) ([]string, string) {
	dec := json.NewDecoder(bytes.NewReader(body))
	var ids []string
	var keys strings.Builder
	var stack []bool // per open container: is it an object?
	expectKey := false
	lastKey := ""
	for {
		tok, err := dec.Token()
		if err != nil {
			return ids, keys.String()
		}
		inObject := len(stack) > 0 && stack[len(stack)-1]
		switch v := tok.(type) {
		case json.Delim:
			switch v {
			case '{', '[':
				stack = append(stack, v == '{')
				expectKey = v == '{'
				continue
			default:
				stack = stack[:len(stack)-1]
			}
		case string:
			if inObject && expectKey {
				keys.WriteString(v + "\n")
				lastKey = v
				expectKey = false
				continue
			}
			if inObject && lastKey == "id" {
				ids = append(ids, v)
			}
		}
		expectKey = len(stack) > 0 && stack[len(stack)-1]
	}
}

// FuzzIdentity maps one identity of any namespace and value in a well-formed
// body: no panic, a hash only for a valid identifier and then the hash of its
// normal form, and the identifier never in the report.
func FuzzIdentity(f *testing.F) {
	f.Add("email", " A@Example.COM ", "realized", "2019-04-15T02:41:50.000+0000")
	f.Add("GAID", gaid, "exited", "2019-11-20T13:15:49Z")
	f.Add("idfa", "{"+idfa+"}", "existing", "2021-06-30T18:40:07.591378Z")
	f.Add("email_lc_sha256", strings.ToUpper(sha("a")), "gone", "2018-04-26T15:52:25+00:00")
	f.Add("phone", "+40744111222", "realized", "")
	f.Fuzz(func(t *testing.T, ns, id, status, ts string) {
		body, err := json.Marshal(map[string]any{
			"identityMap":       map[string]any{ns: []any{map[string]string{"id": id}}},
			"segmentMembership": map[string]any{"ups": map[string]any{"aud": map[string]string{"status": status, "lastQualificationTime": ts}}},
		})
		if err != nil {
			t.Fatalf("encode the body: %v", err)
		}
		changes, rep, err := ParseProfilesBytes(body, Limits{}, recv)
		if err != nil {
			t.Fatalf("well-formed body rejected: %v", err)
		}
		if rep.Activated > 1 || len(changes) > 1 {
			t.Fatalf("one identity gave %d activations, %d changes", rep.Activated, len(changes))
		}
		// What the identity should have become, by the rules.
		var want string
		kind := classifyNamespace([]byte(ns))
		var sum [32]byte
		var h hasher
		// id went through json.Marshal: invalid UTF-8 became U+FFFD.
		decoded := []byte(strings.ToValidUTF8(id, "\uFFFD"))
		if kind != nsOther && h.hashIdentity(kind, decoded, &sum) == idOK {
			want = hexString(sum)
		}
		if (want != "") != (rep.Activated == 1) {
			t.Fatalf("activated %d, want hash %q", rep.Activated, want)
		}
		for _, c := range changes {
			if c.Hash != want {
				t.Fatalf("hash %s, want %s", c.Hash, want)
			}
		}
		checkNoIdentifier(t, body, rep, nil)
	})
}

// FuzzNormalizeEmail holds normalizeEmail (one pass over the flags of the
// bytes) to normalizeEmailBytewise (a byte at a time), which it hands
// non-ASCII addresses to: the same verdict and, when valid, the same
// address, after the same prefix.
func FuzzNormalizeEmail(f *testing.F) {
	for _, s := range []string{" John.Doe@Example.COM\t", "a@b.co", "a@@b.co", "a b@c.de", "ä@example.com", "x@y.com \u00a0", "@x.com", "a@.com", "a@x..com"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, raw string) {
		got, ok := normalizeEmail([]byte("p:"), []byte(raw))
		want, wantOK := normalizeEmailBytewise([]byte("p:"), []byte(raw))
		if ok != wantOK || ok && string(got) != string(want) || !strings.HasPrefix(string(got), "p:") {
			t.Fatalf("normalizeEmail(%q) = %q, %v; byte-wise %q, %v", raw, got, ok, want, wantOK)
		}
	})
}

func hexString(sum [32]byte) string {
	const digits = "0123456789abcdef"
	b := make([]byte, 64)
	for i, c := range sum {
		b[2*i], b[2*i+1] = digits[c>>4], digits[c&15]
	}
	return string(b)
}
