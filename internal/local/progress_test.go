package local

import (
	"strings"
	"testing"
	"time"
)

func TestProgressPrinter(t *testing.T) {
	var out strings.Builder
	pp := &progressPrinter{w: &out}
	steps := []struct {
		name  string
		p     Progress
		print bool
	}{
		{"idle at start", Progress{}, false},
		{"work queued", Progress{Received: 10, ReceivedMessages: 2, Queued: 2}, true},
		{"still queued, nothing moved", Progress{Received: 10, ReceivedMessages: 2, Queued: 1, InFlight: 1, OldestAge: 3 * time.Second}, true},
		{"drained", Progress{Received: 10, ReceivedMessages: 2, Applied: 10, AppliedMessages: 2}, true},
		{"idle again", Progress{Received: 10, ReceivedMessages: 2, Applied: 10, AppliedMessages: 2}, false},
		{"a dead letter", Progress{Received: 10, ReceivedMessages: 2, Applied: 10, AppliedMessages: 2, DeadLetters: 1}, true},
	}
	for _, s := range steps {
		before := out.Len()
		pp.tick(s.p)
		if printed := out.Len() > before; printed != s.print {
			t.Errorf("%s: printed = %v, want %v (%q)", s.name, printed, s.print, out.String()[before:])
		}
	}
	want := "progress: 10 changes received, 0 applied; queue: 1 messages waiting, 1 in flight, 0 retried, 0 dead letters, oldest 3s"
	if !strings.Contains(out.String(), want+"\n") {
		t.Errorf("output lacks %q:\n%s", want, out.String())
	}
}
