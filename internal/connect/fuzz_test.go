package connect

import (
	"net/url"
	"strings"
	"testing"
)

// FuzzParseStore: a spec either parses to one that prints back as given, or
// is refused with an error that does not echo control characters.
func FuzzParseStore(f *testing.F) {
	for _, s := range []string{"file:token.json", "secretsmanager:arn:aws:secretsmanager:us-east-1:1:secret:x", "file:", ":", "x:y", "secretsmanager:a b", "file:\x00"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, spec string) {
		got, err := ParseStore(spec)
		if err != nil {
			if strings.ContainsAny(err.Error(), "\n\r\x00") {
				t.Fatalf("error %q carries a control character", err)
			}
			return
		}
		if got.String() != spec || got.Location == "" || (got.Kind != KindFile && got.Kind != KindSecretsManager) {
			t.Fatalf("ParseStore(%q) = %+v", spec, got)
		}
	})
}

// FuzzReadCallback: the callback's query comes from the browser, so from
// anyone who can reach 127.0.0.1. A code is returned only with the right
// state, and errors never carry raw outside text.
func FuzzReadCallback(f *testing.F) {
	const state = "JBSWY3DPEHPK3PXPJBSWY3DPEH"
	for _, q := range []string{
		"state=" + state + "&code=abc",
		"state=" + state + "&error=access_denied&error_description=The+user+declined",
		"state=wrong&code=abc",
		"code=abc",
		"state=" + state + "&state=" + state + "&code=abc",
		"state=" + state + "&error=%00%0Abad%E2%80%AE",
		"state=" + state,
	} {
		f.Add(q)
	}
	f.Fuzz(func(t *testing.T, rawQuery string) {
		q, err := url.ParseQuery(rawQuery)
		if err != nil {
			return
		}
		code, err := readCallback(q, state)
		if err != nil {
			if code != "" {
				t.Fatalf("readCallback returned code %q with error %v", code, err)
			}
			for _, r := range err.Error() {
				if r < 0x20 || r > 0x7e {
					t.Fatalf("error %q carries %U", err, r)
				}
			}
			if c := q.Get("code"); len(c) > 8 && q.Get("error") == "" && strings.Contains(err.Error(), c) {
				t.Fatalf("error %q quotes the code", err)
			}
			return
		}
		if len(q["state"]) != 1 || q.Get("state") != state {
			t.Fatalf("accepted state %q", q["state"])
		}
		if code == "" || code != q.Get("code") || q.Get("error") != "" {
			t.Fatalf("readCallback(%q) = %q", rawQuery, code)
		}
	})
}
