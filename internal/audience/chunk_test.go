package audience

import (
	"fmt"
	"slices"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
)

// chunkRow is a Chunk written out with its audience key.
type chunkRow struct {
	Aud    string
	List   ListType
	Op     Op
	Hashes []string
}

func chunkRows(chunks []Chunk) []chunkRow {
	var out []chunkRow
	for _, c := range chunks {
		out = append(out, chunkRow{c.Audience.Key(), c.List, c.Op, c.Hashes})
	}
	return out
}

func TestGroupChunks(t *testing.T) {
	a, b := Ref{"ups", "a"}, Ref{"ups", "b"}
	hs := make([]string, 12)
	for i := range hs {
		hs[i] = sha(fmt.Sprint(i))
	}
	slices.Sort(hs)
	mk := func(aud Ref, l ListType, op Op, idx ...int) []Change {
		var out []Change
		for _, i := range idx {
			out = append(out, Change{Audience: aud, List: l, Op: op, Hash: hs[i], EventTime: at(0)})
		}
		return out
	}
	sorted := slices.Concat(
		mk(a, ListEmail, OpAdd, 0, 1, 2, 3, 4),
		mk(a, ListEmail, OpRemove, 5),
		mk(a, ListMAID, OpAdd, 6, 7),
		mk(b, ListEmail, OpAdd, 8),
	)
	tests := []struct {
		name                 string
		in                   []Change
		maxRecords, maxBytes int
		want                 []chunkRow
	}{
		{name: "nothing", in: nil},
		{
			name: "by audience, list and op; default bounds",
			in:   sorted,
			want: []chunkRow{
				{"ups:a", ListEmail, OpAdd, hs[0:5]},
				{"ups:a", ListEmail, OpRemove, hs[5:6]},
				{"ups:a", ListMAID, OpAdd, hs[6:8]},
				{"ups:b", ListEmail, OpAdd, hs[8:9]},
			},
		},
		{
			name: "record count bound",
			in:   sorted, maxRecords: 2,
			want: []chunkRow{
				{"ups:a", ListEmail, OpAdd, hs[0:2]},
				{"ups:a", ListEmail, OpAdd, hs[2:4]},
				{"ups:a", ListEmail, OpAdd, hs[4:5]},
				{"ups:a", ListEmail, OpRemove, hs[5:6]},
				{"ups:a", ListMAID, OpAdd, hs[6:8]},
				{"ups:b", ListEmail, OpAdd, hs[8:9]},
			},
		},
		{
			name: "byte bound: 64 bytes a record plus a comma between",
			in:   sorted[:5], maxBytes: 64*3 + 2,
			want: []chunkRow{
				{"ups:a", ListEmail, OpAdd, hs[0:3]},
				{"ups:a", ListEmail, OpAdd, hs[3:5]},
			},
		},
		{
			name: "byte bound one short of three records",
			in:   sorted[:5], maxBytes: 64*3 + 1,
			want: []chunkRow{
				{"ups:a", ListEmail, OpAdd, hs[0:2]},
				{"ups:a", ListEmail, OpAdd, hs[2:4]},
				{"ups:a", ListEmail, OpAdd, hs[4:5]},
			},
		},
		{
			name: "a record over the byte bound goes alone",
			in:   sorted[:2], maxBytes: 10,
			want: []chunkRow{
				{"ups:a", ListEmail, OpAdd, hs[0:1]},
				{"ups:a", ListEmail, OpAdd, hs[1:2]},
			},
		},
		{
			name: "unsorted input is sorted first, keeping the order within a group",
			in:   slices.Concat(mk(b, ListEmail, OpAdd, 8), mk(a, ListEmail, OpAdd, 3, 1), mk(a, ListMAID, OpAdd, 6), mk(a, ListEmail, OpAdd, 0)),
			want: []chunkRow{
				{"ups:a", ListEmail, OpAdd, []string{hs[3], hs[1], hs[0]}},
				{"ups:a", ListMAID, OpAdd, hs[6:7]},
				{"ups:b", ListEmail, OpAdd, hs[8:9]},
			},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got := GroupChunks(tt.in, tt.maxRecords, tt.maxBytes)
			if diff := cmp.Diff(tt.want, chunkRows(got)); diff != "" {
				t.Errorf("GroupChunks (-want +got):\n%s", diff)
			}
			// Appending to one chunk must not overwrite the next.
			if len(got) > 1 {
				before := slices.Clone(got[1].Hashes)
				_ = append(got[0].Hashes, "x")
				if !slices.Equal(before, got[1].Hashes) {
					t.Error("chunks share spare capacity")
				}
			}
			for _, c := range got {
				if tt.maxBytes > 0 && len(c.Hashes) > 1 && len(strings.Join(c.Hashes, ",")) > tt.maxBytes {
					t.Errorf("chunk of %d bytes over %d", len(strings.Join(c.Hashes, ",")), tt.maxBytes)
				}
			}
		})
	}
}

// TestGroupChunksDefault cuts at DefaultMaxRecords.
func TestGroupChunksDefault(t *testing.T) {
	changes := make([]Change, DefaultMaxRecords*2+1)
	for i := range changes {
		changes[i] = Change{Audience: Ref{"ups", "a"}, List: ListEmail, Op: OpAdd, Hash: sha(fmt.Sprint(i))}
	}
	var sizes []int
	for _, c := range GroupChunks(changes, 0, 0) {
		sizes = append(sizes, len(c.Hashes))
	}
	if !slices.Equal(sizes, []int{DefaultMaxRecords, DefaultMaxRecords, 1}) {
		t.Errorf("chunk sizes %v", sizes)
	}
}
