package audience

import (
	"math/rand/v2"
	"strings"
	"testing"
	"time"
)

func TestClassifyNamespace(t *testing.T) {
	tests := []struct {
		key  string
		want namespace
	}{
		{"email", nsEmail}, {"Email", nsEmail}, {"EMAIL", nsEmail},
		{"email_lc_sha256", nsEmailHash}, {"Email_LC_SHA256", nsEmailHash},
		{"gaid", nsGAID}, {"GAID", nsGAID}, {"idfa", nsIDFA}, {"IdFa", nsIDFA},
		{"phone", nsOther}, {"emails", nsOther}, {"e-mail", nsOther}, {"", nsOther},
		// Unicode case folding would map these to ASCII words: they must not match.
		{"email_lc_\u017fha256", nsOther}, {"\u212aaid", nsOther},
	}
	for _, tt := range tests {
		if got := classifyNamespace([]byte(tt.key)); got != tt.want {
			t.Errorf("classifyNamespace(%q) = %d, want %d", tt.key, got, tt.want)
		}
	}
}

func TestNormalizeEmail(t *testing.T) {
	tests := []struct {
		name, in, want string // want "" means invalid
	}{
		{"plain", "a@example.com", "a@example.com"},
		{"upper case", "John.Doe@EXAMPLE.Com", "john.doe@example.com"},
		{"surrounding space", " \t\r\na@example.com \n", "a@example.com"},
		{"plus and dots", "first.last+tag@mail.example.co.uk", "first.last+tag@mail.example.co.uk"},
		{"unicode upper case", "ÉLODIE@EXÄMPLE.COM", "élodie@exämple.com"},
		{"unicode space", "\u00a0a@example.com\u2003", "a@example.com"},
		{"64-byte local part", strings.Repeat("a", 64) + "@example.com", strings.Repeat("a", 64) + "@example.com"},
		{"empty", "", ""},
		{"only space", "   ", ""},
		{"no at", "example.com", ""},
		{"two ats", "a@b@example.com", ""},
		{"empty local part", "@example.com", ""},
		{"65-byte local part", strings.Repeat("a", 65) + "@example.com", ""},
		{"no dot in domain", "a@localhost", ""},
		{"short domain", "a@b.", ""},
		{"leading dot in domain", "a@.example.com", ""},
		{"trailing dot in domain", "a@example.com.", ""},
		{"empty label", "a@example..com", ""},
		{"space inside", "a b@example.com", ""},
		{"control character", "a\x01b@example.com", ""},
		{"quote", `"a"@example.com`, ""},
		{"angle brackets", "<a@example.com>", ""},
		{"comma list", "a@example.com,b@example.com", ""},
		{"ip literal", "a@[127.0.0.1]", ""},
		{"too long", "a@" + strings.Repeat("b", 250) + ".com", ""},
		{"invalid UTF-8", "a\xff@example.com", ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, ok := normalizeEmail([]byte("prefix"), []byte(tt.in))
			if !strings.HasPrefix(string(got), "prefix") {
				t.Fatalf("dst prefix lost: %q", got)
			}
			switch {
			case tt.want == "" && ok:
				t.Errorf("normalizeEmail(%q) = %q, want invalid", tt.in, got[6:])
			case tt.want != "" && (!ok || string(got[6:]) != tt.want):
				t.Errorf("normalizeEmail(%q) = %q, %v; want %q", tt.in, got[6:], ok, tt.want)
			}
		})
	}
}

func TestNormalizeUUID(t *testing.T) {
	tests := []struct {
		name, in string
		upper    bool
		want     string // "" means invalid
		zero     bool
	}{
		{"gaid lowercased", "E4FE9BDE-CAA0-47B6-908D-FFBA3FA184F2", false, "e4fe9bde-caa0-47b6-908d-ffba3fa184f2", false},
		{"idfa uppercased", "aebe52e7-03ee-455a-b3c4-e57283966239", true, "AEBE52E7-03EE-455A-B3C4-E57283966239", false},
		{"mixed case", "aEbE52e7-03EE-455a-B3c4-e57283966239", false, "aebe52e7-03ee-455a-b3c4-e57283966239", false},
		{"surrounding space", " aebe52e7-03ee-455a-b3c4-e57283966239\n", false, "aebe52e7-03ee-455a-b3c4-e57283966239", false},
		{"all zero", "00000000-0000-0000-0000-000000000000", false, "00000000-0000-0000-0000-000000000000", true},
		{"braces", "{aebe52e7-03ee-455a-b3c4-e57283966239}", false, "", false},
		{"no dashes", "aebe52e703ee455ab3c4e57283966239", false, "", false},
		{"urn", "urn:uuid:aebe52e7-03ee-455a-b3c4-e57283966239", false, "", false},
		{"dash misplaced", "aebe52e-703ee-455a-b3c4-e57283966239", false, "", false},
		{"not hex", "aebe52e7-03ee-455a-b3c4-e5728396623g", false, "", false},
		{"too short", "aebe52e7-03ee-455a-b3c4-e5728396623", false, "", false},
		{"empty", "", false, "", false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var u [36]byte
			zero, ok := normalizeUUID(&u, []byte(tt.in), tt.upper)
			switch {
			case tt.want == "" && ok:
				t.Errorf("normalizeUUID(%q) = %q, want invalid", tt.in, u)
			case tt.want != "" && (!ok || string(u[:]) != tt.want || zero != tt.zero):
				t.Errorf("normalizeUUID(%q) = %q, zero %v, ok %v; want %q, zero %v", tt.in, u, zero, ok, tt.want, tt.zero)
			}
		})
	}
}

