package ledger

import (
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
