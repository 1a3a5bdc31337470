package audience

import (
	"cmp"
	"slices"
	"strings"
)

// DefaultMaxRecords is the record count of a chunk when none is given.
const DefaultMaxRecords = 5000

// Chunk is one Pinterest PATCH/create worth of records for one list and op.
type Chunk struct {
	Audience Ref
	List     ListType
	Op       Op
	Hashes   []string
}

// GroupChunks groups coalesced changes by audience, then list type and op,
// then cuts chunks of at most maxRecords records (DefaultMaxRecords when 0)
// and at most maxBytes of encoded comma-separated records (0 = no byte
// bound; a record longer than maxBytes still goes, alone). Changes in
// Coalesce's order keep that order; any other order is first sorted the same
// way (stably), so one (audience, list, op) never splits around another.
func GroupChunks(changes []Change, maxRecords, maxBytes int) []Chunk {
	if maxRecords <= 0 {
		maxRecords = DefaultMaxRecords
	}
	if chunks, ok := groupSortedChunks(changes, maxRecords, maxBytes); ok {
		return chunks
	}
	sorted := slices.Clone(changes)
	slices.SortStableFunc(sorted, compareGroup)
	chunks, _ := groupSortedChunks(sorted, maxRecords, maxBytes)
	return chunks
}

// groupSortedChunks cuts changes that are in compareGroup order into chunks;
// ok is false when they are not in that order.
func groupSortedChunks(changes []Change, maxRecords, maxBytes int) (chunks []Chunk, ok bool) {
	// One backing array for every chunk's hashes; each chunk gets a capped
	// sub-slice, so appending to one never writes into the next.
	all := make([]string, len(changes))
	for i := 0; i < len(changes); {
		c := &changes[i]
		if i > 0 && !sameGroup(&changes[i-1], c) && compareGroup(changes[i-1], *c) > 0 {
			return nil, false
		}
		all[i] = c.Hash
		j, size := i+1, len(c.Hash)
		for j < len(changes) && j-i < maxRecords && sameGroup(c, &changes[j]) {
			if maxBytes > 0 && size+1+len(changes[j].Hash) > maxBytes {
				break
			}
			size += 1 + len(changes[j].Hash)
			all[j] = changes[j].Hash
			j++
		}
		chunks = append(chunks, Chunk{Audience: c.Audience, List: c.List, Op: c.Op, Hashes: all[i:j:j]})
		i = j
	}
	return chunks, true
}

func sameGroup(a, b *Change) bool {
	return a.Audience == b.Audience && a.List == b.List && a.Op == b.Op
}

// compareGroup orders changes by audience (namespace, then ID), list type and op.
func compareGroup(a, b Change) int {
	return cmp.Or(
		strings.Compare(a.Audience.Namespace, b.Audience.Namespace),
		strings.Compare(a.Audience.ID, b.Audience.ID),
		strings.Compare(string(a.List), string(b.List)),
		strings.Compare(string(a.Op), string(b.Op)),
	)
}
