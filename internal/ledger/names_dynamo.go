package ledger

import (
	"context"
	"errors"
	"fmt"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb/types"

	"github.com/pinlist/pinlist/internal/audience"
)

// The name items of the ledger table: pk = "name#" + the audience key, sk =
// "name"; nm = the name, ds = the description (absent when empty). The
// prefix keeps them apart from rows (whose pk is 64 hex digits), counters
// ("n#...") and the list items ("lists"); they carry no f, so the stream
// filter drops their writes.
const (
	dynNamePrefix = "name#"
	dynNameSK     = "name"
	dynName       = "nm"
	dynDesc       = "ds"
)

// DynamoNames is the AWS name store (Names): one item per audience in the
// ledger table.
type DynamoNames struct {
	client DynamoAPI
	table  string
}

var _ Names = (*DynamoNames)(nil)

// NewDynamoNames returns the name store in the ledger table opts.Table
// (only Client and Table are read; both are required). It makes no calls.
func NewDynamoNames(opts DynamoOptions) (*DynamoNames, error) {
	switch {
	case opts.Client == nil:
		return nil, errors.New("new DynamoDB name store: Client is required")
	case opts.Table == "":
		return nil, errors.New("new DynamoDB name store: Table is required")
	}
	return &DynamoNames{client: opts.Client, table: opts.Table}, nil
}

func nameKey(a audience.Ref) map[string]types.AttributeValue {
	return map[string]types.AttributeValue{dynPK: attrS(dynNamePrefix + a.Key()), dynSK: attrS(dynNameSK)}
}

// SetName records a's name with one unconditional PutItem (the last wins).
func (n *DynamoNames) SetName(ctx context.Context, a audience.Ref, name AudienceName) error {
	item := nameKey(a)
	item[dynName] = attrS(name.Name)
	if name.Description != "" {
		item[dynDesc] = attrS(name.Description)
	}
	if _, err := n.client.PutItem(ctx, &dynamodb.PutItemInput{TableName: aws.String(n.table), Item: item}); err != nil {
		return fmt.Errorf("record the name of audience %s: %w", a.Key(), err)
	}
	return nil
}

// Name reads a's name (strongly consistent: the flush that creates a list
// may run a moment after the apply that recorded its name).
func (n *DynamoNames) Name(ctx context.Context, a audience.Ref) (AudienceName, error) {
	out, err := n.client.GetItem(ctx, &dynamodb.GetItemInput{
		TableName: aws.String(n.table), Key: nameKey(a), ConsistentRead: aws.Bool(true),
	})
	if err != nil {
		return AudienceName{}, fmt.Errorf("read the name of audience %s: %w", a.Key(), err)
	}
	var name AudienceName
	for attr, dst := range map[string]*string{dynName: &name.Name, dynDesc: &name.Description} {
		switch v := out.Item[attr].(type) {
		case nil:
		case *types.AttributeValueMemberS:
			*dst = v.Value
		default:
			return AudienceName{}, fmt.Errorf("read the name of audience %s: attribute %s is a %T, want a string", a.Key(), attr, v)
		}
	}
	return name, nil
}
