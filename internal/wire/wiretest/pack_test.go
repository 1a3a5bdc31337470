package wiretest

import (
	"fmt"
	"testing"
	"time"

	"github.com/pinlist/pinlist/internal/audience"
	"github.com/pinlist/pinlist/internal/wire"
)

func TestPackRoundTrip(t *testing.T) {
	a, b := audience.Ref{Namespace: "ups", ID: "a"}, audience.Ref{Namespace: "ups", ID: "b"}
	var changes []audience.Change
	for i := range 200 {
		aud := a
		if i%4 == 0 {
			aud = b
		}
		changes = append(changes, audience.Change{Audience: aud, List: audience.ListEmail, Op: audience.OpAdd,
			Hash: fmt.Sprintf("%064x", i), EventTime: time.Unix(int64(i), 0).UTC(), Received: i%3 == 0})
	}
	for _, maxBytes := range []int{0, 2000} {
		packed, err := Pack(changes, maxBytes)
		if err != nil {
			t.Fatal(err)
		}
		got := map[audience.Ref][]audience.Change{}
		for _, p := range packed {
			if maxBytes > 0 && len(p.Body) > maxBytes {
				t.Fatalf("body of %d bytes over %d", len(p.Body), maxBytes)
			}
			m, err := wire.Decode(p.Body)
			if err != nil || m.Audience != p.Audience || len(m.Records) != p.Records {
				t.Fatalf("Decode: %+v, %v", m, err)
			}
			got[m.Audience] = append(got[m.Audience], m.Changes(0)...)
		}
		for _, aud := range []audience.Ref{a, b} {
			var want []audience.Change
			for _, c := range changes {
				if c.Audience == aud {
					want = append(want, c)
				}
			}
			if len(got[aud]) != len(want) {
				t.Fatalf("%v: %d changes back, want %d", aud, len(got[aud]), len(want))
			}
			for i, c := range got[aud] {
				w := want[i]
				if c.Hash != w.Hash || !c.EventTime.Equal(w.EventTime) || c.Received != w.Received || c.List != w.List || c.Op != w.Op {
					t.Fatalf("%v change %d: %+v, want %+v", aud, i, c, w)
				}
			}
		}
		if maxBytes == 2000 && len(packed) < 4 {
			t.Errorf("%d messages for 2000-byte bodies: the bound was not applied", len(packed))
		}
	}
}