func TestIsHash(t *testing.T) {
	h := sha("x")
	for s, want := range map[string]bool{
		h: true, strings.ToUpper(h): false, h[:63]: false, h + "0": false, h[:63] + "g": false, "": false,
	} {
		if IsHash(s) != want {
			t.Errorf("IsHash(%q) = %v, want %v", s, !want, want)
		}
	}
}

func TestParseTimestamp(t *testing.T) {
	tests := []struct {
		in   string
		want string // RFC 3339 in UTC; "" means invalid
	}{
		{"2019-04-15T02:41:50.000+0000", "2019-04-15T02:41:50Z"},
		{"2019-11-20T13:15:49Z", "2019-11-20T13:15:49Z"},
		{"2021-06-30T18:40:07.591378Z", "2021-06-30T18:40:07.591378Z"},
		{"2018-04-26T15:52:25+00:00", "2018-04-26T15:52:25Z"},
		{"2018-04-26T15:52:25.123456789+05:30", "2018-04-26T10:22:25.123456789Z"},
		{"2018-04-26T00:00:00-0130", "2018-04-26T01:30:00Z"},
		{"2000-02-29T23:59:59.9Z", "2000-02-29T23:59:59.9Z"},
		{"1970-01-01T00:00:00Z", "1970-01-01T00:00:00Z"},
		{"1969-12-31T23:59:59.999999999Z", "1969-12-31T23:59:59.999999999Z"},
		{"2262-04-11T23:47:15Z", "2262-04-11T23:47:15Z"},
		{"1677-09-21T00:12:43Z", ""}, // before the int64 nanosecond range
		{"1678-01-01T00:00:00Z", "1678-01-01T00:00:00Z"},
		{"2262-04-12T00:00:00Z", ""}, // after it
		{"1900-02-29T00:00:00Z", ""}, // not a leap year
		{"2019-04-31T00:00:00Z", ""},
		{"2019-13-01T00:00:00Z", ""},
		{"2019-00-01T00:00:00Z", ""},
		{"2019-01-00T00:00:00Z", ""},
		{"2019-01-01T24:00:00Z", ""},
		{"2019-01-01T00:60:00Z", ""},
		{"2019-01-01T00:00:60Z", ""},
		{"2019-01-01T00:00:00", ""},
		{"2019-01-01t00:00:00Z", ""},
		{"2019-01-01T00:00:00z", ""},
		{"2019-01-01 00:00:00Z", ""},
		{"2019-01-01T00:00:00.Z", ""},
		{"2019-01-01T00:00:00.0123456789Z", ""},
		{"2019-01-01T00:00:00+24:00", ""},
		{"2019-01-01T00:00:00+00:60", ""},
		{"2019-01-01T00:00:00+0:00", ""},
		{"2019-01-01T00:00:00+00", ""},
		{"2019-01-01T00:00:00+00:000", ""},
		{"2019-01-01T00:00:00ZZ", ""},
		{"+019-01-01T00:00:00Z", ""},
		{"2019-1-01T00:00:00Z", ""},
		{"", ""},
	}
	for _, tt := range tests {
		ns, ok := parseTimestamp([]byte(tt.in))
		got := ""
		if ok {
			got = time.Unix(0, ns).UTC().Format(time.RFC3339Nano)
		}
		if got != tt.want {
			t.Errorf("parseTimestamp(%q) = %q, want %q", tt.in, got, tt.want)
		}
	}
}

