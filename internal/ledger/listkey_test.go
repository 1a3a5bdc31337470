package ledger

import (
	"testing"

	"github.com/pinlist/pinlist/internal/audience"
)

func TestParseListKey(t *testing.T) {
	tests := []struct {
		name string
		key  string
		want List
		ok   bool
	}{
		{"email list", "ups:8a1f/EMAIL", List{audience.Ref{Namespace: "ups", ID: "8a1f"}, audience.ListEmail}, true},
		{"slash and colon in the ID", "ups:a/b:c/MAID", List{audience.Ref{Namespace: "ups", ID: "a/b:c"}, audience.ListMAID}, true},
		{"no type", "ups:8a1f", List{}, false},
		{"unknown type", "ups:8a1f/PHONE", List{}, false},
		{"no colon", "ups8a1f/EMAIL", List{}, false},
		{"empty ID", "ups:/EMAIL", List{}, false},
		{"space in ID", "ups:a b/EMAIL", List{}, false},
		{"empty", "", List{}, false},
		{"a counter key", "n#ups:8a1f/EMAIL#0a", List{}, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := ParseListKey(tt.key)
			if (err == nil) != tt.ok || got != tt.want {
				t.Fatalf("ParseListKey(%q) = %+v, %v; want %+v, ok %v", tt.key, got, err, tt.want, tt.ok)
			}
			if tt.ok && got.Key() != tt.key {
				t.Fatalf("Key() of the parsed list = %q, want %q", got.Key(), tt.key)
			}
		})
	}
}

func FuzzParseListKey(f *testing.F) {
	for _, s := range []string{"ups:8a1f/EMAIL", "a:b/IDFA", "ups:a/b:c/MAID", "", "/", ":/EMAIL"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, key string) {
		l, err := ParseListKey(key)
		if err != nil {
			return
		}
		if l.Key() != key {
			t.Fatalf("ParseListKey(%q).Key() = %q", key, l.Key())
		}
		if err := l.Audience.Validate(); err != nil {
			t.Fatalf("ParseListKey(%q) accepted an invalid audience: %v", key, err)
		}
	})
}
