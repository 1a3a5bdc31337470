package upload

import (
	"strings"
	"testing"

	"github.com/pinlist/pinlist/internal/audience"
)

func TestListName(t *testing.T) {
	tests := []struct {
		name    string
		key     string
		lt      audience.ListType
		display string
		want    string
	}{
		{"without display name", "ups:36a5", audience.ListEmail, "", "pinlist ups:36a5 EMAIL"},
		{"with display name", "ups:36a5", audience.ListMAID, "VIP buyers", "pinlist ups:36a5 MAID - VIP buyers"},
		{"display name white space folded", "ups:36a5", audience.ListIDFA, "  VIP\n\tbuyers ", "pinlist ups:36a5 IDFA - VIP buyers"},
		{"blank display name", "ups:36a5", audience.ListEmail, " \t", "pinlist ups:36a5 EMAIL"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got := ListName(tt.key, tt.lt, tt.display)
			if got != tt.want {
				t.Fatalf("ListName(%q, %s, %q) = %q, want %q", tt.key, tt.lt, tt.display, got, tt.want)
			}
			if !matchesList(got, tt.key, tt.lt) {
				t.Errorf("matchesList(%q, %q, %s) = false, want true", got, tt.key, tt.lt)
			}
			key, lt, ok := ParseListName(got)
			if !ok || key != tt.key || lt != tt.lt {
				t.Errorf("ParseListName(%q) = %q, %s, %v; want %q, %s, true", got, key, lt, ok, tt.key, tt.lt)
			}
		})
	}
}

func TestMatchesList(t *testing.T) {
	tests := []struct {
		name     string
		listName string
		key      string
		lt       audience.ListType
		want     bool
	}{
		{"exact stable name", "pinlist ups:a EMAIL", "ups:a", audience.ListEmail, true},
		{"renamed audience", "pinlist ups:a EMAIL - Old name", "ups:a", audience.ListEmail, true},
		{"other list type", "pinlist ups:a MAID", "ups:a", audience.ListEmail, false},
		{"longer audience id", "pinlist ups:ab EMAIL", "ups:a", audience.ListEmail, false},
		{"audience id with a suffix", "pinlist ups:a EMAILX", "ups:a", audience.ListEmail, false},
		{"not a pinlist list", "ups:a EMAIL", "ups:a", audience.ListEmail, false},
		{"key with a space", "pinlist ups:a b EMAIL - x", "ups:a b", audience.ListEmail, true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := matchesList(tt.listName, tt.key, tt.lt); got != tt.want {
				t.Errorf("matchesList(%q, %q, %s) = %v, want %v", tt.listName, tt.key, tt.lt, got, tt.want)
			}
		})
	}
}

func TestParseListNameRejects(t *testing.T) {
	for _, name := range []string{
		"",
		"pinlist",
		"pinlist ",
		"pinlist ups:a",
		"pinlist ups:a PHONE",
		"pinlist  EMAIL",
		"pinlist ups:a EMAIL extra",
		"Pinlist ups:a EMAIL",
		"Customer List-VIP",
	} {
		t.Run(name, func(t *testing.T) {
			if key, lt, ok := ParseListName(name); ok {
				t.Errorf("ParseListName(%q) = %q, %s, true; want not ok", name, key, lt)
			}
		})
	}
}

// FuzzParseListName: list names come from Pinterest (anyone with access to
// the ad account can name a list); parsing must never panic, and whatever
// parses must be a name that finds the same list again.
func FuzzParseListName(f *testing.F) {
	for _, s := range []string{"pinlist ups:a EMAIL", "pinlist ups:a MAID - name", "pinlist x IDFA -", "pinlist", ""} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, name string) {
		key, lt, ok := ParseListName(name)
		if !ok {
			return
		}
		if !matchesList(name, key, lt) {
			t.Fatalf("ParseListName(%q) = %q, %s but matchesList disagrees", name, key, lt)
		}
		if strings.ContainsRune(key, ' ') {
			t.Fatalf("ParseListName(%q) returned key %q with a space", name, key)
		}
	})
}

func TestOlderID(t *testing.T) {
	tests := []struct {
		a, b string
		want bool
	}{
		{"9", "10", true},
		{"10", "9", false},
		{"549755813888", "549755813889", true},
		{"549755813889", "549755813889", false},
	}
	for _, tt := range tests {
		if got := olderID(tt.a, tt.b); got != tt.want {
			t.Errorf("olderID(%q, %q) = %v, want %v", tt.a, tt.b, got, tt.want)
		}
	}
}
