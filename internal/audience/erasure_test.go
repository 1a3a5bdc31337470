package audience

import (
	"errors"
	"testing"
	"time"
)

// TestMapErasureHashesAsMapDoes: the identities of an erasure body hash
// to the same values Map gives them; memberships are not even read.
func TestMapErasureHashesAsMapDoes(t *testing.T) {
	body := `{"profiles": [
	 {"identityMap": {"email": [{"id": "  Jane.Doe@Example.COM "}], "gaid": [{"id": "6D92078A-8246-4BA4-AE5B-76104861E7DC"}]},
	  "segmentMembership": {"ups": {"a": {"status": "realized", "lastQualificationTime": "2026-11-01T10:00:00Z"}}}},
	 {"identityMap": {"email": [{"id": "jane.doe@example.com"}], "idfa": [{"id": "not-a-uuid"}]},
	  "segmentMembership": "not even an object"}]}`
	m := NewMapper(Limits{})
	ids, rep, err := m.MapErasure([]byte(body))
	if err != nil {
		t.Fatalf("MapErasure: %v", err)
	}
	if len(ids) != 2 || rep.Profiles != 2 || rep.Activated != 3 || rep.Failed[FailInvalidIDFA] != 1 {
		t.Fatalf("ids %v, report %+v", ids, rep)
	}
	// The same identities through Map (with a membership each).
	pbody := `[{"identityMap": {"email": [{"id": "jane.doe@example.com"}], "gaid": [{"id": "6d92078a-8246-4ba4-ae5b-76104861e7dc"}]},
	  "segmentMembership": {"ups": {"a": {"status": "realized", "lastQualificationTime": "2026-11-01T10:00:00Z"}}}}]`
	if _, err := m.Map([]byte(pbody), time.Now()); err != nil {
		t.Fatal(err)
	}
	want := map[Identity]bool{}
	for _, c := range m.Changes() {
		want[Identity{List: c.List, Hash: c.Hash}] = true
	}
	for _, id := range ids {
		if !want[id] {
			t.Fatalf("erasure identity %v is not one Map made (%v)", id, want)
		}
	}
}

func TestMapErasureRequestErrors(t *testing.T) {
	tests := []struct {
		name, body, kind string
	}{
		{"not JSON", `{`, ErrMalformedJSON},
		{"wrong top type", `"x"`, ErrWrongType},
		{"too many identities", `[{"identityMap": {"email": [{"id": "a@b.co"}, {"id": "b@b.co"}, {"id": "c@b.co"}]}}]`, ErrTooManyChanges},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			_, _, err := NewMapper(Limits{MaxChanges: 2}).MapErasure([]byte(tc.body))
			var re *RequestError
			if !errors.As(err, &re) || re.Kind != tc.kind {
				t.Fatalf("error %v, want kind %s", err, tc.kind)
			}
		})
	}
}

// FuzzMapErasure: any body: no panic, hashes are 64 lowercase hex, no more
// identities than were activated.
func FuzzMapErasure(f *testing.F) {
	f.Add([]byte(`{"identityMap": {"email": [{"id": "Jane@Example.com"}]}}`))
	f.Add([]byte(`[{"identityMap": {"gaid": [{"id": "6D92078A-8246-4BA4-AE5B-76104861E7DC"}]}, "segmentMembership": 1}]`))
	f.Add([]byte(`{"profiles": [{"identityMap": {"idfa": [{"id": 5}]}}]}`))
	m := NewMapper(Limits{})
	f.Fuzz(func(t *testing.T, body []byte) {
		ids, rep, err := m.MapErasure(body)
		for _, id := range ids {
			if !IsHash(id.Hash) {
				t.Fatalf("hash %q", id.Hash)
			}
		}
		if err == nil && len(ids) > rep.Activated {
			t.Fatalf("%d identities from %d activated", len(ids), rep.Activated)
		}
		// The parser is FuzzParseProfiles': its reports and errors are
		// checked there for identifiers.
	})
}
