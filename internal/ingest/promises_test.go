package ingest

import (
	"encoding/json"
	"net/http"
	"slices"
	"testing"

	"github.com/pinlist/pinlist/internal/audience"
	"github.com/pinlist/pinlist/internal/wire"
)

// TestErasure: the identities of an erasure body are hashed exactly as
// /v1/profiles hashes them (memberships ignored) and enqueued in the
// erasure group; neither the answer, the messages nor the log hold a
// plain identifier.
func TestErasure(t *testing.T) {
	hs := newHarness(t, nil)
	rec := hs.post(t, PathErasure, mixedBody)
	if rec.Code != http.StatusAccepted {
		t.Fatalf("status %d: %s", rec.Code, rec.Body)
	}
	var resp struct {
		Profiles          int            `json:"profiles"`
		Activated         int            `json:"identitiesActivated"`
		Failed            map[string]int `json:"failed"`
		Excluded          map[string]int `json:"excluded"`
		IdentifiersErased int            `json:"identifiersErased"`
		Messages          int            `json:"messages"`
	}
	if err := json.Unmarshal(rec.Body.Bytes(), &resp); err != nil {
		t.Fatal(err)
	}
	// jane.doe (EMAIL) and the IDFA; not-an-email fails, the zero GAID is
	// opted out, external_id is not mapped.
	if resp.Profiles != 2 || resp.IdentifiersErased != 2 || resp.Messages != 1 || resp.Failed[audience.FailInvalidEmail] != 1 {
		t.Fatalf("answer %s", rec.Body)
	}
	sent := hs.sender.enqueued()
	if len(sent) != 1 || sent[0].GroupID != wire.ErasureGroup {
		t.Fatalf("enqueued %d messages (group %q), want 1 in %q", len(sent), sent[0].GroupID, wire.ErasureGroup)
	}
	m, err := wire.Decode(sent[0].Body)
	if err != nil || m.Kind != wire.KindErasure {
		t.Fatalf("message %+v, %v", m, err)
	}
	// The hashes are the ones /v1/profiles sends for the same identities.
	hs2 := newHarness(t, nil)
	if rec := hs2.post(t, PathProfiles, mixedBody); rec.Code != http.StatusAccepted {
		t.Fatalf("profiles status %d", rec.Code)
	}
	want := map[string]audience.ListType{}
	for _, pm := range decodeMessages(t, hs2.sender.enqueued()) {
		for _, r := range pm.Records {
			want[r.Hash] = r.List
		}
	}
	got := map[string]audience.ListType{}
	for _, r := range m.Records {
		got[r.Hash] = r.List
		if r.Op != audience.OpRemove || r.Time != hs.clock.Now().UnixNano() || r.Received {
			t.Errorf("record %+v: want a REMOVE stamped with the receive time as its event time", r)
		}
	}
	if len(got) != len(want) {
		t.Fatalf("erased %v, want the profiles' identities %v", got, want)
	}
	for h, l := range want {
		if got[h] != l {
			t.Fatalf("erased %v, want %v", got, want)
		}
	}
	for _, id := range plainIdentifiers {
		for what, b := range map[string][]byte{"answer": rec.Body.Bytes(), "message": sent[0].Body, "log": []byte(hs.logs.String())} {
			if leaks(b, id) {
				t.Errorf("the %s holds the plain identifier %q", what, id)
			}
		}
	}
}

// TestErasureBadBodies: bad bodies get the answers /v1/profiles gives.
func TestErasureBadBodies(t *testing.T) {
	tests := []struct {
		name string
		body string
	}{
		{"not JSON", `{"identityMap":`},
		{"a number", `42`},
		{"identityMap not an object", `{"identityMap": []}`},
		{"ambiguous", `{"profiles": [], "identityMap": {}}`},
		{"duplicate key", `{"identityMap": {"email": [{"id": "a@example.com", "id": "b@example.com"}]}}`},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			hs := newHarness(t, nil)
			er := hs.post(t, PathErasure, tc.body)
			pr := hs.post(t, PathProfiles, tc.body)
			if er.Code != pr.Code || er.Code/100 != 4 {
				t.Fatalf("erasure %d, profiles %d: want the same 4xx", er.Code, pr.Code)
			}
			ee, pe := decodeErrorBody(t, er.Body.Bytes()), decodeErrorBody(t, pr.Body.Bytes())
			if ee.Code != pe.Code || ee.Path != pe.Path {
				t.Fatalf("erasure error %+v, profiles error %+v", ee, pe)
			}
			if len(hs.sender.enqueued()) != 0 {
				t.Fatal("a bad body enqueued messages")
			}
		})
	}
}

// TestDeleteAudience: DELETE /v1/audiences/{id} enqueues a retire message
// in the audience's group.
func TestDeleteAudience(t *testing.T) {
	tests := []struct {
		name   string
		method string
		path   string
		status int
		want   audience.Ref
	}{
		{"key", http.MethodDelete, "/v1/audiences/ups:aud-1", 202, audience.Ref{Namespace: "ups", ID: "aud-1"}},
		{"escaped key", http.MethodDelete, "/v1/audiences/ups%3Aaud-1", 202, audience.Ref{Namespace: "ups", ID: "aud-1"}},
		{"bare id", http.MethodDelete, "/v1/audiences/aud-2", 202, audience.Ref{Namespace: "ups", ID: "aud-2"}},
		{"empty id", http.MethodDelete, "/v1/audiences/ups:", 400, audience.Ref{}},
		{"nested path", http.MethodDelete, "/v1/audiences/ups:a/b", 400, audience.Ref{}},
		{"POST", http.MethodPost, "/v1/audiences/ups:aud-1", 405, audience.Ref{}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			hs := newHarness(t, nil)
			rec := hs.do(t, tc.method, tc.path, authJSON(), "")
			if rec.Code != tc.status {
				t.Fatalf("status %d, want %d: %s", rec.Code, tc.status, rec.Body)
			}
			sent := hs.sender.enqueued()
			if tc.status != 202 {
				if len(sent) != 0 {
					t.Fatal("a refused request enqueued a message")
				}
				return
			}
			msgs := decodeMessages(t, sent)
			if len(msgs) != 1 || msgs[0].Kind != wire.KindRetire || msgs[0].Audience != tc.want {
				t.Fatalf("messages %+v", msgs)
			}
		})
	}
	hs := newHarness(t, nil)
	if rec := hs.do(t, http.MethodDelete, "/v1/audiences/ups:aud-1", nil, ""); rec.Code != http.StatusUnauthorized {
		t.Fatalf("without a token: %d", rec.Code)
	}
	if !slices.ContainsFunc([]string{hs.logs.String()}, func(s string) bool { return len(s) > 0 }) {
		t.Fatal("no request log line")
	}
}
