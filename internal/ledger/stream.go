package ledger

import (
	"errors"

	"github.com/aws/aws-lambda-go/events"
)

// StreamList reads which list a ledger table stream record is about from
// its keys: a row (pk the identifier hash, sk the List.Key(); the flip of
// a row) or a list item (pk "lists", sk the List.Key(); the end of an Apply
// that flipped rows of the list, see Applying). Any other item is an error.
func StreamList(keys map[string]events.DynamoDBAttributeValue) (List, error) {
	pk, sk := keys[dynPK], keys[dynSK]
	if pk.DataType() != events.DataTypeString || sk.DataType() != events.DataTypeString {
		return List{}, errors.New("record keys pk and sk are not both strings")
	}
	if h := pk.String(); h != dynListsPK && !isHash(h) {
		return List{}, errors.New("record is neither of a ledger row (pk is not a SHA-256 hash) nor of a list item")
	}
	return ParseListKey(sk.String())
}
