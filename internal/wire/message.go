// Package wire is the format of the queue messages between ingest and
// upload: their JSON bodies, how they are encoded (packing a Mapper's
// coalesced changes per audience, audience metadata, erasures,
// retirements) and how a body is decoded and validated. Queues hold
// messages across releases: the bytes of each kind must not change. It
// does no I/O.
package wire

import (
	"encoding/json"
	"errors"
	"fmt"
	"time"

	"github.com/pinlist/pinlist/internal/audience"
)

// Message is the JSON body of one queue message between ingest and upload.
// Kind "changes" (KindChanges) carries records of one audience; kind
// "audience" (KindAudience) carries audience metadata (AEP's audience
// create/update: name, description) so the upload step can name the lists
// before members arrive; kind "erasure" (KindErasure) erases identifiers
// from every list of their type; kind "retire" (KindRetire) retires an
// audience AEP deleted.
type Message struct {
	Version     int          `json:"v"`    // Version
	Kind        string       `json:"kind"` // KindChanges, KindAudience, KindErasure or KindRetire
	Audience    audience.Ref `json:"audience"`
	Name        string       `json:"name,omitempty"`
	Description string       `json:"description,omitempty"`
	Records     []Record     `json:"records,omitempty"`
}

// Record is one change in a message: list type, op, hash, event time, and
// whether that time is only the receive time (audience.Change.Received).
type Record struct {
	List     audience.ListType `json:"l"`
	Op       audience.Op       `json:"o"`
	Hash     string            `json:"h"`
	Time     int64             `json:"t"` // event time, Unix nanoseconds
	Received bool              `json:"r,omitempty"`
}

// Message kinds and the envelope version.
const (
	KindChanges  = "changes"
	KindAudience = "audience"
	Version      = 1
)

// KindErasure is the kind of a queue message that erases identifiers from
// every list of their type: records with op REMOVE and the erasure's time,
// no audience.
const KindErasure = "erasure"

// KindRetire is the kind of a queue message that retires an audience (AEP
// deleted it): its members leave its lists, the ledger drops its rows and
// its lists are never written to again. It has no records.
const KindRetire = "retire"

// ErasureGroup is the FIFO message group of erasure messages (no audience
// key has it: audience keys hold a ':').
const ErasureGroup = "erasure"

// DefaultMaxMessageBytes bounds a packed message body when no bound is given
// (ingest's default too): the classic SQS limit; SQS now takes 1 MiB, but
// smaller messages spread the work.
const DefaultMaxMessageBytes = 256 << 10

// CorruptError is a queue message that cannot be used: retrying will not
// help. Reason never quotes the message's content.
type CorruptError struct {
	Reason string
}

func (e *CorruptError) Error() string { return "corrupt queue message: " + e.Reason }

// Decode parses and validates a message body: the version, the kind, the
// audience, and for "changes" and "erasure" at least one record, each with
// a known list type and op and a hash of 64 lowercase hex characters. A
// body that fails is a *CorruptError: a permanent failure.
func Decode(body []byte) (Message, error) {
	var m Message
	if err := json.Unmarshal(body, &m); err != nil {
		var se *json.SyntaxError
		if errors.As(err, &se) {
			return Message{}, &CorruptError{Reason: fmt.Sprintf("not valid JSON (byte offset %d)", se.Offset)}
		}
		return Message{}, &CorruptError{Reason: "not a message object"}
	}
	if m.Version != Version {
		return Message{}, &CorruptError{Reason: fmt.Sprintf("unsupported version %d", m.Version)}
	}
	if m.Kind == KindErasure {
		if err := decodeErasure(m); err != nil {
			return Message{}, err
		}
		return m, nil
	}
	if err := m.Audience.Validate(); err != nil {
		return Message{}, &CorruptError{Reason: err.Error()}
	}
	switch m.Kind {
	case KindChanges:
		if len(m.Records) == 0 {
			return Message{}, &CorruptError{Reason: "a changes message without records"}
		}
		for i, r := range m.Records {
			if err := validRecord(r.List, r.Op, r.Hash); err != nil {
				return Message{}, &CorruptError{Reason: fmt.Sprintf("record %d: %v", i, err)}
			}
		}
	case KindAudience:
		if len(m.Records) != 0 {
			return Message{}, &CorruptError{Reason: "an audience message with records"}
		}
	case KindRetire:
		if len(m.Records) != 0 || m.Name != "" || m.Description != "" {
			return Message{}, &CorruptError{Reason: "a retire message with records or a name"}
		}
	default:
		return Message{}, &CorruptError{Reason: "unknown kind"}
	}
	return m, nil
}

// decodeErasure checks an erasure message: no audience, records all
// REMOVE.
func decodeErasure(m Message) error {
	if m.Audience != (audience.Ref{}) {
		return &CorruptError{Reason: "an erasure message with an audience"}
	}
	if len(m.Records) == 0 {
		return &CorruptError{Reason: "an erasure message without records"}
	}
	for i, r := range m.Records {
		if err := validRecord(r.List, r.Op, r.Hash); err != nil {
			return &CorruptError{Reason: fmt.Sprintf("record %d: %v", i, err)}
		}
		if r.Op != audience.OpRemove || r.Received {
			return &CorruptError{Reason: fmt.Sprintf("record %d: an erasure record must be a REMOVE with an event time", i)}
		}
	}
	return nil
}

func validRecord(l audience.ListType, op audience.Op, hash string) error {
	switch {
	case l != audience.ListEmail && l != audience.ListMAID && l != audience.ListIDFA:
		return errors.New("unknown list type")
	case op != audience.OpAdd && op != audience.OpRemove:
		return errors.New("unknown op")
	case !audience.IsHash(hash):
		return errors.New("hash is not 64 lowercase hex characters")
	}
	return nil
}

// Changes turns the message's records into changes. Record i gets Seq
// seqBase+i+1, so a caller that adds len(m.Records) to seqBase after each
// message gives the changes of a batch their arrival order.
func (m Message) Changes(seqBase uint64) []audience.Change {
	if len(m.Records) == 0 {
		return nil
	}
	out := make([]audience.Change, len(m.Records))
	for i, r := range m.Records {
		out[i] = audience.Change{
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
