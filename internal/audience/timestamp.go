package audience

import (
	"encoding/binary"
	"math"
	"time"
)

// Representable event times: a queue message record (package wire)
// carries Unix nanoseconds in an int64.
var (
	minEventTime = time.Unix(0, math.MinInt64).UTC()
	maxEventTime = time.Unix(0, math.MaxInt64).UTC()
)

// InUnixNano reports whether t is a representable event time: within Unix
// nanoseconds (years 1678–2262).
func InUnixNano(t time.Time) bool { return !t.Before(minEventTime) && !t.After(maxEventTime) }

// parseTimestamp parses lastQualificationTime in every form AEP sends:
// YYYY-MM-DDThh:mm:ss, then an optional fraction of 1–9 digits, then Z,
// ±hhmm or ±hh:mm ("2019-04-15T02:41:50.000+0000", "2019-11-20T13:15:49Z",
// "2021-06-30T18:40:07.591378Z", "2018-04-26T15:52:25+00:00"). Field ranges
// are checked (no 24:00, no leap second, no 30 February) and the instant must
// fit in Unix nanoseconds (years 1678–2262). It returns Unix nanoseconds.
//
// The fixed 19 bytes are checked as two 8-byte words and three bytes; the
// zone is read from the end (its last byte and length tell its form), which
// leaves the fraction between them. FuzzParseTimestamp holds it to a
// field-by-field reference.
func parseTimestamp(b []byte) (int64, bool) {
	if len(b) < len("2006-01-02T15:04:05Z") {
		return 0, false
	}
	w0 := binary.LittleEndian.Uint64(b)     // YYYY-MM-
	w1 := binary.LittleEndian.Uint64(b[8:]) // DDThh:mm
	if !tsWord0.matches(w0) || !tsWord1.matches(w1) || b[16] != ':' || b[17]-'0' > 9 || b[18]-'0' > 9 {
		return 0, false
	}
	year := digitAt(w0, 0)*1000 + digitAt(w0, 1)*100 + digitAt(w0, 2)*10 + digitAt(w0, 3)
	month := digitAt(w0, 5)*10 + digitAt(w0, 6)
	day := digitAt(w1, 0)*10 + digitAt(w1, 1)
	hour := digitAt(w1, 3)*10 + digitAt(w1, 4)
	minute := digitAt(w1, 6)*10 + digitAt(w1, 7)
	sec := int(b[17]-'0')*10 + int(b[18]-'0')
	if month < 1 || month > 12 || day < 1 || day > daysIn(month, year) || hour > 23 || minute > 59 || sec > 59 {
		return 0, false
	}
	rest := b[19:]
	n := len(rest)
	zone := 5 // ±hhmm
	switch {
	case rest[n-1] == 'Z':
		zone = 1
	case n >= 6 && rest[n-3] == ':':
		zone = 6 // ±hh:mm
	case n < 5:
		return 0, false
	}
	offset := 0
	if zone > 1 {
		z := rest[n-zone:]
		oh, okh := num2(z[1], z[2])
		om, okm := num2(z[zone-2], z[zone-1])
		if z[0] != '+' && z[0] != '-' || !okh || !okm || oh > 23 || om > 59 {
			return 0, false
		}
		offset = (oh*60 + om) * 60
		if z[0] == '-' {
			offset = -offset
		}
	}
	nsec := 0
	if frac := rest[:n-zone]; len(frac) > 0 {
		// A dot and 1–9 digits, scaled to nanoseconds.
		if frac[0] != '.' || len(frac) < 2 || len(frac) > 10 {
			return 0, false
		}
		v, ok := digits(frac[1:])
		if !ok {
			return 0, false
		}
		nsec = v * pow10[10-len(frac)]
	}
	secs := daysFromCivil(year, month, day)*86400 + int64(hour*3600+minute*60+sec-offset)
	// Stay inside int64 nanoseconds: the bounds are whole seconds inside
	// math.MinInt64/MaxInt64 nanoseconds.
	if secs < math.MinInt64/1_000_000_000 || secs > math.MaxInt64/1_000_000_000-1 {
		return 0, false
	}
	return secs*1_000_000_000 + int64(nsec), true
}

// pow10[k] is 10 to the k.
var pow10 = [...]int{1, 10, 100, 1_000, 10_000, 100_000, 1_000_000, 10_000_000, 100_000_000}

// wordShape checks eight bytes at once: digits where digit has 0xff, and
// the bytes of sep where sepMask has 0xff.
type wordShape struct {
	digit, sepMask, sep uint64
}

// The two words at the start of a timestamp.
var (
	tsWord0 = shapeOf("DDDD-DD-")
	tsWord1 = shapeOf("DDTDD:DD")
)

// shapeOf is the wordShape of an 8-byte pattern: D stands for a digit,
// anything else for itself.
func shapeOf(pattern string) wordShape {
	var w wordShape
	for k := 0; k < 8; k++ {
		if pattern[k] == 'D' {
			w.digit |= 0xff << (8 * k)
		} else {
			w.sepMask |= 0xff << (8 * k)
			w.sep |= uint64(pattern[k]) << (8 * k)
		}
	}
	return w
}

// matches reports whether the little-endian word x has the shape. A digit
// byte has high nibble 3 and a low nibble that does not carry when 6 is
// added; a byte large enough to carry into the next fails its own check.
func (w wordShape) matches(x uint64) bool {
	const high, six, zeros = 0xf0f0f0f0f0f0f0f0, 0x0606060606060606, 0x3030303030303030
	return x&w.sepMask == w.sep && x&high&w.digit == zeros&w.digit && (x+six)&high&w.digit == zeros&w.digit
}

// digitAt is the value of the ASCII digit in byte k of the little-endian
// word x.
func digitAt(x uint64, k uint) int { return int(x >> (8 * k) & 15) }

// daysFromCivil is the number of days from 1970-01-01 to the given date of
// the proleptic Gregorian calendar (Howard Hinnant's algorithm).
func daysFromCivil(y, m, d int) int64 {
	if m <= 2 {
		y--
	}
	era := y
	if era < 0 {
		era -= 399
	}
	era /= 400
	yoe := y - era*400
	mp := (m + 9) % 12
	doy := (153*mp+2)/5 + d - 1
	doe := yoe*365 + yoe/4 - yoe/100 + doy
	return int64(era*146097 + doe - 719468)
}

// num2 parses two ASCII digits.
func num2(a, b byte) (int, bool) {
	a, b = a-'0', b-'0'
	return int(a)*10 + int(b), a <= 9 && b <= 9
}

// digits parses a short run of ASCII digits.
func digits(b []byte) (int, bool) {
	n := 0
	for _, c := range b {
		if c < '0' || c > '9' {
			return 0, false
		}
		n = n*10 + int(c-'0')
	}
	return n, true
}

func daysIn(month, year int) int {
	switch month {
	case 2:
		if year%4 == 0 && (year%100 != 0 || year%400 == 0) {
			return 29
		}
		return 28
	case 4, 6, 9, 11:
		return 30
	}
	return 31
}
