package loadgen

import (
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
)

// Hashes worked out outside Go (Python's hashlib) for the normalised forms.
const (
	hashAda  = "e814ff3dc480a94c7ce9334062ec4733c75a002f4bcec0197f62ffea64059e2f" // ada.lovelace@example.com
	hashIDFA = "2afcf919a0c1953d177fcb412ea65138b44b4a42dda7d322225811767c0c530c" // 6D92078A-8246-4BA4-AE5B-76104861E7DC
	hashGAID = "d4181bb455a74b3bc8b37c75ac9b2c702eb6b9930bd040b861403b31ca85634d" // 38400000-8cf0-11bd-b23e-10b96e40000d
)

var recv = time.Date(2026, 11, 1, 12, 0, 0, 0, time.UTC)

func TestMapIdentity(t *testing.T) {
	tests := []struct {
		name     string
		ns, id   string
		list     string
		hash     string
		excluded string
		failed   string
	}{
		{name: "email normalised", ns: "email", id: " \tAda.Lovelace@Example.COM\n", list: ListEmail, hash: hashAda},
		{name: "namespace in any ASCII case", ns: "EMAIL", id: "ada.lovelace@example.com", list: ListEmail, hash: hashAda},
		{name: "pre-hashed email lowercased", ns: "email_lc_sha256", id: strings.ToUpper(hashAda), list: ListEmail, hash: hashAda},
		{name: "gaid lowercased", ns: "gaid", id: "38400000-8CF0-11BD-B23E-10B96E40000D", list: ListMAID, hash: hashGAID},
		{name: "idfa uppercased", ns: "IDFA", id: "6d92078a-8246-4ba4-ae5b-76104861e7dc", list: ListIDFA, hash: hashIDFA},
		{name: "opt-out", ns: "gaid", id: "00000000-0000-0000-0000-000000000000", excluded: ExcludedOptedOut},
		{name: "other namespace", ns: "phone", id: "+15555550100", excluded: ExcludedUnsupportedNamespace},
		{name: "long s is not an s", ns: "email_lc_\u017fha256", id: hashAda, excluded: ExcludedUnsupportedNamespace},
		{name: "email without @", ns: "email", id: "ada.example.com", failed: FailedInvalidEmail},
		{name: "email with a space inside", ns: "email", id: "ada lovelace@example.com", failed: FailedInvalidEmail},
		{name: "email with two @", ns: "email", id: "a@b@example.com", failed: FailedInvalidEmail},
		{name: "email without a dot in the domain", ns: "email", id: "ada@localhost", failed: FailedInvalidEmail},
		{name: "email with an empty label", ns: "email", id: "ada@example..com", failed: FailedInvalidEmail},
		{name: "gaid without dashes", ns: "gaid", id: "384000008cf011bdb23e10b96e40000d", failed: FailedInvalidMAID},
		{name: "idfa in braces", ns: "idfa", id: "{6d92078a-8246-4ba4-ae5b-76104861e7dc}", failed: FailedInvalidIDFA},
		{name: "short email hash", ns: "email_lc_sha256", id: hashAda[:63], failed: FailedInvalidEmailHash},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			m := mapIdentity(tt.ns, tt.id)
			got := fmt.Sprintf("list=%q excluded=%q failed=%q", m.list, m.excluded, m.failed)
			want := fmt.Sprintf("list=%q excluded=%q failed=%q", tt.list, tt.excluded, tt.failed)
			if got != want {
				t.Fatalf("got %s, want %s", got, want)
			}
			if tt.hash != "" {
				if h := fmt.Sprintf("%x", m.hash); h != tt.hash {
					t.Fatalf("hash %s, want %s", h, tt.hash)
				}
			}
		})
	}
}

// profileJSON is one profile with an email and one membership of audience
// ups:a.
func profileJSON(email, status, at string) string {
	return fmt.Sprintf(`{"identityMap":{"email":[{"id":%q}]},"segmentMembership":{"ups":{"a":{"status":%q,"lastQualificationTime":%q}}}}`, email, status, at)
}

