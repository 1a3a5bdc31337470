package pinterest

import (
	"context"
	"errors"
	"fmt"
	"iter"
	"net/http"
	"net/url"
	"strconv"
)

// pageSize is Pinterest's largest page size for list endpoints.
const pageSize = 250

// page is Pinterest's Paginated response.
type page[T any] struct {
	Items    []T     `json:"items"`
	Bookmark *string `json:"bookmark"`
}

// paginate iterates over every item of a bookmark-paginated list endpoint:
// it asks for pages of pageSize and follows the bookmark until Pinterest
// returns none (or an empty page). On an error it yields (nil, err) once,
// err wrapped with what, and stops.
func paginate[T any](ctx context.Context, c *Client, path, what string) iter.Seq2[*T, error] {
	return func(yield func(*T, error) bool) {
		seen := make(map[string]bool)
		bookmark := ""
		for {
			q := url.Values{"page_size": {strconv.Itoa(pageSize)}}
			if bookmark != "" {
				q.Set("bookmark", bookmark)
			}
			req, err := c.newRequest(ctx, http.MethodGet, path, q, nil)
			if err != nil {
				yield(nil, fmt.Errorf("%s: %w", what, err))
				return
			}
			var p page[T]
			if err := c.do(req, &p, nil); err != nil {
				yield(nil, fmt.Errorf("%s (page %d): %w", what, len(seen)+1, err))
				return
			}
			for i := range p.Items {
				if !yield(&p.Items[i], nil) {
					return
				}
			}
			if p.Bookmark == nil || *p.Bookmark == "" || len(p.Items) == 0 {
				return
			}
			bookmark = *p.Bookmark
			if seen[bookmark] {
				yield(nil, fmt.Errorf("%s (page %d): %w", what, len(seen)+1, errBookmarkLoop))
				return
			}
			seen[bookmark] = true
		}
	}
}

// errBookmarkLoop reports a server that hands back a bookmark it gave before,
// which would otherwise page for ever.
var errBookmarkLoop = errors.New("pinterest returned a bookmark it had already returned")
