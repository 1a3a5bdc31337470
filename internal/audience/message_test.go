package audience

import (
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
)

// TestPackMessagesRoundTrip packs coalesced changes, decodes every message
// and gets the same changes back, in order, one audience per message, every
// body within the bound and valid JSON.
func TestPackMessagesRoundTrip(t *testing.T) {
	a, b := Ref{"ups", "a"}, Ref{"CustomerAudienceUpload", `q"<&>\`}
	var changes []Change
	for i := range 300 {
		aud := a
		if i%3 == 0 {
			aud = b
		}
		changes = append(changes, Change{Audience: aud, List: ListTypes[i%3], Op: []Op{OpAdd, OpRemove}[i%2], Hash: sha(fmt.Sprint(i)),
			EventTime: time.Unix(0, int64(i)*1_000_000_007-5e17).UTC(), Seq: uint64(i + 1), Received: i%5 == 0})
	}
	changes = Coalesce(changes)
	for _, maxBytes := range []int{0, 1000, 300} {
		t.Run(fmt.Sprint(maxBytes), func(t *testing.T) {
			packed, err := PackMessages(changes, maxBytes)
			if err != nil {
				t.Fatal(err)
			}
			limit := maxBytes
			if limit == 0 {
				limit = DefaultMaxMessageBytes
			}
			var got []Change
			var seq uint64
			for _, p := range packed {
				if len(p.Body) > limit {
					t.Errorf("body of %d bytes over %d", len(p.Body), limit)
				}
				var generic map[string]any
				if err := json.Unmarshal(p.Body, &generic); err != nil {
					t.Fatalf("body is not JSON: %v", err)
				}
				m, err := DecodeMessage(p.Body)
				if err != nil {
					t.Fatalf("DecodeMessage: %v", err)
				}
				// The packer writes what encoding/json writes.
				if again, err := json.Marshal(m); err != nil || string(again) != string(p.Body) {
					t.Fatalf("body %s\nencoding/json %s (%v)", p.Body, again, err)
				}
				if m.Audience != p.Audience || m.Kind != MessageChanges || len(m.Records) != p.Records {
					t.Errorf("message %+v does not match its Packed (%v, %d records)", m, p.Audience, p.Records)
				}
				got = append(got, m.Changes(seq)...)
				seq += uint64(len(m.Records))
			}
			// One audience's messages keep its records' order; audiences
			// come in order of first appearance (CustomerAudienceUpload first).
			if diff := cmp.Diff(rowsNoSeq(changes), rowsNoSeq(got)); diff != "" {
				t.Errorf("round trip (-packed +decoded):\n%s", diff)
			}
			for i, c := range got {
				if c.Seq != uint64(i+1) {
					t.Fatalf("change %d has Seq %d", i, c.Seq)
				}
			}
			if maxBytes == 300 && len(packed) < 10 {
				t.Errorf("%d messages for 300-byte bodies: the bound was not applied", len(packed))
			}
		})
	}
}

func TestPackMessagesErrors(t *testing.T) {
	ok := Change{Audience: Ref{"ups", "a"}, List: ListEmail, Op: OpAdd, Hash: sha("x"), EventTime: at(0)}
	with := func(f func(*Change)) []Change { c := ok; f(&c); return []Change{c} }
	tests := []struct {
		name     string
		in       []Change
		maxBytes int
	}{
		{"unknown list type", with(func(c *Change) { c.List = "PHONE" }), 0},
		{"unknown op", with(func(c *Change) { c.Op = "REPLACE" }), 0},
		{"upper-case hash", with(func(c *Change) { c.Hash = strings.ToUpper(c.Hash) }), 0},
		{"short hash", with(func(c *Change) { c.Hash = c.Hash[:10] }), 0},
		{"invalid audience", with(func(c *Change) { c.Audience = Ref{"ups", "a b"} }), 0},
		{"time outside Unix nanoseconds", with(func(c *Change) { c.EventTime = time.Date(3000, 1, 1, 0, 0, 0, 0, time.UTC) }), 0},
		{"a record over the bound", []Change{ok}, 100},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if _, err := PackMessages(tt.in, tt.maxBytes); err == nil {
				t.Error("no error")
			} else if strings.Contains(err.Error(), ok.Hash) {
				t.Errorf("error %q quotes the hash", err)
			}
		})
	}
}

func TestAudienceMessage(t *testing.T) {
	body, err := NewAudienceMessage(Ref{"ups", "a"}, "High value", "Spent > 100")
	if err != nil {
		t.Fatal(err)
	}
	m, err := DecodeMessage(body)
	if err != nil {
		t.Fatal(err)
	}
	want := Message{Version: 1, Kind: MessageAudience, Audience: Ref{"ups", "a"}, Name: "High value", Description: "Spent > 100"}
	if diff := cmp.Diff(want, m); diff != "" {
		t.Errorf("(-want +got):\n%s", diff)
	}
	if m.Changes(0) != nil {
		t.Error("an audience message has changes")
	}
	if _, err := NewAudienceMessage(Ref{"", "a"}, "x", ""); err == nil {
		t.Error("no error for an empty namespace")
	}
}

func TestDecodeMessageRejects(t *testing.T) {
	h := sha("x")
	rec := `{"l":"EMAIL","o":"ADD","h":"` + h + `","t":1}`
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
		{"upper-case hash", `{"v":1,"kind":"changes","audience":{"ns":"ups","id":"a"},"records":[` + strings.Replace(rec, h, strings.ToUpper(h), 1) + `]}`},
		{"short hash", `{"v":1,"kind":"changes","audience":{"ns":"ups","id":"a"},"records":[` + strings.Replace(rec, h, h[1:], 1) + `]}`},
		{"plain email as hash", `{"v":1,"kind":"changes","audience":{"ns":"ups","id":"a"},"records":[` + strings.Replace(rec, h, "a@example.com", 1) + `]}`},
		{"unknown list", `{"v":1,"kind":"changes","audience":{"ns":"ups","id":"a"},"records":[` + strings.Replace(rec, "EMAIL", "PHONE", 1) + `]}`},
		{"unknown op", `{"v":1,"kind":"changes","audience":{"ns":"ups","id":"a"},"records":[` + strings.Replace(rec, "ADD", "add", 1) + `]}`},
		{"time not a number", `{"v":1,"kind":"changes","audience":{"ns":"ups","id":"a"},"records":[` + strings.Replace(rec, `"t":1`, `"t":"1"`, 1) + `]}`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := DecodeMessage([]byte(tt.body))
			var me *MessageError
			if !errors.As(err, &me) {
				t.Fatalf("err = %v, want a *MessageError", err)
			}
			if strings.Contains(err.Error(), "example.com") || strings.Contains(err.Error(), h[:16]) || strings.Contains(strings.ToLower(err.Error()), h[:16]) {
				t.Errorf("error %q quotes the message", err)
			}
		})
	}
}