func TestOracleLatestEventTimeWins(t *testing.T) {
	key := ListKey{Audience: "ups:a", Type: ListEmail}
	tests := []struct {
		name   string
		bodies []string
		want   []string // members of ups:a EMAIL
	}{
		{
			name:   "a join",
			bodies: []string{"[" + profileJSON("ada.lovelace@example.com", "realized", "2026-01-01T00:00:00Z") + "]"},
			want:   []string{hashAda},
		},
		{
			name: "a later exit in a later body removes",
			bodies: []string{
				"[" + profileJSON("ada.lovelace@example.com", "realized", "2026-01-01T00:00:00Z") + "]",
				"[" + profileJSON("ADA.LOVELACE@example.com", "exited", "2026-01-01T00:00:01Z") + "]",
			},
		},
		{
			name: "an older exit arriving later loses",
			bodies: []string{
				"[" + profileJSON("ada.lovelace@example.com", "existing", "2026-01-01T00:00:02.000+0000") + "]",
				"[" + profileJSON("ada.lovelace@example.com", "exited", "2026-01-01T00:00:01Z") + "]",
			},
			want: []string{hashAda},
		},
		{
			name: "out of order within a body",
			bodies: []string{"[" + profileJSON("ada.lovelace@example.com", "exited", "2026-01-01T00:00:05+00:00") + "," +
				profileJSON("ada.lovelace@example.com", "realized", "2026-01-01T00:00:04Z") + "]"},
		},
		{
			name: "a tie within a body goes to the exit",
			bodies: []string{"[" + profileJSON("ada.lovelace@example.com", "realized", "2026-01-01T00:00:05Z") + "," +
				profileJSON("ada.lovelace@example.com", "exited", "2026-01-01T00:00:05Z") + "]"},
		},
		{
			name: "a tie goes to the exit sent first",
			bodies: []string{
				"[" + profileJSON("ada.lovelace@example.com", "exited", "2026-01-01T00:00:05Z") + "]",
				"[" + profileJSON("ada.lovelace@example.com", "realized", "2026-01-01T00:00:05Z") + "]",
			},
		},
		{
			name: "a tie goes to the exit sent last",
			bodies: []string{
				"[" + profileJSON("ada.lovelace@example.com", "realized", "2026-01-01T00:00:05Z") + "]",
				"[" + profileJSON("ada.lovelace@example.com", "exited", "2026-01-01T00:00:05Z") + "]",
			},
		},
		{
			name: "equal instants in different offsets tie, and the exit wins",
			bodies: []string{
				"[" + profileJSON("ada.lovelace@example.com", "exited", "2026-01-01T02:00:05+02:00") + "]",
				"[" + profileJSON("ada.lovelace@example.com", "realized", "2026-01-01T00:00:05Z") + "]",
			},
		},
		{
			name: "a replay of an older body after a newer one changes nothing",
			bodies: []string{
				"[" + profileJSON("ada.lovelace@example.com", "realized", "2026-01-01T00:00:01Z") + "]",
				"[" + profileJSON("ada.lovelace@example.com", "exited", "2026-01-01T00:00:02Z") + "]",
				"[" + profileJSON("ada.lovelace@example.com", "realized", "2026-01-01T00:00:01Z") + "]",
			},
		},
		{
			name: "a membership without a time never outranks one with a time",
			bodies: []string{
				"[" + profileJSON("ada.lovelace@example.com", "realized", "2026-01-01T00:00:01Z") + "]",
				`[{"identityMap":{"email":[{"id":"ada.lovelace@example.com"}]},"segmentMembership":{"ups":{"a":{"status":"exited"}}}}]`,
			},
			want: []string{hashAda},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			o := NewOracle()
			for _, b := range tt.bodies {
				if _, err := o.AddBody([]byte(b), recv); err != nil {
					t.Fatal(err)
				}
			}
			if diff := cmp.Diff(tt.want, o.Expected()[key]); diff != "" {
				t.Fatalf("members (-want +got):\n%s", diff)
			}
		})
	}
}

