package wire

import (
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/pinlist/pinlist/internal/audience"
)

// sha is the SHA-256 hex of s.
func sha(s string) string {
	sum := sha256.Sum256([]byte(s))
	return hex.EncodeToString(sum[:])
}

func at(sec int) time.Time { return time.Unix(1_700_000_000+int64(sec), 0).UTC() }

func ups(id string) audience.Ref { return audience.Ref{Namespace: "ups", ID: id} }

// odd is an audience whose ID needs JSON escapes (and HTML-safe ones).
var odd = ups(`q"<&>\`)

// golden pins the bytes of every kind of message: queues hold messages
// across releases, so an encoder may never write other bytes for the same
// input (these were written by the encoders before they moved to package
// wire).
var golden = []struct {
	name   string
	encode func() ([][]byte, error)
	body   string
}{
	{"changes", func() ([][]byte, error) {
		return bodiesOf(packChanges([]audience.Change{
			{Audience: ups("a"), List: audience.ListEmail, Op: audience.OpAdd, Hash: sha("x"), EventTime: time.Unix(0, 1_700_000_000_123_456_789).UTC()},
			{Audience: ups("a"), List: audience.ListMAID, Op: audience.OpRemove, Hash: sha("y"), EventTime: time.Unix(0, -5).UTC(), Received: true},
		}, 0))
	}, `{"v":1,"kind":"changes","audience":{"ns":"ups","id":"a"},"records":[{"l":"EMAIL","o":"ADD","h":"2d711642b726b04401627ca9fbac32f5c8530fb1903cc4db02258717921a4881","t":1700000000123456789},{"l":"MAID","o":"REMOVE","h":"a1fce4363854ff888cff4b8e7875d600c2682390412a8cf79b37d0b11148b0fa","t":-5,"r":true}]}`},
	{"changes of an escaped audience", func() ([][]byte, error) {
		return bodiesOf(packChanges([]audience.Change{
			{Audience: odd, List: audience.ListIDFA, Op: audience.OpAdd, Hash: sha("z"), EventTime: time.Unix(0, 0).UTC()},
		}, 0))
	}, `{"v":1,"kind":"changes","audience":{"ns":"ups","id":"q\"\u003c\u0026\u003e\\"},"records":[{"l":"IDFA","o":"ADD","h":"594e519ae499312b29433b7dd8a97ff068defcba9755b6d5d00e84c524d67b06","t":0}]}`},
	{"audience", func() ([][]byte, error) {
		return one(EncodeAudience(odd, "Spent > 100 <&> \"ü\"", "d\u2028"))
	}, `{"v":1,"kind":"audience","audience":{"ns":"ups","id":"q\"\u003c\u0026\u003e\\"},"name":"Spent \u003e 100 \u003c\u0026\u003e \"ü\"","description":"d\u2028"}`},
	{"retire", func() ([][]byte, error) { return one(EncodeRetire(odd)) },
		`{"v":1,"kind":"retire","audience":{"ns":"ups","id":"q\"\u003c\u0026\u003e\\"}}`},
	{"erasure", func() ([][]byte, error) {
		return EncodeErasure([]audience.Identity{{List: audience.ListEmail, Hash: sha("x")}, {List: audience.ListIDFA, Hash: sha("z")}},
			time.Unix(0, 1_700_000_000_000_000_001), 0)
	}, `{"v":1,"kind":"erasure","audience":{"ns":"","id":""},"records":[{"l":"EMAIL","o":"REMOVE","h":"2d711642b726b04401627ca9fbac32f5c8530fb1903cc4db02258717921a4881","t":1700000000000000001},{"l":"IDFA","o":"REMOVE","h":"594e519ae499312b29433b7dd8a97ff068defcba9755b6d5d00e84c524d67b06","t":1700000000000000001}]}`},
}

func bodiesOf(packed []Packed, err error) ([][]byte, error) {
	var out [][]byte
	for _, p := range packed {
		out = append(out, p.Body)
	}
	return out, err
}

func one(body []byte, err error) ([][]byte, error) { return [][]byte{body}, err }

// TestBytesArePinned holds every encoder to the golden bytes, and Decode
// to reading them back.
func TestBytesArePinned(t *testing.T) {
	for _, g := range golden {
		t.Run(g.name, func(t *testing.T) {
			bodies, err := g.encode()
			if err != nil {
				t.Fatal(err)
			}
			if len(bodies) != 1 || string(bodies[0]) != g.body {
				t.Fatalf("bodies %q\nwant %s", bodies, g.body)
			}
			if _, err := Decode(bodies[0]); err != nil {
				t.Fatalf("Decode: %v", err)
			}
		})
	}
}

// TestPackChangesRoundTrip packs coalesced changes, decodes every message
// and gets the same changes back, in order, one audience per message, every
// body within the bound and what encoding/json writes.
func TestPackChangesRoundTrip(t *testing.T) {
	a, b := ups("a"), audience.Ref{Namespace: "CustomerAudienceUpload", ID: `q"<&>\`}
	var changes []audience.Change
	for i := range 300 {
		aud := a
		if i%3 == 0 {
			aud = b
		}
		changes = append(changes, audience.Change{Audience: aud, List: audience.ListTypes[i%3], Op: []audience.Op{audience.OpAdd, audience.OpRemove}[i%2],
			Hash: sha(fmt.Sprint(i)), EventTime: time.Unix(0, int64(i)*1_000_000_007-5e17).UTC(), Seq: uint64(i + 1), Received: i%5 == 0})
	}
	changes = audience.Coalesce(changes)
	for _, maxBytes := range []int{0, 1000, 300} {
		t.Run(fmt.Sprint(maxBytes), func(t *testing.T) {
			packed, err := packChanges(changes, maxBytes)
			if err != nil {
				t.Fatal(err)
			}
			limit := maxBytes
			if limit == 0 {
				limit = DefaultMaxMessageBytes
			}
			var got []audience.Change
			var seq uint64
			for _, p := range packed {
				if len(p.Body) > limit {
					t.Errorf("body of %d bytes over %d", len(p.Body), limit)
				}
				m, err := Decode(p.Body)
				if err != nil {
					t.Fatalf("Decode: %v", err)
				}
				// The packer writes what encoding/json writes.
				if again, err := json.Marshal(m); err != nil || string(again) != string(p.Body) {
					t.Fatalf("body %s\nencoding/json %s (%v)", p.Body, again, err)
				}
				if m.Audience != p.Audience || m.Kind != KindChanges || len(m.Records) != p.Records {
					t.Errorf("message %+v does not match its Packed (%v, %d records)", m, p.Audience, p.Records)
				}
				got = append(got, m.Changes(seq)...)
				seq += uint64(len(m.Records))
			}
			// One audience's messages keep its records' order; audiences
			// come in order of first appearance (CustomerAudienceUpload first).
			want := make([]audience.Change, len(changes))
			for i, c := range changes {
				c.Seq = uint64(i + 1)
				want[i] = c
			}
			if diff := cmp.Diff(want, got); diff != "" {
				t.Errorf("round trip (-packed +decoded):\n%s", diff)
			}
			if maxBytes == 300 && len(packed) < 10 {
				t.Errorf("%d messages for 300-byte bodies: the bound was not applied", len(packed))
			}
		})
	}
}

