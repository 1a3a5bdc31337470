package pinterestsim

import (
	"math"
	"net/http"
	"strconv"
	"sync"
	"time"
)

// PinterestWriteLimit is Pinterest's ads_write budget as far as it is known:
// about 400 calls a minute per user and app (Pinterest's rate-limit page
// cuts the ads_write row off; Amperity and the v3 docs name 400/min).
// `pinlist sim` and the built-in simulator of `pinlist serve` enforce it by
// default; Options.WriteLimit's zero value enforces nothing.
const PinterestWriteLimit = 400

// Headers of the write budget, on every write answer (2xx or 429).
const (
	HeaderRateLimitLimit     = "X-RateLimit-Limit"
	HeaderRateLimitRemaining = "X-RateLimit-Remaining"
	HeaderRateLimitReset     = "X-RateLimit-Reset"
)

// rateLimitCode and rateLimitMessage are Pinterest's 429 body (the
// description's example).
const (
	rateLimitCode    = 8
	rateLimitMessage = "This request exceeded a rate limit. This can happen if the client exceeds one of the published rate limits within a short time window."
)

// writeBudget is the ads_write rate limit: one token bucket per ad account,
// refilled at perMinute/60 calls a second up to burst calls. Customer list
// and audience creates and updates share it, as they share Pinterest's
// ads_write category.
type writeBudget struct {
	perMinute int
	burst     float64
	perSecond float64

	mu      sync.Mutex
	buckets map[string]*bucket
}

type bucket struct {
	tokens float64
	at     time.Time // when tokens was last brought up to date
}

// budgetAnswer is what the budget said to one write.
type budgetAnswer struct {
	ok        bool
	remaining int           // whole calls left in the bucket after this one
	reset     time.Duration // until the bucket holds a whole call again (0: it does)
}

// newWriteBudget returns nil (no limit) when perMinute is 0.
func newWriteBudget(perMinute, burst int) *writeBudget {
	if perMinute <= 0 {
		return nil
	}
	if burst <= 0 {
		burst = defaultWriteBurst(perMinute)
	}
	return &writeBudget{
		perMinute: perMinute,
		burst:     float64(burst),
		perSecond: float64(perMinute) / 60,
		buckets:   map[string]*bucket{},
	}
}

// defaultWriteBurst is a tenth of the budget, at least one call: stricter
// than a per-minute window, so a client that keeps to it keeps to Pinterest.
func defaultWriteBurst(perMinute int) int { return max(1, perMinute/10) }

// take spends one call of the ad account's bucket at now, if it has one.
func (b *writeBudget) take(adAccount string, now time.Time) budgetAnswer {
	b.mu.Lock()
	defer b.mu.Unlock()
	bk := b.buckets[adAccount]
	if bk == nil {
		bk = &bucket{tokens: b.burst, at: now}
		b.buckets[adAccount] = bk
	}
	if elapsed := now.Sub(bk.at); elapsed > 0 {
		bk.tokens = math.Min(b.burst, bk.tokens+elapsed.Seconds()*b.perSecond)
		bk.at = now
	}
	ans := budgetAnswer{ok: bk.tokens >= 1}
	if ans.ok {
		bk.tokens--
	}
	ans.remaining = int(math.Floor(bk.tokens))
	if bk.tokens < 1 {
		ans.reset = time.Duration((1 - bk.tokens) / b.perSecond * float64(time.Second))
	}
	return ans
}

// setHeaders writes the X-RateLimit headers of ans: the limit per minute,
// the whole calls left, and the seconds (rounded up) until the next call
// fits. A 429 also gets Retry-After with the same seconds (at least 1).
func (b *writeBudget) setHeaders(h http.Header, ans budgetAnswer) {
	secs := int64((ans.reset + time.Second - 1) / time.Second)
	h.Set(HeaderRateLimitLimit, strconv.Itoa(b.perMinute))
	h.Set(HeaderRateLimitRemaining, strconv.Itoa(ans.remaining))
	h.Set(HeaderRateLimitReset, strconv.FormatInt(secs, 10))
	if !ans.ok {
		h.Set("Retry-After", strconv.FormatInt(max(secs, 1), 10))
	}
}

// isWriteRoute reports whether route is in Pinterest's ads_write category.
func isWriteRoute(route string) bool {
	switch route {
	case RouteCustomerListsCreate, RouteCustomerListsUpdate, RouteAudiencesCreate, RouteAudiencesUpdate:
		return true
	}
	return false
}