// TestOracleFlipsAndResends: the oracle tells the changes that flip a
// state from AEP's unchanged re-sends, retries, replays and no-ops, and a
// phase's flips are the net change since it began.
func TestOracleFlipsAndResends(t *testing.T) {
	join := "[" + profileJSON("ada.lovelace@example.com", "realized", "2026-01-01T00:00:01Z") + "]"
	resend := "[" + profileJSON("Ada.Lovelace@example.com", "existing", "2026-01-01T00:00:01Z") + "]"
	later := "[" + profileJSON("ada.lovelace@example.com", "existing", "2026-01-01T00:00:03Z") + "]"
	exit := "[" + profileJSON("ada.lovelace@example.com", "exited", "2026-01-01T00:00:02Z") + "]"
	rejoin := "[" + profileJSON("ada.lovelace@example.com", "realized", "2026-01-01T00:00:04Z") + "]"
	key := ListKey{Audience: "ups:a", Type: ListEmail}
	tests := []struct {
		name   string
		before []string // bodies before the phase
		bodies []string
		want   BodyStats // summed over bodies: Flips, Unchanged, Stale
		flips  map[ListKey]OpCounts
	}{
		{name: "a join flips", bodies: []string{join}, want: BodyStats{Flips: 1}, flips: map[ListKey]OpCounts{key: {Add: 1}}},
		{name: "a retry of the same body is re-sent", bodies: []string{join, join, join}, want: BodyStats{Flips: 1, Resent: 2},
			flips: map[ListKey]OpCounts{key: {Add: 1}}},
		{name: "an unchanged membership with its old time is re-sent", before: []string{join}, bodies: []string{resend},
			want: BodyStats{Resent: 1}, flips: map[ListKey]OpCounts{}},
		{name: "an unchanged membership with a later time is a no-op", before: []string{join}, bodies: []string{later},
			want: BodyStats{NoOps: 1}, flips: map[ListKey]OpCounts{}},
		{name: "an exit replayed after a later re-send is stale", before: []string{join}, bodies: []string{later, exit},
			want: BodyStats{NoOps: 1, Stale: 1}, flips: map[ListKey]OpCounts{}},
		{name: "an exit flips", before: []string{join}, bodies: []string{exit}, want: BodyStats{Flips: 1},
			flips: map[ListKey]OpCounts{key: {Remove: 1}}},
		{name: "out and back in, the exit arriving last", before: []string{join}, bodies: []string{rejoin, exit},
			want: BodyStats{NoOps: 1, Stale: 1}, flips: map[ListKey]OpCounts{}},
		{name: "out and back in, in order, is no net flip", before: []string{join}, bodies: []string{exit, rejoin},
			want: BodyStats{Flips: 2}, flips: map[ListKey]OpCounts{}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			o := NewOracle()
			for _, b := range tt.before {
				if _, err := o.AddBody([]byte(b), recv); err != nil {
					t.Fatal(err)
				}
			}
			o.BeginPhase()
			var got BodyStats
			for _, b := range tt.bodies {
				st, err := o.AddBody([]byte(b), recv)
				if err != nil {
					t.Fatal(err)
				}
				if st.Flips+st.Resent+st.Stale+st.NoOps != st.Changes {
					t.Fatalf("%+v: the counts do not add up to the changes", st)
				}
				got.Flips += st.Flips
				got.Resent += st.Resent
				got.Stale += st.Stale
				got.NoOps += st.NoOps
			}
			if diff := cmp.Diff(tt.want, got); diff != "" {
				t.Errorf("counts (-want +got):\n%s", diff)
			}
			if diff := cmp.Diff(tt.flips, o.PhaseFlips()); diff != "" {
				t.Errorf("phase flips (-want +got):\n%s", diff)
			}
		})
	}
}

