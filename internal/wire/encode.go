package wire

import (
	"encoding/json"
	"errors"
	"fmt"
	"strconv"
	"time"

	"github.com/pinlist/pinlist/internal/audience"
)

// Packed is one encoded message body and the audience it is for (its FIFO
// message group).
type Packed struct {
	Audience audience.Ref
	Body     []byte
	Records  int
}

// Pack returns the changes of m's last Map (audience.Mapper.At) packed into
// message bodies of kind "changes", one audience per message, each body at
// most maxBytes (DefaultMaxMessageBytes when 0): audiences in Coalesce's
// order, the records of one audience in order, so the messages of one
// audience can go to one FIFO group in order. The bodies are new and the
// caller's.
func Pack(m *audience.Mapper, maxBytes int) ([]Packed, error) {
	if maxBytes <= 0 {
		maxBytes = DefaultMaxMessageBytes
	}
	pk := packer{maxBytes: maxBytes}
	// The changes of one audience are adjacent: they are in audience
	// order.
	n := m.Len()
	for start := 0; start < n; {
		aud := m.At(start).Audience
		end := start + 1
		for end < n && m.At(end).Audience == aud {
			end++
		}
		first := start
		err := pk.audience(aud, end-start, func(b []byte, j int) ([]byte, error) {
			c := m.At(first + j)
			var hx [64]byte
			hexEncode32(&hx, c.Sum)
			return appendRecordJSON(b, c.List, c.Op, hx[:], c.Time, c.Received), nil
		}, func(j int) int { return first + j })
		if err != nil {
			return nil, err
		}
		start = end
	}
	return pk.out, nil
}

// packer builds the "changes" message bodies of one audience after another
// into out, each at most maxBytes.
type packer struct {
	maxBytes int
	out      []Packed
	rec      []byte // one record's JSON
}

// audience packs the n records of audience a, in order: record appends the
// JSON of record j to b, and change says which change record j is (for
// error messages).
func (pk *packer) audience(a audience.Ref, n int, record func(b []byte, j int) ([]byte, error), change func(j int) int) error {
	const suffix = "]}"
	ref, err := json.Marshal(a)
	if err != nil {
		return fmt.Errorf("encode audience: %w", err)
	}
	head := append(append([]byte(`{"v":1,"kind":"changes","audience":`), ref...), `,"records":[`...)
	var body []byte
	count := 0
	flush := func() {
		body = append(body, suffix...)
		pk.out = append(pk.out, Packed{Audience: a, Body: body, Records: count})
		body, count = nil, 0
	}
	for j := range n {
		if pk.rec, err = record(pk.rec[:0], j); err != nil {
			return fmt.Errorf("pack change %d: %w", change(j), err)
		}
		rec := pk.rec
		if count > 0 && len(body)+1+len(rec)+len(suffix) > pk.maxBytes {
			flush()
		}
		if count == 0 {
			if len(head)+len(rec)+len(suffix) > pk.maxBytes {
				return fmt.Errorf("pack change %d: one record needs %d bytes, over the %d-byte message bound", change(j), len(head)+len(rec)+len(suffix), pk.maxBytes)
			}
			// Room for the records left, at this one's size (+1 for commas).
			left := n - j
			body = append(make([]byte, 0, min(pk.maxBytes, len(head)+len(suffix)+(len(rec)+1)*left)), head...)
		} else {
			body = append(body, ',')
		}
		body = append(body, rec...)
		count++
	}
	flush()
	return nil
}

// appendRecordJSON appends a valid Record as JSON, the bytes encoding/json
// would write for it.
func appendRecordJSON[H string | []byte](b []byte, l audience.ListType, op audience.Op, hash H, t int64, received bool) []byte {
	b = append(b, `{"l":"`...)
	b = append(b, l...)
	b = append(b, `","o":"`...)
	b = append(b, op...)
	b = append(b, `","h":"`...)
	b = append(b, hash...)
	b = append(b, `","t":`...)
	b = strconv.AppendInt(b, t, 10)
	if received {
		b = append(b, `,"r":true`...)
	}
	return append(b, '}')
}

// EncodeAudience encodes an "audience" message: the audience's name and
// description, for naming its lists.
func EncodeAudience(a audience.Ref, name, description string) ([]byte, error) {
	if err := a.Validate(); err != nil {
		return nil, fmt.Errorf("audience message: %w", err)
	}
	body, err := json.Marshal(Message{Version: Version, Kind: KindAudience, Audience: a, Name: name, Description: description})
	if err != nil {
		return nil, fmt.Errorf("encode audience message: %w", err)
	}
	if len(body) > DefaultMaxMessageBytes {
		return nil, fmt.Errorf("audience message is %d bytes, over %d", len(body), DefaultMaxMessageBytes)
	}
	return body, nil
}

// EncodeRetire encodes a "retire" message for a.
func EncodeRetire(a audience.Ref) ([]byte, error) {
	if err := a.Validate(); err != nil {
		return nil, fmt.Errorf("retire message: %w", err)
	}
	body, err := json.Marshal(Message{Version: Version, Kind: KindRetire, Audience: a})
	if err != nil {
		return nil, fmt.Errorf("encode retire message: %w", err)
	}
	return body, nil
}

// EncodeErasure encodes erasure messages for ids, erased at at: one record
// per identity (op REMOVE, time at), each body at most maxBytes
// (DefaultMaxMessageBytes when 0). They go to the FIFO group ErasureGroup.
func EncodeErasure(ids []audience.Identity, at time.Time, maxBytes int) ([][]byte, error) {
	if maxBytes <= 0 {
		maxBytes = DefaultMaxMessageBytes
	}
	if !audience.InUnixNano(at) {
		return nil, errors.New("erasure messages: the erasure time is outside the range of Unix nanoseconds")
	}
	head := []byte(`{"v":1,"kind":"erasure","audience":{"ns":"","id":""},"records":[`)
	const suffix = "]}"
	var out [][]byte
	var body []byte
	var rec []byte
	for i, id := range ids {
		if err := validRecord(id.List, audience.OpRemove, id.Hash); err != nil {
			return nil, fmt.Errorf("erasure message: identity %d: %w", i, err)
		}
		rec = appendRecordJSON(rec[:0], id.List, audience.OpRemove, id.Hash, at.UnixNano(), false)
		if body != nil && len(body)+1+len(rec)+len(suffix) > maxBytes {
			out = append(out, append(body, suffix...))
			body = nil
		}
		if body == nil {
			if len(head)+len(rec)+len(suffix) > maxBytes {
				return nil, fmt.Errorf("erasure message: one record needs %d bytes, over the %d-byte bound", len(head)+len(rec)+len(suffix), maxBytes)
			}
			body = append([]byte(nil), head...)
		} else {
			body = append(body, ',')
		}
		body = append(body, rec...)
	}
	if body != nil {
		out = append(out, append(body, suffix...))
	}
	return out, nil
}
