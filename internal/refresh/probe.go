package refresh

import (
	"context"
	"errors"
	"fmt"
	"net/http"

	"golang.org/x/oauth2"

	"github.com/pinlist/pinlist/internal/pinterest"
	"github.com/pinlist/pinlist/internal/token"
)

// A Prober checks that Pinterest still accepts the stored access token. An
// access token can stop working before its stored expiry (Pinterest expired
// or revoked it); the refresh grant then fixes it without a person, and a run
// that would otherwise find the token "not due" refreshes it at once.
// *pinterest.UnauthorizedError (401) from the probe means refused; any other
// error is logged and changes nothing.
type Prober func(ctx context.Context, t token.Token) error

// PinterestProbe probes with one read of the token's ad account's customer
// lists (an ads:read call), falling back to adAccountID when the token names
// no ad account. With neither, it does nothing. hc nil means
// http.DefaultClient.
func PinterestProbe(baseURL, adAccountID string, hc *http.Client) Prober {
	if hc == nil {
		hc = http.DefaultClient
	}
	return func(ctx context.Context, t token.Token) error {
		ad := t.AdAccountID
		if ad == "" {
			ad = adAccountID
		}
		if ad == "" {
			return nil
		}
		c, err := pinterest.New(pinterest.Options{
			AdAccountID: ad,
			BaseURL:     baseURL,
			HTTPClient:  hc,
			Retry:       pinterest.RetryPolicy{MaxAttempts: 1},
			TokenSource: oauth2.StaticTokenSource(&oauth2.Token{AccessToken: t.AccessToken}),
		})
		if err != nil {
			return fmt.Errorf("probe the access token: %w", err)
		}
		for _, err := range c.CustomerLists(ctx) {
			return err // the first page answered (or failed): enough
		}
		return nil
	}
}

// refused reports whether a probe error means Pinterest refused the token.
func refused(err error) bool {
	var unauth *pinterest.UnauthorizedError
	return errors.As(err, &unauth)
}
