package audience

import (
	"math"
	"testing"
)

// parseTimestampReference is parseTimestamp field by field, as it was
// first written: the reference FuzzParseTimestamp holds it to. It parses
// lastQualificationTime in every form AEP sends:
// YYYY-MM-DDThh:mm:ss, then an optional fraction of 1–9 digits, then Z,
// ±hhmm or ±hh:mm ("2019-04-15T02:41:50.000+0000", "2019-11-20T13:15:49Z",
// "2021-06-30T18:40:07.591378Z", "2018-04-26T15:52:25+00:00"). Field ranges
// are checked (no 24:00, no leap second, no 30 February) and the instant must
// fit in Unix nanoseconds (years 1678–2262). It returns Unix nanoseconds.
func parseTimestampReference(b []byte) (int64, bool) {
	if len(b) < len("2006-01-02T15:04:05Z") || b[4] != '-' || b[7] != '-' || b[10] != 'T' || b[13] != ':' || b[16] != ':' {
		return 0, false
	}
	cent, ok1 := num2(b[0], b[1])
	yy, ok2 := num2(b[2], b[3])
	month, ok3 := num2(b[5], b[6])
	day, ok4 := num2(b[8], b[9])
	hour, ok5 := num2(b[11], b[12])
	minute, ok6 := num2(b[14], b[15])
	sec, ok7 := num2(b[17], b[18])
	year := cent*100 + yy
	if !(ok1 && ok2 && ok3 && ok4 && ok5 && ok6 && ok7) ||
		month < 1 || month > 12 || day < 1 || day > daysIn(month, year) ||
		hour > 23 || minute > 59 || sec > 59 {
		return 0, false
	}
	rest := b[19:]
	nsec := 0
	if len(rest) > 0 && rest[0] == '.' {
		n := 1
		for n < len(rest) && '0' <= rest[n] && rest[n] <= '9' {
			n++
		}
		frac := n - 1
		if frac < 1 || frac > 9 {
			return 0, false
		}
		nsec, _ = digits(rest[1:n])
		for ; frac < 9; frac++ {
			nsec *= 10
		}
		rest = rest[n:]
	}
	offset := 0
	switch {
	case len(rest) == 1 && rest[0] == 'Z':
	case (len(rest) == 5 || len(rest) == 6 && rest[3] == ':') && (rest[0] == '+' || rest[0] == '-'):
		oh, okh := num2(rest[1], rest[2])
		om, okm := num2(rest[len(rest)-2], rest[len(rest)-1])
		if !okh || !okm || oh > 23 || om > 59 {
			return 0, false
		}
		offset = (oh*60 + om) * 60
		if rest[0] == '-' {
			offset = -offset
		}
	default:
		return 0, false
	}
	secs := daysFromCivil(year, month, day)*86400 + int64(hour*3600+minute*60+sec-offset)
	// Stay inside int64 nanoseconds: the bounds are whole seconds inside
	// math.MinInt64/MaxInt64 nanoseconds.
	if secs < math.MinInt64/1_000_000_000 || secs > math.MaxInt64/1_000_000_000-1 {
		return 0, false
	}
	return secs*1_000_000_000 + int64(nsec), true
}

// FuzzParseTimestamp holds parseTimestamp (word-wise, zone read from the
// end) to parseTimestampReference (field by field, left to right).
func FuzzParseTimestamp(f *testing.F) {
	for _, s := range []string{"2019-04-15T02:41:50.000+0000", "2019-11-20T13:15:49Z", "2021-06-30T18:40:07.591378Z",
		"2018-04-26T15:52:25+00:00", "2018-04-26T15:52:25.123456789-05:30", "2019-01-01T00:00:00.Z", "2019-01-01T00:00:00+00:000",
		"2000-02-29T23:59:59.9Z", "1677-09-21T00:12:43Z", "2019-01-01T00:00:00.1+0:000"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		got, ok := parseTimestamp([]byte(s))
		want, wantOK := parseTimestampReference([]byte(s))
		if ok != wantOK || got != want {
			t.Fatalf("parseTimestamp(%q) = %d, %v; reference %d, %v", s, got, ok, want, wantOK)
		}
	})
}
