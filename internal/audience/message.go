package audience

import (
	"encoding/json"
	"errors"
	"fmt"
	"strconv"
	"time"
)

// Message is the JSON body of one queue message between ingest and upload.
// Kind "changes" carries records of one audience; kind "audience" carries
// audience metadata (AEP's audience create/update: name, description) so the
// upload step can name the lists before members arrive; kind "erasure"
// (MessageErasure) erases identifiers from every list of their type; kind
// "retire" (MessageRetire) retires an audience AEP deleted.
type Message struct {
	Version     int      `json:"v"`    // MessageVersion
	Kind        string   `json:"kind"` // MessageChanges or MessageAudience
	Audience    Ref      `json:"audience"`
	Name        string   `json:"name,omitempty"`
	Description string   `json:"description,omitempty"`
	Records     []Record `json:"records,omitempty"`
}

// Record is one change in a message: list type, op, hash, event time, and
// whether that time is only the receive time (Change.Received).
type Record struct {
	List     ListType `json:"l"`
	Op       Op       `json:"o"`
	Hash     string   `json:"h"`
	Time     int64    `json:"t"` // event time, Unix nanoseconds
	Received bool     `json:"r,omitempty"`
}

// Message kinds and the envelope version.
const (
	MessageChanges  = "changes"
	MessageAudience = "audience"
	MessageVersion  = 1
)

// DefaultMaxMessageBytes bounds a packed message body when no bound is given:
// the classic SQS message size limit.
const DefaultMaxMessageBytes = 256 << 10

// Packed is one encoded message body and the audience it is for (its FIFO
// message group).
type Packed struct {
	Audience Ref
	Body     []byte
	Records  int
}

// MessageError is a queue message that cannot be used: retrying will not
// help. Reason never quotes the message's content.
type MessageError struct {
	Reason string
}

func (e *MessageError) Error() string { return "corrupt queue message: " + e.Reason }

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
func (pk *packer) audience(a Ref, n int, record func(b []byte, j int) ([]byte, error), change func(j int) int) error {
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
func appendRecordJSON[H string | []byte](b []byte, l ListType, op Op, hash H, t int64, received bool) []byte {
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

func validRecord(l ListType, op Op, hash string) error {
	switch {
	case l != ListEmail && l != ListMAID && l != ListIDFA:
		return errors.New("unknown list type")
	case op != OpAdd && op != OpRemove:
		return errors.New("unknown op")
	case !IsHash(hash):
		return errors.New("hash is not 64 lowercase hex characters")
	}
	return nil
}

// NewAudienceMessage encodes an "audience" message: the audience's name and
// description, for naming its lists.
func NewAudienceMessage(a Ref, name, description string) ([]byte, error) {
	if err := a.Validate(); err != nil {
		return nil, fmt.Errorf("audience message: %w", err)
	}
	body, err := json.Marshal(Message{Version: MessageVersion, Kind: MessageAudience, Audience: a, Name: name, Description: description})
	if err != nil {
		return nil, fmt.Errorf("encode audience message: %w", err)
	}
	if len(body) > DefaultMaxMessageBytes {
		return nil, fmt.Errorf("audience message is %d bytes, over %d", len(body), DefaultMaxMessageBytes)
	}
	return body, nil
}

// DecodeMessage parses and validates a message body: the version, the kind,
// the audience, and for "changes" at least one record, each with a known list
// type and op and a hash of 64 lowercase hex characters. A body that fails is
// a *MessageError: a permanent failure.
func DecodeMessage(body []byte) (Message, error) {
	var m Message
	if err := json.Unmarshal(body, &m); err != nil {
		var se *json.SyntaxError
		if errors.As(err, &se) {
			return Message{}, &MessageError{Reason: fmt.Sprintf("not valid JSON (byte offset %d)", se.Offset)}
		}
		return Message{}, &MessageError{Reason: "not a message object"}
	}
	if m.Version != MessageVersion {
		return Message{}, &MessageError{Reason: fmt.Sprintf("unsupported version %d", m.Version)}
	}
	if m.Kind == MessageErasure {
		if err := decodeErasure(m); err != nil {
			return Message{}, err
		}
		return m, nil
	}
	if err := m.Audience.Validate(); err != nil {
		return Message{}, &MessageError{Reason: err.Error()}
	}
	switch m.Kind {
	case MessageChanges:
		if len(m.Records) == 0 {
			return Message{}, &MessageError{Reason: "a changes message without records"}
		}
		for i, r := range m.Records {
			if err := validRecord(r.List, r.Op, r.Hash); err != nil {
				return Message{}, &MessageError{Reason: fmt.Sprintf("record %d: %v", i, err)}
			}
		}
	case MessageAudience:
		if len(m.Records) != 0 {
			return Message{}, &MessageError{Reason: "an audience message with records"}
		}
	case MessageRetire:
		if len(m.Records) != 0 || m.Name != "" || m.Description != "" {
			return Message{}, &MessageError{Reason: "a retire message with records or a name"}
		}
	default:
		return Message{}, &MessageError{Reason: "unknown kind"}
	}
	return m, nil
}

// Changes turns the message's records into changes. Record i gets Seq
// seqBase+i+1, so a caller that adds len(m.Records) to seqBase after each
// message gives the changes of a batch their arrival order.
func (m Message) Changes(seqBase uint64) []Change {
	if len(m.Records) == 0 {
		return nil
	}
	out := make([]Change, len(m.Records))
	for i, r := range m.Records {
		out[i] = Change{
			Audience:  m.Audience,
			List:      r.List,
			Op:        r.Op,
			Hash:      r.Hash,
			EventTime: time.Unix(0, r.Time).UTC(),
			Seq:       seqBase + uint64(i) + 1,
			Received:  r.Received,
		}
	}
	return out
}
