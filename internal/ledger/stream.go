package ledger

import (
	"errors"

	"github.com/aws/aws-lambda-go/events"
)

// PendingFromStream reads a row's pending state from the new image of a
// DynamoDB Streams record of the ledger table (the records
// DynamoStreamFilter passes): the row's list key (Dynamo.ListByKey turns it
// into a List) and the Pending to send, without waiting for the eventually
// consistent pending index. ok is false for an image that is not a pending
// row (a counter or list item, a row already sent, a malformed image).
func PendingFromStream(image map[string]events.DynamoDBAttributeValue) (listKey string, p Pending, ok bool) {
	str := func(name string) (string, bool) {
		v, ok := image[name]
		if !ok || v.DataType() != events.DataTypeString {
			return "", false
		}
		return v.String(), true
	}
	hash, ok1 := str(dynPK)
	key, ok2 := str(dynSK)
	prec, ok3 := str(dynPrec)
	_, pending := str(dynPending)
	w, hasWant := image[dynWant]
	if !ok1 || !ok2 || !ok3 || !pending || !hasWant || w.DataType() != events.DataTypeNumber || !isHash(hash) {
		return "", Pending{}, false
	}
	var op = opFor(In)
	switch w.Number() {
	case "1":
	case "2":
		op = opFor(Out)
	default:
		return "", Pending{}, false
	}
	return key, Pending{Hash: hash, Op: op, Precedence: prec}, true
}

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
