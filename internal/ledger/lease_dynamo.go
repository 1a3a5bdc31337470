package ledger

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"strconv"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb/types"
)

// The lease items of the ledger table: pk = "lease#" + List.Key(), sk =
// "lease"; o = the holder (random per Acquire), u = until when it holds
// (Unix milliseconds; 0 once released), x = the table's TTL, a day after u,
// so a list's lease item goes away a day after its last flush. They carry
// no f, so the stream filter drops their writes.
const (
	dynLeasePrefix = "lease#"
	dynLeaseSK     = "lease"
	dynLeaseOwner  = "o"
	dynLeaseUntil  = "u"

	// leaseKeep is how long after a lease ends its item stays (its TTL).
	leaseKeep = 24 * time.Hour
)

// ErrLeaseHeld is what DynamoLeases.Acquire answers when another holder's
// lease on the list has not expired.
var ErrLeaseHeld = errors.New("another flush holds the list's lease")

// DynamoLeases are per-list leases in the ledger table: the upload
// functions' invocations (one per stream shard, and the schedule's sweep)
// take a list's lease around its flush, so that no two flush one list at
// once (which would send rows twice, or create the list twice). A holder
// that crashes is overtaken once its lease expires.
type DynamoLeases struct {
	client DynamoAPI
	table  string
	now    func() time.Time
}

// NewDynamoLeases returns the leases in the ledger table opts.Table (only
// Client, Table and Now are read; Client and Table are required). It makes
// no calls.
func NewDynamoLeases(opts DynamoOptions) (*DynamoLeases, error) {
	switch {
	case opts.Client == nil:
		return nil, errors.New("new DynamoDB leases: Client is required")
	case opts.Table == "":
		return nil, errors.New("new DynamoDB leases: Table is required")
	}
	l := &DynamoLeases{client: opts.Client, table: opts.Table, now: opts.Now}
	if l.now == nil {
		l.now = time.Now
	}
	return l, nil
}

func leaseKey(l List) map[string]types.AttributeValue {
	return map[string]types.AttributeValue{dynPK: attrS(dynLeasePrefix + l.Key()), dynSK: attrS(dynLeaseSK)}
}

// Acquire takes list's lease until the given time with one conditional
// PutItem: it succeeds when no lease item exists, or the one there has
// expired (or was released). It answers ErrLeaseHeld when another holder's
// lease is still running. release gives the lease up (a conditional write
// that only its own holder's lease passes); releasing a lease that was
// overtaken after it expired is an error saying so, and changes nothing.
func (d *DynamoLeases) Acquire(ctx context.Context, list List, until time.Time) (release func(context.Context) error, err error) {
	var b [16]byte
	if _, err := rand.Read(b[:]); err != nil {
		return nil, fmt.Errorf("take the lease of list %s: make a holder ID: %w", list.Key(), err)
	}
	owner := hex.EncodeToString(b[:])
	item := leaseKey(list)
	item[dynLeaseOwner] = attrS(owner)
	item[dynLeaseUntil] = attrN(until.UnixMilli())
	item[dynExpires] = attrN(until.Add(leaseKeep).Unix())
	_, err = d.client.PutItem(ctx, &dynamodb.PutItemInput{
		TableName:                 aws.String(d.table),
		Item:                      item,
		ConditionExpression:       aws.String("attribute_not_exists(" + dynPK + ") OR " + dynLeaseUntil + " <= :now"),
		ExpressionAttributeValues: map[string]types.AttributeValue{":now": attrN(d.now().UnixMilli())},
	})
	var failed *types.ConditionalCheckFailedException
	if errors.As(err, &failed) {
		return nil, fmt.Errorf("take the lease of list %s: %w", list.Key(), ErrLeaseHeld)
	}
	if err != nil {
		return nil, fmt.Errorf("take the lease of list %s: %w", list.Key(), err)
	}
	return func(ctx context.Context) error {
		_, err := d.client.UpdateItem(ctx, &dynamodb.UpdateItemInput{
			TableName:           aws.String(d.table),
			Key:                 leaseKey(list),
			UpdateExpression:    aws.String("SET " + dynLeaseUntil + " = :zero"),
			ConditionExpression: aws.String(dynLeaseOwner + " = :me"),
			ExpressionAttributeValues: map[string]types.AttributeValue{
				":zero": attrN(0), ":me": attrS(owner),
			},
		})
		if errors.As(err, &failed) {
			return fmt.Errorf("release the lease of list %s: it expired and another flush took it over", list.Key())
		}
		if err != nil {
			return fmt.Errorf("release the lease of list %s (it expires %s): %w", list.Key(), until.UTC().Format(time.RFC3339), err)
		}
		return nil
	}, nil
}

// leaseUntil is for tests: the lease item's u, or -1 when there is none.
func (d *DynamoLeases) leaseUntil(ctx context.Context, list List) (int64, error) {
	out, err := d.client.GetItem(ctx, &dynamodb.GetItemInput{TableName: aws.String(d.table), Key: leaseKey(list), ConsistentRead: aws.Bool(true)})
	if err != nil {
		return 0, err
	}
	v, ok := out.Item[dynLeaseUntil].(*types.AttributeValueMemberN)
	if !ok {
		return -1, nil
	}
	return strconv.ParseInt(v.Value, 10, 64)
}
