package ledger

import (
	"context"
	"errors"
	"fmt"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb/types"
)

var _ Owning = (*Dynamo)(nil)

// Own records id as list's owner on its list item (see Owning). The ledger
// knows the list: its rows were sent.
func (d *Dynamo) Own(ctx context.Context, list List, id string) error {
	if id == "" {
		return fmt.Errorf("own list %s: the Pinterest list ID is empty", list.Key())
	}
	_, err := d.client.UpdateItem(ctx, &dynamodb.UpdateItemInput{
		TableName:                 aws.String(d.table),
		Key:                       listKeyAttrs(list.Key()),
		ConditionExpression:       aws.String("attribute_exists(" + dynPK + ")"),
		UpdateExpression:          aws.String("SET " + dynOwner + " = :o REMOVE " + dynFlip), // f: see endApplying
		ExpressionAttributeValues: map[string]types.AttributeValue{":o": attrS(id)},
	})
	var ccf *types.ConditionalCheckFailedException
	if errors.As(err, &ccf) {
		return fmt.Errorf("own list %s: the ledger has no such list", list.Key())
	}
	if err != nil {
		return fmt.Errorf("own list %s: %w", list.Key(), err)
	}
	return nil
}

// Owner returns list's owner, "" when none is recorded (see Owning).
func (d *Dynamo) Owner(ctx context.Context, list List) (string, error) {
	out, err := d.client.GetItem(ctx, &dynamodb.GetItemInput{
		TableName: aws.String(d.table), Key: listKeyAttrs(list.Key()), ConsistentRead: aws.Bool(true),
		ProjectionExpression: aws.String(dynOwner),
	})
	if err != nil {
		return "", fmt.Errorf("read the owner of list %s: %w", list.Key(), err)
	}
	o, _ := out.Item[dynOwner].(*types.AttributeValueMemberS)
	if o == nil {
		return "", nil
	}
	return o.Value, nil
}

// Disown forgets list's owner, then resets its rows to Unknown (ResetList;
// see Owning). An Apply that read the owner before it was forgotten may
// write new rows as out after the reset; it finds the owner gone at its
// end and resets those rows itself (endApplying).
func (d *Dynamo) Disown(ctx context.Context, list List) (int64, error) {
	_, err := d.client.UpdateItem(ctx, &dynamodb.UpdateItemInput{
		TableName:           aws.String(d.table),
		Key:                 listKeyAttrs(list.Key()),
		ConditionExpression: aws.String("attribute_exists(" + dynPK + ")"),     // no item made for a list unknown
		UpdateExpression:    aws.String("REMOVE " + dynOwner + ", " + dynFlip), // f: see endApplying
	})
	var ccf *types.ConditionalCheckFailedException
	if err != nil && !errors.As(err, &ccf) {
		return 0, fmt.Errorf("disown list %s: forget the owner: %w", list.Key(), err)
	}
	n, err := d.ResetList(ctx, list, Unknown)
	if err != nil {
		return 0, fmt.Errorf("disown list %s: %w", list.Key(), err)
	}
	return n, nil
}