func TestPackChangesErrors(t *testing.T) {
	ok := audience.Change{Audience: ups("a"), List: audience.ListEmail, Op: audience.OpAdd, Hash: sha("x"), EventTime: at(0)}
	with := func(f func(*audience.Change)) []audience.Change { c := ok; f(&c); return []audience.Change{c} }
	tests := []struct {
		name     string
		in       []audience.Change
		maxBytes int
	}{
		{"unknown list type", with(func(c *audience.Change) { c.List = "PHONE" }), 0},
		{"unknown op", with(func(c *audience.Change) { c.Op = "REPLACE" }), 0},
		{"upper-case hash", with(func(c *audience.Change) { c.Hash = strings.ToUpper(c.Hash) }), 0},
		{"short hash", with(func(c *audience.Change) { c.Hash = c.Hash[:10] }), 0},
		{"invalid audience", with(func(c *audience.Change) { c.Audience = ups("a b") }), 0},
		{"time outside Unix nanoseconds", with(func(c *audience.Change) { c.EventTime = time.Date(3000, 1, 1, 0, 0, 0, 0, time.UTC) }), 0},
		{"a record over the bound", []audience.Change{ok}, 100},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if _, err := packChanges(tt.in, tt.maxBytes); err == nil {
				t.Error("no error")
			} else if strings.Contains(err.Error(), ok.Hash) {
				t.Errorf("error %q quotes the hash", err)
			}
		})
	}
}

