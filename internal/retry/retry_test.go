package retry

import (
	"context"
	"errors"
	"testing"
	"time"
)

type waitErr struct{ d time.Duration }

func (e waitErr) Error() string             { return "slow down" }
func (e waitErr) RetryAfter() time.Duration { return e.d }

func TestCeiling(t *testing.T) {
	p := Policy{Base: 100 * time.Millisecond, Max: time.Second}
	for n, want := range map[int]time.Duration{1: 100 * time.Millisecond, 2: 200 * time.Millisecond, 4: 800 * time.Millisecond, 5: time.Second, 60: time.Second} {
		if got := p.Ceiling(n); got != want {
			t.Errorf("Ceiling(%d) = %s, want %s", n, got, want)
		}
	}
	if got := (Policy{}).Ceiling(3); got != 0 {
		t.Errorf("zero policy Ceiling = %s, want 0", got)
	}
}

func TestDelayIsJitteredWithinCeilingAndHonoursRetryAfter(t *testing.T) {
	p := Policy{Base: 10 * time.Millisecond, Max: 40 * time.Millisecond}
	seen := map[time.Duration]bool{}
	for range 200 {
		d := p.Delay(3, errors.New("x"))
		if d < 0 || d > 40*time.Millisecond {
			t.Fatalf("Delay = %s, outside [0, 40ms]", d)
		}
		seen[d] = true
	}
	if len(seen) < 10 {
		t.Errorf("200 draws gave %d distinct waits: not jittered", len(seen))
	}
	if d := p.Delay(1, waitErr{3 * time.Second}); d != 3*time.Second {
		t.Errorf("Delay with RetryAfter = %s, want 3s", d)
	}
}

func TestDo(t *testing.T) {
	errTransient, errFatal := errors.New("transient"), errors.New("fatal")
	cases := []struct {
		name      string
		results   []error
		attempts  int
		wantCalls int
		wantErr   error
	}{
		{"first try", []error{nil}, 3, 1, nil},
		{"second try", []error{errTransient, nil}, 3, 2, nil},
		{"attempts run out", []error{errTransient, errTransient, errTransient, nil}, 3, 3, errTransient},
		{"not retryable", []error{errFatal, nil}, 3, 1, errFatal},
		{"zero attempts means one", []error{errTransient, nil}, 0, 1, errTransient},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			var waits []time.Duration
			p := Policy{Attempts: tc.attempts, Base: time.Millisecond, Max: time.Second,
				Sleep: func(ctx context.Context, d time.Duration) error { waits = append(waits, d); return nil }}
			calls, retries := 0, 0
			err := Do(context.Background(), p, func(err error) bool { return err != errFatal }, func(context.Context) error {
				calls++
				return tc.results[calls-1]
			}, func(int, time.Duration, error) { retries++ })
			if !errors.Is(err, tc.wantErr) || (tc.wantErr == nil && err != nil) {
				t.Errorf("err = %v, want %v", err, tc.wantErr)
			}
			if calls != tc.wantCalls || retries != calls-1 || len(waits) != calls-1 {
				t.Errorf("calls %d, retries %d, waits %d; want %d calls and one wait per retry", calls, retries, len(waits), tc.wantCalls)
			}
		})
	}
}

func TestDoStopsWhenContextEndsDuringWait(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	calls := 0
	err := Do(ctx, Policy{Attempts: 5, Base: time.Hour, Max: time.Hour}, nil, func(context.Context) error {
		calls++
		cancel()
		return errors.New("down")
	}, nil)
	if calls != 1 || err == nil {
		t.Fatalf("calls %d, err %v: want one call and an error", calls, err)
	}
}

func TestSleep(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if err := Sleep(ctx, time.Hour); !errors.Is(err, context.Canceled) {
		t.Errorf("Sleep on a cancelled context = %v, want context.Canceled", err)
	}
	if err := Sleep(context.Background(), 0); err != nil {
		t.Errorf("Sleep(0) = %v", err)
	}
	if err := Sleep(context.Background(), time.Microsecond); err != nil {
		t.Errorf("Sleep(1µs) = %v", err)
	}
}
