package audience

import (
	"errors"
	"fmt"
	"strings"
)

// MaxRefKey is the longest audience key (Ref.Key) pinlist accepts: the
// length limit of an SQS FIFO message group ID, which the key becomes.
const MaxRefKey = 128

// Validate checks that r can name an audience's customer lists and its queue
// message group: a namespace and an ID of printable ASCII without spaces
// (the SQS message group ID alphabet), no ':' in the namespace (the key's
// separator), and a key of at most MaxRefKey bytes.
func (r Ref) Validate() error {
	switch {
	case r.Namespace == "":
		return errors.New("audience namespace is empty")
	case r.ID == "":
		return errors.New("audience ID is empty")
	case len(r.Namespace)+1+len(r.ID) > MaxRefKey:
		return fmt.Errorf("audience key is longer than %d bytes", MaxRefKey)
	}
	for i := 0; i < len(r.Namespace); i++ {
		if c := r.Namespace[i]; c <= ' ' || c >= 0x7f || c == ':' {
			return errors.New("audience namespace has a character other than printable ASCII without space and ':'")
		}
	}
	for i := 0; i < len(r.ID); i++ {
		if c := r.ID[i]; c <= ' ' || c >= 0x7f {
			return errors.New("audience ID has a character other than printable ASCII without space")
		}
	}
	return nil
}

// ParseKey is the inverse of Ref.Key: the namespace is what precedes the
// first ':' (a namespace has none), the ID the rest.
func ParseKey(key string) (Ref, error) {
	ns, id, _ := strings.Cut(key, ":")
	r := Ref{Namespace: ns, ID: id}
	if err := r.Validate(); err != nil {
		return Ref{}, fmt.Errorf("audience key: %w", err)
	}
	return r, nil
}
