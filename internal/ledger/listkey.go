package ledger

import (
	"fmt"
	"slices"
	"strings"

	"github.com/pinlist/pinlist/internal/audience"
)

// ParseListKey is the inverse of List.Key: it reads "ns:id/TYPE" back into
// a List, for the DynamoDB stream consumer, which learns its lists from the
// rows' sort keys. It fails on a key List.Key could not have made from a
// valid audience (audience.Ref.Validate) and list type (audience.ListTypes).
// The error never quotes the key beyond its length.
func ParseListKey(key string) (List, error) {
	slash := strings.LastIndexByte(key, '/')
	if slash < 0 {
		return List{}, fmt.Errorf("parse list key (%d bytes): no '/' before the list type", len(key))
	}
	typ := audience.ListType(key[slash+1:])
	if !slices.Contains(audience.ListTypes, typ) {
		return List{}, fmt.Errorf("parse list key (%d bytes): unknown list type", len(key))
	}
	ns, id, ok := strings.Cut(key[:slash], ":")
	if !ok {
		return List{}, fmt.Errorf("parse list key (%d bytes): no ':' between namespace and audience ID", len(key))
	}
	ref := audience.Ref{Namespace: ns, ID: id}
	if err := ref.Validate(); err != nil {
		return List{}, fmt.Errorf("parse list key (%d bytes): %w", len(key), err)
	}
	return List{Audience: ref, Type: typ}, nil
}