func TestEncodeAudience(t *testing.T) {
	body, err := EncodeAudience(ups("a"), "High value", "Spent > 100")
	if err != nil {
		t.Fatal(err)
	}
	m, err := Decode(body)
	if err != nil {
		t.Fatal(err)
	}
	want := Message{Version: 1, Kind: KindAudience, Audience: ups("a"), Name: "High value", Description: "Spent > 100"}
	if diff := cmp.Diff(want, m); diff != "" {
		t.Errorf("(-want +got):\n%s", diff)
	}
	if m.Changes(0) != nil {
		t.Error("an audience message has changes")
	}
	if _, err := EncodeAudience(audience.Ref{ID: "a"}, "x", ""); err == nil {
		t.Error("no error for an empty namespace")
	}
	if _, err := EncodeAudience(ups("a"), strings.Repeat("x", DefaultMaxMessageBytes), ""); err == nil {
		t.Error("no error for a name over the message bound")
	}
	if _, err := EncodeRetire(ups("a b")); err == nil {
		t.Error("no error for retiring an invalid audience")
	}
}

func TestDecodeRejects(t *testing.T) {
	h := sha("x")
	rec := `{"l":"EMAIL","o":"ADD","h":"` + h + `","t":1}`
	era := `{"v":1,"kind":"erasure","audience":{"ns":"","id":""},"records":[`
	tests := []struct{ name, body string }{
		{"not JSON", `{"v":1,`},
		{"trailing data", `{"v":1,"kind":"changes","audience":{"ns":"ups","id":"a"},"records":[` + rec + `]} x`},
		{"not an object", `[1]`},
		{"wrong version", `{"v":2,"kind":"changes","audience":{"ns":"ups","id":"a"},"records":[` + rec + `]}`},
		{"no version", `{"kind":"changes","audience":{"ns":"ups","id":"a"},"records":[` + rec + `]}`},
		{"unknown kind", `{"v":1,"kind":"delete","audience":{"ns":"ups","id":"a"}}`},
		{"no audience", `{"v":1,"kind":"changes","records":[` + rec + `]}`},
		{"bad audience", `{"v":1,"kind":"changes","audience":{"ns":"u:ps","id":"a"},"records":[` + rec + `]}`},
		{"changes without records", `{"v":1,"kind":"changes","audience":{"ns":"ups","id":"a"}}`},
		{"audience with records", `{"v":1,"kind":"audience","audience":{"ns":"ups","id":"a"},"records":[` + rec + `]}`},
		{"retire with a name", `{"v":1,"kind":"retire","audience":{"ns":"ups","id":"a"},"name":"x"}`},
		{"upper-case hash", `{"v":1,"kind":"changes","audience":{"ns":"ups","id":"a"},"records":[` + strings.Replace(rec, h, strings.ToUpper(h), 1) + `]}`},
		{"short hash", `{"v":1,"kind":"changes","audience":{"ns":"ups","id":"a"},"records":[` + strings.Replace(rec, h, h[1:], 1) + `]}`},
		{"plain email as hash", `{"v":1,"kind":"changes","audience":{"ns":"ups","id":"a"},"records":[` + strings.Replace(rec, h, "a@example.com", 1) + `]}`},
		{"unknown list", `{"v":1,"kind":"changes","audience":{"ns":"ups","id":"a"},"records":[` + strings.Replace(rec, "EMAIL", "PHONE", 1) + `]}`},
		{"unknown op", `{"v":1,"kind":"changes","audience":{"ns":"ups","id":"a"},"records":[` + strings.Replace(rec, "ADD", "add", 1) + `]}`},
		{"time not a number", `{"v":1,"kind":"changes","audience":{"ns":"ups","id":"a"},"records":[` + strings.Replace(rec, `"t":1`, `"t":"1"`, 1) + `]}`},
		{"erasure without records", `{"v":1,"kind":"erasure","audience":{"ns":"","id":""}}`},
		{"erasure with an audience", `{"v":1,"kind":"erasure","audience":{"ns":"ups","id":"a"},"records":[` + strings.Replace(rec, "ADD", "REMOVE", 1) + `]}`},
		{"erasure ADD", era + rec + `]}`},
		{"erasure at a receive time", era + strings.Replace(strings.Replace(rec, "ADD", "REMOVE", 1), `"t":1`, `"t":1,"r":true`, 1) + `]}`},
		{"erasure with a bad hash", era + strings.Replace(strings.Replace(rec, "ADD", "REMOVE", 1), h, "a@example.com", 1) + `]}`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := Decode([]byte(tt.body))
			var ce *CorruptError
			if !errors.As(err, &ce) {
				t.Fatalf("err = %v, want a *CorruptError", err)
			}
			if strings.Contains(err.Error(), "example.com") || strings.Contains(err.Error(), h[:16]) || strings.Contains(strings.ToLower(err.Error()), h[:16]) {
				t.Errorf("error %q quotes the message", err)
			}
		})
	}
}

