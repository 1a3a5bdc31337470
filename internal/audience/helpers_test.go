package audience

import (
	"crypto/sha256"
	"encoding/hex"
	"strings"
	"testing"
	"time"
)

// recv is the receive time the tests pass to the parser.
var recv = time.Date(2025, 1, 2, 3, 4, 5, 0, time.UTC)

// row is a Change written out for comparison: audience key, list, op, hash,
// event time (RFC 3339, UTC; " (received)" after a receive time) and Seq.
type row struct {
	Aud  string
	List ListType
	Op   Op
	Hash string
	At   string
	Seq  uint64
}

func rows(changes []Change) []row {
	out := make([]row, 0, len(changes))
	for _, c := range changes {
		at := c.EventTime.Format(time.RFC3339Nano)
		if c.Received {
			at += " (received)"
		}
		out = append(out, row{c.Audience.Key(), c.List, c.Op, c.Hash, at, c.Seq})
	}
	return out
}

// rowsNoSeq is rows without Seq, for results that do not depend on arrival.
func rowsNoSeq(changes []Change) []row {
	out := rows(changes)
	for i := range out {
		out[i].Seq = 0
	}
	return out
}

// sha is the SHA-256 hex of s: the tests compute expected hashes of inputs
// they normalised by hand.
func sha(s string) string {
	sum := sha256.Sum256([]byte(s))
	return hex.EncodeToString(sum[:])
}

// parse runs ParseProfiles on body with the given limits and fails the test
// on a request error.
func mustParse(t *testing.T, body string, lim Limits) ([]Change, Report) {
	t.Helper()
	changes, rep, err := ParseProfiles(strings.NewReader(body), lim, recv)
	if err != nil {
		t.Fatalf("ParseProfiles: %v", err)
	}
	return changes, rep
}