// TestParseTimestampAgreesWithTimeParse formats random instants in AEP's
// layouts and checks the result against time.Parse.
func TestParseTimestampAgreesWithTimeParse(t *testing.T) {
	layouts := []string{
		"2006-01-02T15:04:05Z07:00",
		"2006-01-02T15:04:05.000-0700",
		"2006-01-02T15:04:05.000000Z07:00",
		"2006-01-02T15:04:05.999999999Z07:00",
		"2006-01-02T15:04:05.0Z0700",
	}
	rng := rand.New(rand.NewPCG(1, 2))
	lo, hi := time.Date(1700, 1, 1, 0, 0, 0, 0, time.UTC).Unix(), time.Date(2260, 1, 1, 0, 0, 0, 0, time.UTC).Unix()
	for range 5000 {
		at := time.Unix(lo+rng.Int64N(hi-lo), rng.Int64N(1e9)).In(time.FixedZone("", (rng.IntN(48)-24)*1800))
		for _, layout := range layouts {
			s := at.Format(layout)
			want, err := time.Parse(layout, s)
			if err != nil {
				t.Fatalf("time.Parse(%q): %v", s, err)
			}
			got, ok := parseTimestamp([]byte(s))
			if !ok || got != want.UnixNano() {
				t.Fatalf("parseTimestamp(%q) = %d, %v; time.Parse gives %d", s, got, ok, want.UnixNano())
			}
		}
	}
}

// normalizeUUIDReference is normalizeUUID a byte at a time, as it was
// first written: the reference FuzzNormalizeUUID holds it to. It checks
// that id is a UUID in its canonical 8-4-4-4-12 form
// (surrounding ASCII space allowed; braces, URN prefixes and the 32-digit form
// without dashes are rejected) and writes it to u in lower or upper case.
// allZero reports the all-zero ID that means the user opted out of tracking.
func normalizeUUIDReference(u *[36]byte, id []byte, upper bool) (allZero, ok bool) {
	id = trimASCIISpace(id)
	if len(id) != 36 || id[8] != '-' || id[13] != '-' || id[18] != '-' || id[23] != '-' {
		return false, false
	}
	digits := &lowerDigits
	if upper {
		digits = &upperDigits
	}
	in := (*[36]byte)(id)
	*u = *in // the dashes
	// Without a branch per digit: a non-digit has hexValue 0xff, which
	// shows in acc; valid digits OR to 0 only when all are 0.
	var acc byte
	for _, i := range uuidDigits {
		v := hexValue[in[i]]
		acc |= v
		u[i] = digits[v&15]
	}
	return acc == 0, acc <= 15
}

var (
	lowerDigits = [16]byte([]byte("0123456789abcdef"))
	upperDigits = [16]byte([]byte("0123456789ABCDEF"))
)

// uuidDigits are the positions of the hex digits in a canonical UUID.
var uuidDigits = func() (t [32]uint8) {
	n := 0
	for i := range 36 {
		if i != 8 && i != 13 && i != 18 && i != 23 {
			t[n] = uint8(i)
			n++
		}
	}
	return t
}()

// FuzzNormalizeUUID holds normalizeUUID (a word at a time) to
// normalizeUUIDReference (a byte at a time): the same verdict, the same
// opt-out, and when valid the same normal form, in both cases.
func FuzzNormalizeUUID(f *testing.F) {
	for _, s := range []string{gaid, idfa, " " + gaid + "\n", "{" + gaid + "}", "00000000-0000-0000-0000-000000000000",
		strings.ToUpper(gaid), "aebe52e703ee455ab3c4e57283966239", "aebe52e7-03ee-455a-b3c4-e5728396623g", "aebe52e7-03ee-455a-b3c4-e57283966\xff39"} {
		f.Add(s, false)
		f.Add(s, true)
	}
	f.Fuzz(func(t *testing.T, id string, upper bool) {
		var got, want [36]byte
		zero, ok := normalizeUUID(&got, []byte(id), upper)
		wantZero, wantOK := normalizeUUIDReference(&want, []byte(id), upper)
		if ok != wantOK || ok && (zero != wantZero || got != want) {
			t.Fatalf("normalizeUUID(%q, %v) = %q, %v, %v; reference %q, %v, %v", id, upper, got, zero, ok, want, wantZero, wantOK)
		}
	})
}

// hexValue maps a hex digit to its value and every other byte to 0xff.
var hexValue = func() (t [256]byte) {
	for c := range t {
		t[c] = 0xff
	}
	for c := '0'; c <= '9'; c++ {
		t[c] = byte(c - '0')
	}
	for c := 'a'; c <= 'f'; c++ {
		t[c] = byte(c-'a') + 10
		t[c-'a'+'A'] = byte(c-'a') + 10
	}
	return t
}()
