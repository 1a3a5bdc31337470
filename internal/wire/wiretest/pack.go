// Package wiretest helps tests outside package wire build queue messages.
// Production code packs with wire.Pack; nothing but tests imports this
// package.
package wiretest

import (
	"encoding/json"
	"fmt"

	"github.com/pinlist/pinlist/internal/audience"
	"github.com/pinlist/pinlist/internal/wire"
)

// Pack encodes changes as "changes" messages with encoding/json, one
// audience per message, each body at most maxBytes
// (wire.DefaultMaxMessageBytes when 0): audiences in order of first
// appearance, each audience's records in order. The bodies decode with
// wire.Decode; a change it would reject is an error there, not
// here.
func Pack(changes []audience.Change, maxBytes int) ([]wire.Packed, error) {
	if maxBytes <= 0 {
		maxBytes = wire.DefaultMaxMessageBytes
	}
	var order []audience.Ref
	byAud := map[audience.Ref][]wire.Record{}
	for _, c := range changes {
		if _, ok := byAud[c.Audience]; !ok {
			order = append(order, c.Audience)
		}
		byAud[c.Audience] = append(byAud[c.Audience], wire.Record{
			List: c.List, Op: c.Op, Hash: c.Hash, Time: c.EventTime.UnixNano(), Received: c.Received,
		})
	}
	var out []wire.Packed
	for _, a := range order {
		recs := byAud[a]
		for len(recs) > 0 {
			// A prefix of the records that fits, found by halving.
			n := len(recs)
			body, err := encode(a, recs[:n])
			for err == nil && len(body) > maxBytes && n > 1 {
				n = (n + 1) / 2
				body, err = encode(a, recs[:n])
			}
			if err != nil {
				return nil, err
			}
			if len(body) > maxBytes {
				return nil, fmt.Errorf("pack changes: one record needs %d bytes, over the %d-byte bound", len(body), maxBytes)
			}
			out = append(out, wire.Packed{Audience: a, Body: body, Records: n})
			recs = recs[n:]
		}
	}
	return out, nil
}

func encode(a audience.Ref, recs []wire.Record) ([]byte, error) {
	body, err := json.Marshal(wire.Message{Version: wire.Version, Kind: wire.KindChanges, Audience: a, Records: recs})
	if err != nil {
		return nil, fmt.Errorf("encode changes message: %w", err)
	}
	return body, nil
}