// TestEncodeErasureRoundTrip: bodies stay within the bound, decode as
// erasure messages and carry every identity once.
func TestEncodeErasureRoundTrip(t *testing.T) {
	var ids []audience.Identity
	for i := range 50 {
		ids = append(ids, audience.Identity{List: audience.ListEmail, Hash: strings.Repeat(string("0123456789abcdef"[i%16]), 63) + "a"})
	}
	at := time.Date(2026, 5, 1, 12, 0, 0, 0, time.UTC)
	bodies, err := EncodeErasure(ids, at, 1500)
	if err != nil || len(bodies) < 2 {
		t.Fatalf("%d bodies, %v", len(bodies), err)
	}
	n := 0
	for _, b := range bodies {
		if len(b) > 1500 {
			t.Fatalf("body of %d bytes", len(b))
		}
		m, err := Decode(b)
		if err != nil || m.Kind != KindErasure {
			t.Fatalf("decode: %+v, %v", m, err)
		}
		for _, r := range m.Records {
			if r.Op != audience.OpRemove || r.Time != at.UnixNano() {
				t.Fatalf("record %+v", r)
			}
		}
		n += len(m.Records)
	}
	if n != len(ids) {
		t.Fatalf("%d records, want %d", n, len(ids))
	}
	// An erasure message with an audience, or an ADD, is refused.
	bad := strings.Replace(string(bodies[0]), `"o":"REMOVE"`, `"o":"ADD"`, 1)
	if _, err := Decode([]byte(bad)); err == nil {
		t.Fatal("an erasure ADD decoded")
	}
	var raw map[string]any
	_ = json.Unmarshal(bodies[0], &raw)
	raw["audience"] = map[string]string{"ns": "ups", "id": "x"}
	withAud, _ := json.Marshal(raw)
	if _, err := Decode(withAud); err == nil {
		t.Fatal("an erasure message with an audience decoded")
	}
	if _, err := Decode([]byte(`{"v":1,"kind":"retire","audience":{"ns":"ups","id":"x"}}`)); err != nil {
		t.Fatalf("retire message: %v", err)
	}
}

func TestEncodeErasureErrors(t *testing.T) {
	good := audience.Identity{List: audience.ListEmail, Hash: sha("x")}
	tests := []struct {
		name     string
		ids      []audience.Identity
		at       time.Time
		maxBytes int
	}{
		{"time outside Unix nanoseconds", []audience.Identity{good}, time.Date(3000, 1, 1, 0, 0, 0, 0, time.UTC), 0},
		{"unknown list type", []audience.Identity{good, {List: "PHONE", Hash: sha("x")}}, at(0), 0},
		{"not a hash", []audience.Identity{{List: audience.ListEmail, Hash: "a@example.com"}}, at(0), 0},
		{"a record over the bound", []audience.Identity{good}, at(0), 100},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if _, err := EncodeErasure(tt.ids, tt.at, tt.maxBytes); err == nil {
				t.Fatal("no error")
			} else if strings.Contains(err.Error(), "example.com") || strings.Contains(err.Error(), good.Hash) {
				t.Errorf("error %q quotes an identity", err)
			}
		})
	}
}

// FuzzDecode feeds any bytes to Decode: no panic, only
// *CorruptError failures, and an accepted message re-packs to one that
// decodes to the same records.
func FuzzDecode(f *testing.F) {
	packed, err := packChanges([]audience.Change{{Audience: ups("a"), List: audience.ListEmail, Op: audience.OpAdd, Hash: sha("x"), EventTime: at(1)}}, 0)
	if err != nil {
		f.Fatal(err)
	}
	f.Add(packed[0].Body)
	aud, err := EncodeAudience(ups("a"), "name", "description")
	if err != nil {
		f.Fatal(err)
	}
	f.Add(aud)
	for _, g := range golden {
		f.Add([]byte(g.body))
	}
	f.Fuzz(func(t *testing.T, body []byte) {
		m, err := Decode(body)
		if err != nil {
			var me *CorruptError
			if !errors.As(err, &me) {
				t.Fatalf("error %v is not a *CorruptError", err)
			}
			return
		}
		if m.Kind != KindChanges {
			return
		}
		again, err := packChanges(m.Changes(0), 0)
		if err != nil {
			t.Fatalf("re-pack a decoded message: %v", err)
		}
		var records []Record
		for _, p := range again {
			m2, err := Decode(p.Body)
			if err != nil {
				t.Fatalf("decode a re-packed message: %v", err)
			}
			records = append(records, m2.Records...)
		}
		if diff := cmp.Diff(m.Records, records); diff != "" {
			t.Fatalf("records changed on re-packing:\n%s", diff)
		}
	})
}