func TestOracleBodyStats(t *testing.T) {
	body := `{"profiles":[
	  {"identityMap":{"Email":[{"id":"Ada.Lovelace@example.com"},{"id":"no-at-sign"},{"id":7},{}],
	                  "GAID":[{"id":"38400000-8cf0-11bd-b23e-10b96e40000d"},{"id":"00000000-0000-0000-0000-000000000000"}],
	                  "phone":[{"id":"+1555"},"junk"],
	                  "idfa":null},
	   "segmentMembership":{"ups":{"a":{"status":"realized","lastQualificationTime":"2026-01-01T00:00:00Z"},
	                               "b":{"status":"exited"},
	                               "c":{"status":"pending"},
	                               "d":{"status":"realized","lastQualificationTime":"yesterday"},
	                               "e":"realized"},
	                        "bad ns":{"x":{"status":"realized"}}}},
	  {"identityMap":{"email":[{"id":"ada.lovelace@example.com"}]},"segmentMembership":null}
	]}`
	o := NewOracle()
	st, err := o.AddBody([]byte(body), recv)
	if err != nil {
		t.Fatal(err)
	}
	want := BodyStats{
		Profiles:  2,
		Activated: 3,
		Excluded:  map[string]int{ExcludedUnsupportedNamespace: 2, ExcludedOptedOut: 1},
		Failed: map[string]int{FailedInvalidEmail: 1, FailedInvalidIdentity: 2, FailedInvalidStatus: 1,
			FailedInvalidTimestamp: 1, FailedInvalidMembership: 1, FailedInvalidAudience: 1},
		// ada and the GAID, each in ups:a (added) and ups:b (removed).
		Changes: 4,
		// The joins flip out to in; the exits leave "never seen" out.
		Flips: 2,
		NoOps: 2,
	}
	if diff := cmp.Diff(want, st); diff != "" {
		t.Fatalf("stats (-want +got):\n%s", diff)
	}
	if got := st.Identities(); got != 3+3+3 {
		t.Fatalf("Identities() = %d, want 9 (3 activated, 3 excluded, 3 failed)", got)
	}
	wantCounts := map[ListKey]OpCounts{
		{"ups:a", ListEmail}: {Add: 1}, {"ups:a", ListMAID}: {Add: 1},
		{"ups:b", ListEmail}: {Remove: 1}, {"ups:b", ListMAID}: {Remove: 1},
	}
	if diff := cmp.Diff(wantCounts, o.Counts()); diff != "" {
		t.Fatalf("counts (-want +got):\n%s", diff)
	}
	if got := o.LowerBound(1); got != 4 {
		t.Fatalf("LowerBound(1) = %d, want 4", got)
	}
}

// TestOracleReadsBytesAsSent checks the two places where encoding/json
// alone would read a body differently from the rules: invalid UTF-8 in an
// identifier (encoding/json substitutes U+FFFD) and more than nine
// fraction digits (time.Parse takes any number).
func TestOracleReadsBytesAsSent(t *testing.T) {
	body := "[" + strings.Replace(profileJSON("ada@example.com", "realized", "2026-01-01T00:00:00Z"), "ada@", "ada\xff@", 1) + "," +
		profileJSON("grace@example.com", "realized", "2026-01-01T00:00:00.0123456789Z") + "]"
	st, err := NewOracle().AddBody([]byte(body), recv)
	if err != nil {
		t.Fatal(err)
	}
	want := map[string]int{FailedInvalidEmail: 1, FailedInvalidTimestamp: 1}
	if diff := cmp.Diff(want, st.Failed); diff != "" || st.Changes != 0 {
		t.Fatalf("failed (-want +got):\n%s\nchanges %d, want 0", diff, st.Changes)
	}
}

func TestOracleRefusesWhatTheServerRefuses(t *testing.T) {
	for name, body := range map[string]string{
		"empty":                   ``,
		"a string":                `"profiles"`,
		"truncated":               `[{"identityMap":`,
		"profiles not an array":   `{"profiles":{}}`,
		"a profile not an object": `[1]`,
		"namespace not an array":  `{"identityMap":{"email":{"id":"a@b.co"}}}`,
	} {
		t.Run(name, func(t *testing.T) {
			if _, err := NewOracle().AddBody([]byte(body), recv); err == nil {
				t.Fatal("accepted")
			}
		})
	}
}

func TestDiff(t *testing.T) {
	a, b, c := strings.Repeat("a", 64), strings.Repeat("b", 64), strings.Repeat("c", 64)
	k1, k2 := ListKey{"ups:x", ListEmail}, ListKey{"ups:y", ListIDFA}
	if d := Diff(map[ListKey][]string{k1: {a, b}}, map[ListKey][]string{k1: {a, b}, k2: {}}); len(d) != 0 {
		t.Fatalf("equal states differ: %v", d)
	}
	d := Diff(map[ListKey][]string{k1: {a, b}}, map[ListKey][]string{k1: {a, c}, k2: {b}})
	want := []string{
		"ups:x EMAIL: want 2 members, have 2; 1 missing (e.g. bbbbbbbbbbbb…), 1 unexpected (e.g. cccccccccccc…)",
		"ups:y IDFA: want 0 members, have 1; 0 missing , 1 unexpected (e.g. bbbbbbbbbbbb…)",
	}
	if diff := cmp.Diff(want, d); diff != "" {
		t.Fatalf("Diff (-want +got):\n%s", diff)
	}
}
