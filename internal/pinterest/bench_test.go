package pinterest

import (
	"net/http"
	"testing"
)

// BenchmarkUpdateCustomerList measures one PATCH of 1,900 records (the
// largest batch third parties report Pinterest taking) against the
// simulator, request validation included.
func BenchmarkUpdateCustomerList(b *testing.B) {
	env := newSimEnv(b)
	c := env.client(b)
	ctx := b.Context()
	list, err := c.CreateCustomerList(ctx, CustomerListCreate{Name: "bench", Records: hashes("b", 1)})
	if err != nil {
		b.Fatal(err)
	}
	recs := hashes("bench", 1900)
	b.ReportAllocs()
	for b.Loop() {
		if _, err := c.UpdateCustomerList(ctx, list.ID, OpAdd, recs); err != nil {
			b.Fatal(err)
		}
	}
}

func BenchmarkCheckResponse(b *testing.B) {
	h := http.Header{"Retry-After": {"2"}, "X-Pinterest-Rid": {"abc123"}}
	body := []byte(`{"code":8,"message":"This request exceeded a rate limit."}`)
	b.ReportAllocs()
	for b.Loop() {
		_ = checkResponse(reply(http.StatusTooManyRequests, h), body, "PATCH", "/ad_accounts/1/customer_lists/2", testNow)
	}
}
