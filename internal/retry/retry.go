// Package retry is pinlist's one way to wait and try again: a policy of
// attempts and exponential backoff with full jitter, a context-aware sleep,
// and Do, which runs a call under a policy. Each call is retried at exactly
// one layer: the layer that owns the policy; the layers around it do not
// retry the same call again.
package retry

import (
	"context"
	"errors"
	"math/rand/v2"
	"time"
)

// Policy says how often and how patiently a call is tried. Waits grow
// exponentially from Base, capped at Max, each drawn uniformly from
// [0, ceiling] ("full jitter") so that callers that failed together do not
// retry together. An error that carries its own wait (a RetryAfter method,
// such as Pinterest's Retry-After) replaces the drawn wait.
type Policy struct {
	// Attempts counts the first try too; 1 means no retries. Zero means 1.
	Attempts int
	// Base is the ceiling of the first wait; Max caps every ceiling.
	Base, Max time.Duration
	// Sleep waits between attempts (Sleep when nil). Tests inject a fake.
	Sleep func(ctx context.Context, d time.Duration) error
}

// Ceiling is the largest wait before retry n (n >= 1 is the first retry):
// Base·2^(n-1), at most Max.
func (p Policy) Ceiling(n int) time.Duration {
	d := p.Base
	if d <= 0 {
		return 0
	}
	for i := 1; i < n && (p.Max <= 0 || d < p.Max); i++ {
		d *= 2
	}
	if p.Max > 0 {
		d = min(d, p.Max)
	}
	return d
}

// Delay is the wait before retry n after err: err's own RetryAfter when it
// names one, else a uniformly drawn wait in [0, Ceiling(n)].
func (p Policy) Delay(n int, err error) time.Duration {
	var ra interface{ RetryAfter() time.Duration }
	if errors.As(err, &ra) {
		if d := ra.RetryAfter(); d > 0 {
			return d
		}
	}
	return Jitter(p.Ceiling(n))
}

// Jitter draws a wait uniformly from [0, ceiling].
func Jitter(ceiling time.Duration) time.Duration {
	if ceiling <= 0 {
		return 0
	}
	return time.Duration(rand.Int64N(int64(ceiling) + 1))
}

// Sleep waits d or until ctx is done, whichever comes first, and returns
// ctx's error in the second case. A wait of zero or less returns at once.
func Sleep(ctx context.Context, d time.Duration) error {
	if d <= 0 {
		return ctx.Err()
	}
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
		return ctx.Err()
	case <-t.C:
		return nil
	}
}

// Do calls fn until it succeeds, fails with an error retryable rejects,
// the policy's attempts run out, or ctx ends; it returns fn's last error
// (or ctx's, when ctx ended during a wait). A nil retryable retries every
// error. onRetry, when not nil, is told before each wait (for logs and
// counters).
func Do(ctx context.Context, p Policy, retryable func(error) bool, fn func(ctx context.Context) error, onRetry func(attempt int, wait time.Duration, err error)) error {
	sleep := p.Sleep
	if sleep == nil {
		sleep = Sleep
	}
	attempts := max(p.Attempts, 1)
	for n := 1; ; n++ {
		err := fn(ctx)
		if err == nil || n >= attempts || (retryable != nil && !retryable(err)) {
			return err
		}
		if ctx.Err() != nil {
			return err
		}
		wait := p.Delay(n, err)
		if onRetry != nil {
			onRetry(n, wait, err)
		}
		if serr := sleep(ctx, wait); serr != nil {
			return errors.Join(err, serr)
		}
	}
}
