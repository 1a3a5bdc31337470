package pinterestsim

import (
	"encoding/base64"
	"net/http"
	"sort"
	"strconv"
	"strings"
)

// Pinterest's page_size bounds (components.parameters.query_page_size).
const (
	defaultPageSize = 25
	maxPageSize     = 250
)

// page is Pinterest's Paginated response: the items and the bookmark of the
// next page, null on the last one.
type page[T any] struct {
	Items    []T     `json:"items"`
	Bookmark *string `json:"bookmark"`
}

// pageQuery is a list request's paging: size, order by ID, and the ID the
// previous page ended at (from the bookmark).
type pageQuery struct {
	size     int
	desc     bool
	after    uint64
	hasAfter bool
}

// bookmarkPrefix marks a simulator bookmark, so a stray string is rejected.
const bookmarkPrefix = "sim:"

func encodeBookmark(lastID uint64) string {
	return base64.RawURLEncoding.EncodeToString([]byte(bookmarkPrefix + strconv.FormatUint(lastID, 10)))
}

func decodeBookmark(b string) (uint64, bool) {
	raw, err := base64.RawURLEncoding.DecodeString(b)
	if err != nil {
		return 0, false
	}
	rest, ok := strings.CutPrefix(string(raw), bookmarkPrefix)
	if !ok {
		return 0, false
	}
	id, err := strconv.ParseUint(rest, 10, 64)
	return id, err == nil
}

// parsePageQuery reads page_size, order and bookmark (already validated
// against the description), answering 400 for a bookmark it did not issue.
func parsePageQuery(w http.ResponseWriter, r *http.Request) (pageQuery, bool) {
	q := pageQuery{size: defaultPageSize}
	values := r.URL.Query()
	if v := values.Get("page_size"); v != "" {
		n, err := strconv.Atoi(v)
		if err != nil || n < 1 || n > maxPageSize {
			writeError(w, http.StatusBadRequest, 1, "Invalid page_size.")
			return q, false
		}
		q.size = n
	}
	q.desc = values.Get("order") == "DESCENDING"
	if b := values.Get("bookmark"); b != "" {
		id, ok := decodeBookmark(b)
		if !ok {
			writeError(w, http.StatusBadRequest, 1, "Invalid bookmark.")
			return q, false
		}
		q.after, q.hasAfter = id, true
	}
	return q, true
}

// paginate returns one page of all (sorted by ascending ID) and the bookmark
// of the next page, nil when this page is the last.
func paginate[T any](all []T, id func(T) uint64, q pageQuery) ([]T, *string) {
	var rest []T
	if q.desc {
		end := len(all)
		if q.hasAfter {
			end = sort.Search(len(all), func(i int) bool { return id(all[i]) >= q.after })
		}
		rest = make([]T, 0, min(end, q.size+1))
		for i := end - 1; i >= 0 && len(rest) <= q.size; i-- {
			rest = append(rest, all[i])
		}
	} else {
		start := 0
		if q.hasAfter {
			start = sort.Search(len(all), func(i int) bool { return id(all[i]) > q.after })
		}
		rest = all[start:min(len(all), start+q.size+1)]
	}
	if len(rest) <= q.size {
		return append([]T{}, rest...), nil
	}
	items := append([]T{}, rest[:q.size]...)
	b := encodeBookmark(id(items[len(items)-1]))
	return items, &b
}
