package ledger

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"strconv"
	"sync"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb/types"

	"github.com/pinlist/pinlist/internal/audience"
	"github.com/pinlist/pinlist/internal/retry"
)

// The DynamoDB ledger table (see DynamoTableInput, which template.yaml
// mirrors). One table, on demand, key (pk, sk), three kinds of item:
//
//   - a row: pk = the identifier hash (64 hex digits, so rows spread over
//     every partition and no list is a hot key; all lists of one person sit
//     under one pk, which is what erasure needs), sk = List.Key();
//     w = Want, s = Sent (State numbers), p = Precedence;
//     g = "LIST#OP#D" (D the hash's first hex digit) only while the row is
//     pending, so the sparse index "pending" holds exactly the pending rows,
//     a busy list spread over 16 index keys per op;
//     f = the precedence of the flip, only on the write that flipped the row
//     (Outcome Flip), so a Streams filter on NewImage.f passes the real
//     changes and drops no-ops, reverts and MarkSent writes;
//     x = expiry in Unix seconds (the table's TTL attribute), only while the
//     row is out and sent (DynamoOptions.OutTTL).
//   - a member counter: pk = "n#" + List.Key() + "#" + the hash's first two
//     hex digits, sk = "n"; n = the count of that shard's rows that are In.
//     A flip that moves the count writes the row and ADDs to its counter in
//     one TransactWriteItems, so a retried change (a stream or SQS
//     redelivery) fails the row's condition and never counts twice; 256
//     shards per list keep concurrent transactions off each other's items.
//   - a list: pk = "lists", sk = List.Key(); ns, aid, lt = the list's
//     parts, written by every Apply that writes the list's rows (Members
//     and PendingLists enumerate lists from it); o = the ID of the
//     Pinterest list pinlist created for it (see Owning), only while one
//     is recorded; a, hd and f: the marks of the Applies writing it now
//     and the flushes' hold (see applying_dynamo.go).
//   - an erasure guard (see Keeper): pk = the identifier hash, sk =
//     "erased/" + the list type (a list key always holds a ':', this never
//     does); p = the greatest erasure precedence, x = until (the TTL
//     attribute). It has no w, g or f: the pending index, the Streams
//     filter and the row scans never see it.
const (
	dynPK       = "pk"
	dynSK       = "sk"
	dynWant     = "w"
	dynSent     = "s"
	dynPrec     = "p"
	dynPending  = "g"
	dynFlip     = "f"
	dynExpires  = "x"
	dynCount    = "n"
	dynNS       = "ns"
	dynAudience = "aid"
	dynType     = "lt"
	dynOwner    = "o"

	dynListsPK   = "lists"
	dynCounterSK = "n"
	dynGuardSK   = "erased/"

	// DynamoPendingIndex is the name of the sparse index of pending rows.
	DynamoPendingIndex = "pending"
	// DynamoTTLAttribute is the attribute the table's TTL reads.
	DynamoTTLAttribute = dynExpires
	// DynamoStreamFilter is the Lambda event filter pattern that passes only
	// the stream records of real flips (rows just made pending) and of the
	// ends of the Applies that made them (list items; see Applying).
	DynamoStreamFilter = `{"dynamodb":{"NewImage":{"f":{"S":[{"exists":true}]}}}}`

	// pendingShards is how many index keys one list and op spread over (the
	// hash's first hex digit).
	pendingShards = 16
	// counterShards is how many counter items one list spreads over (the
	// hash's first two hex digits).
	counterShards = 256

	// dynBatchGet is the most keys one BatchGetItem takes.
	dynBatchGet = 100
)

// Defaults of the DynamoDB store.
const (
	// DefaultOutTTL is how long a row that is out (and Pinterest has it out)
	// stays before DynamoDB's TTL deletes it. A change older than the row
	// that arrives after that would apply again (the row is unknown then),
	// and the next exit of such a person is sent once more (harmless), so
	// it is far longer than any redelivery or replay.
	DefaultOutTTL = 180 * 24 * time.Hour
	// DefaultDynamoConcurrency is how many writes one call keeps in flight.
	DefaultDynamoConcurrency = 16
)

// dynRetry is the policy for throttled batch reads (unprocessed keys) and
// transaction conflicts: the SDK retries throttling of whole calls itself.
var dynRetry = retry.Policy{Attempts: 10, Base: 20 * time.Millisecond, Max: 2 * time.Second}

// DynamoAPI is the part of *dynamodb.Client the store uses.
type DynamoAPI interface {
	BatchGetItem(context.Context, *dynamodb.BatchGetItemInput, ...func(*dynamodb.Options)) (*dynamodb.BatchGetItemOutput, error)
	GetItem(context.Context, *dynamodb.GetItemInput, ...func(*dynamodb.Options)) (*dynamodb.GetItemOutput, error)
	PutItem(context.Context, *dynamodb.PutItemInput, ...func(*dynamodb.Options)) (*dynamodb.PutItemOutput, error)
	UpdateItem(context.Context, *dynamodb.UpdateItemInput, ...func(*dynamodb.Options)) (*dynamodb.UpdateItemOutput, error)
	TransactWriteItems(context.Context, *dynamodb.TransactWriteItemsInput, ...func(*dynamodb.Options)) (*dynamodb.TransactWriteItemsOutput, error)
	Query(context.Context, *dynamodb.QueryInput, ...func(*dynamodb.Options)) (*dynamodb.QueryOutput, error)
	// For the promises (dynamo_promises.go): resync, repair, retirement.
	Scan(context.Context, *dynamodb.ScanInput, ...func(*dynamodb.Options)) (*dynamodb.ScanOutput, error)
	BatchWriteItem(context.Context, *dynamodb.BatchWriteItemInput, ...func(*dynamodb.Options)) (*dynamodb.BatchWriteItemOutput, error)
}

// DynamoOptions configure NewDynamo.
type DynamoOptions struct {
	// Client is the DynamoDB client, required.
	Client DynamoAPI
	// Table is the ledger table's name, required.
	Table string
	// OutTTL is how long a row that is out and sent lives on (its TTL
	// attribute). Default DefaultOutTTL.
	OutTTL time.Duration
	// Concurrency bounds the writes one call has in flight. Default
	// DefaultDynamoConcurrency.
	Concurrency int
	// Now is the clock for TTLs; default time.Now.
	Now func() time.Time
	// Logger tells of retried conflicts; nil means slog.Default().
	Logger *slog.Logger
	// ErasureGuard is how long an erased identifier's guard item (and its
	// erased rows, once Pinterest has the removal) are kept from the
	// erasure (see Keeper): their TTL. Default config.DefaultErasureGuard.
	ErasureGuard time.Duration
}

// Dynamo is the AWS ledger store: one DynamoDB table (see the constants
// above for its items).
type Dynamo struct {
	client      DynamoAPI
	table       string
	outTTL      time.Duration
	concurrency int
	now         func() time.Time
	log         *slog.Logger

	guard time.Duration
	known sync.Map // list key → List: list items read by ListByKey
}

var _ Store = (*Dynamo)(nil)

// NewDynamo returns the store; it makes no calls.
func NewDynamo(opts DynamoOptions) (*Dynamo, error) {
	switch {
	case opts.Client == nil:
		return nil, errors.New("new DynamoDB ledger: Client is required")
	case opts.Table == "":
		return nil, errors.New("new DynamoDB ledger: Table is required")
	case opts.OutTTL < 0:
		return nil, fmt.Errorf("new DynamoDB ledger: OutTTL %v is negative", opts.OutTTL)
	case opts.Concurrency < 0:
		return nil, fmt.Errorf("new DynamoDB ledger: Concurrency %d is negative", opts.Concurrency)
	}
	d := &Dynamo{
		client: opts.Client, table: opts.Table, outTTL: opts.OutTTL,
		concurrency: opts.Concurrency, now: opts.Now, log: opts.Logger,
	}
	if d.outTTL == 0 {
		d.outTTL = DefaultOutTTL
	}
	var err error
	if d.guard, err = guardOrDefault("ErasureGuard", opts.ErasureGuard); err != nil {
		return nil, fmt.Errorf("new DynamoDB ledger: %w", err)
	}
	if d.concurrency == 0 {
		d.concurrency = DefaultDynamoConcurrency
	}
	if d.now == nil {
		d.now = time.Now
	}
	if d.log == nil {
		d.log = slog.Default()
	}
	return d, nil
}

// DynamoTableInput describes the ledger table named name: on-demand, key
// (pk S, sk S), the sparse index "pending" (key g S, projecting p), a stream
// of new images. TTL on attribute x is set apart (UpdateTimeToLive).
// template.yaml mirrors it:
//
//	LedgerTable:
//	  Type: AWS::DynamoDB::Table
//	  Properties:
//	    BillingMode: PAY_PER_REQUEST
//	    AttributeDefinitions:
//	      - {AttributeName: pk, AttributeType: S}
//	      - {AttributeName: sk, AttributeType: S}
//	      - {AttributeName: g, AttributeType: S}
//	    KeySchema:
//	      - {AttributeName: pk, KeyType: HASH}
//	      - {AttributeName: sk, KeyType: RANGE}
//	    GlobalSecondaryIndexes:
//	      - IndexName: pending
//	        KeySchema: [{AttributeName: g, KeyType: HASH}]
//	        Projection: {ProjectionType: INCLUDE, NonKeyAttributes: [p]}
//	    StreamSpecification: {StreamViewType: NEW_IMAGE}
//	    TimeToLiveSpecification: {AttributeName: x, Enabled: true}
//
// The stream's event source mapping takes FilterCriteria with the pattern
// DynamoStreamFilter. The store needs dynamodb:BatchGetItem, GetItem,
// PutItem, UpdateItem and Query on the table and Query on its index
// (TransactWriteItems is authorized per item as PutItem and UpdateItem).
func DynamoTableInput(name string) *dynamodb.CreateTableInput {
	str := func(n string) types.AttributeDefinition {
		return types.AttributeDefinition{AttributeName: aws.String(n), AttributeType: types.ScalarAttributeTypeS}
	}
	return &dynamodb.CreateTableInput{
		TableName:            aws.String(name),
		BillingMode:          types.BillingModePayPerRequest,
		AttributeDefinitions: []types.AttributeDefinition{str(dynPK), str(dynSK), str(dynPending)},
		KeySchema: []types.KeySchemaElement{
			{AttributeName: aws.String(dynPK), KeyType: types.KeyTypeHash},
			{AttributeName: aws.String(dynSK), KeyType: types.KeyTypeRange},
		},
		GlobalSecondaryIndexes: []types.GlobalSecondaryIndex{{
			IndexName: aws.String(DynamoPendingIndex),
			KeySchema: []types.KeySchemaElement{{AttributeName: aws.String(dynPending), KeyType: types.KeyTypeHash}},
			Projection: &types.Projection{
				ProjectionType:   types.ProjectionTypeInclude,
				NonKeyAttributes: []string{dynPrec},
			},
		}},
		StreamSpecification: &types.StreamSpecification{
			StreamEnabled:  aws.Bool(true),
			StreamViewType: types.StreamViewTypeNewImage,
		},
	}
}

// CreateDynamoTable creates the ledger table (DynamoTableInput), waits until
// it is active and turns TTL on. For tests and local setups; in AWS the
// template creates it.
func CreateDynamoTable(ctx context.Context, client *dynamodb.Client, name string) error {
	if _, err := client.CreateTable(ctx, DynamoTableInput(name)); err != nil {
		return fmt.Errorf("create ledger table %s: %w", name, err)
	}
	waiter := dynamodb.NewTableExistsWaiter(client, func(o *dynamodb.TableExistsWaiterOptions) {
		o.MinDelay = 100 * time.Millisecond
		o.MaxDelay = 2 * time.Second
	})
	if err := waiter.Wait(ctx, &dynamodb.DescribeTableInput{TableName: aws.String(name)}, 2*time.Minute); err != nil {
		return fmt.Errorf("wait for ledger table %s: %w", name, err)
	}
	_, err := client.UpdateTimeToLive(ctx, &dynamodb.UpdateTimeToLiveInput{
		TableName: aws.String(name),
		TimeToLiveSpecification: &types.TimeToLiveSpecification{
			AttributeName: aws.String(DynamoTTLAttribute), Enabled: aws.Bool(true),
		},
	})
	if err != nil {
		return fmt.Errorf("turn on TTL of ledger table %s: %w", name, err)
	}
	return nil
}

func attrS(s string) types.AttributeValue { return &types.AttributeValueMemberS{Value: s} }
func attrN(n int64) types.AttributeValue {
	return &types.AttributeValueMemberN{Value: strconv.FormatInt(n, 10)}
}

func listKeyAttrs(key string) map[string]types.AttributeValue {
	return map[string]types.AttributeValue{dynPK: attrS(dynListsPK), dynSK: attrS(key)}
}

func rowKeyAttrs(list List, hash string) map[string]types.AttributeValue {
	return map[string]types.AttributeValue{dynPK: attrS(hash), dynSK: attrS(list.Key())}
}

func counterKeyAttrs(list List, hash string) map[string]types.AttributeValue {
	return map[string]types.AttributeValue{
		dynPK: attrS("n#" + list.Key() + "#" + hash[:2]),
		dynSK: attrS(dynCounterSK),
	}
}

// pendingKey is the index key of list's pending rows for op in a shard.
func pendingKey(list List, op audience.Op, shard byte) string {
	return list.Key() + "#" + string(op) + "#" + string(shard)
}

const hexDigits = "0123456789abcdef"

// rowFromItem reads a row item's state into r (List and Hash set by the
// caller).
func rowFromItem(r *Row, item map[string]types.AttributeValue) error {
	p, ok := item[dynPrec].(*types.AttributeValueMemberS)
	if !ok {
		return errors.New("ledger item has no precedence")
	}
	w, err := stateAttr(item, dynWant)
	if err != nil {
		return err
	}
	s, err := stateAttr(item, dynSent)
	if err != nil {
		return err
	}
	r.Precedence, r.Want, r.Sent = p.Value, w, s
	return nil
}

func stateAttr(item map[string]types.AttributeValue, name string) (State, error) {
	n, ok := item[name].(*types.AttributeValueMemberN)
	if !ok {
		return 0, fmt.Errorf("ledger item has no number %s", name)
	}
	v, err := strconv.ParseUint(n.Value, 10, 8)
	if err != nil || v > uint64(Out) {
		return 0, fmt.Errorf("ledger item's %s = %q is no state", name, n.Value)
	}
	return State(v), nil
}

// rowItem is the full item of row r (written whole with PutItem, so the
// attributes that must be absent are).
func (d *Dynamo) rowItem(r Row, o Outcome) map[string]types.AttributeValue {
	item := rowKeyAttrs(r.List, r.Hash)
	item[dynWant] = attrN(int64(r.Want))
	item[dynSent] = attrN(int64(r.Sent))
	item[dynPrec] = attrS(r.Precedence)
	if r.Pending() {
		item[dynPending] = attrS(pendingKey(r.List, r.PendingOp(), r.Hash[0]))
	}
	if o == Flip {
		item[dynFlip] = attrS(r.Precedence)
	}
	if r.Want == Out && r.Sent == Out {
		item[dynExpires] = attrN(d.expiry())
	}
	return item
}

func (d *Dynamo) expiry() int64 { return d.now().Add(d.outTTL).Unix() }

// Apply records changes: an eventually consistent BatchGetItem drops the
// changes that cannot apply (precedence only grows, so a stale verdict from
// an old read holds), then each remaining change is one write conditional
// on the row being as read; a row that changed meanwhile is read again
// (consistently) and decided again. A flip that moves a member count writes
// the row and its counter in one transaction.
func (d *Dynamo) Apply(ctx context.Context, changes []audience.Change) (Result, error) {
	items, stale, err := prepare(changes)
	if err != nil {
		return Result{}, fmt.Errorf("apply %d changes to the ledger: check changes: %w", len(changes), err)
	}
	items, retired, err := d.dropRetired(ctx, items)
	if err != nil {
		return Result{}, fmt.Errorf("apply %d changes to the ledger: %w", len(changes), err)
	}
	res, _, err := d.applyItems(ctx, items, Result{Stale: stale + retired})
	if err != nil {
		return Result{}, fmt.Errorf("apply %d changes to the ledger: %w", len(changes), err)
	}
	return res, nil
}

// applyItems applies prepared items (see Apply), adding to res; it also
// returns the lists where a row flipped (became pending).
func (d *Dynamo) applyItems(ctx context.Context, items []item, res Result) (_ Result, _ []List, err error) {
	if len(items) == 0 {
		return res, nil, nil
	}
	// The lists are recorded before any guard is read (see Erase), and
	// marked as being written until every row is (see Applying).
	mark, err := d.markApplying(ctx, items)
	if err != nil {
		return Result{}, nil, err
	}
	var mu sync.Mutex
	flipped := map[string]List{}
	defer func() {
		// After a failure some rows may have flipped: wake every list.
		failed := err != nil
		d.endApplying(context.WithoutCancel(ctx), mark, func(l List) bool {
			_, ok := flipped[l.Key()]
			return ok || failed
		})
	}()
	cur, err := d.readRows(ctx, items)
	if err != nil {
		return Result{}, nil, err
	}
	// exists[i]: cur[i] is a stored row, not a missing one or a guard's
	// virtual row, so its write is conditional on it as read.
	exists := make([]bool, len(items))
	for i := range cur {
		exists[i] = cur[i].Precedence != ""
		if !exists[i] {
			cur[i] = absentRow(items[i].list, items[i].hash, items[i].owned)
		}
	}
	if err := d.readGuards(ctx, items, cur); err != nil {
		return Result{}, nil, err
	}
	var work []int
	for i, it := range items {
		dec := decide(cur[i], it.op, it.p)
		if dec.Outcome == Stale {
			res.Stale++
			continue
		}
		work = append(work, i)
	}
	err = d.parallel(ctx, len(work), func(ctx context.Context, j int) error {
		i := work[j]
		o, err := d.write(ctx, items[i], cur[i], exists[i])
		if err != nil {
			return err
		}
		mu.Lock()
		res.count(o)
		if o == Flip {
			flipped[items[i].list.Key()] = items[i].list
		}
		mu.Unlock()
		return nil
	})
	if err != nil {
		return Result{}, nil, err
	}
	var lists []List
	for _, l := range flipped {
		lists = append(lists, l)
	}
	sortLists(lists)
	return res, lists, nil
}

// readRows reads the rows of items (eventually consistent); a missing row
// is returned with only List and Hash set.
func (d *Dynamo) readRows(ctx context.Context, items []item) ([]Row, error) {
	rows := make([]Row, len(items))
	at := make(map[rowKey]int, len(items))
	keys := make([]map[string]types.AttributeValue, len(items))
	for i, it := range items {
		rows[i] = Row{List: it.list, Hash: it.hash}
		at[rowKey{list: it.list.Key(), hash: it.hash}] = i
		keys[i] = rowKeyAttrs(it.list, it.hash)
	}
	err := d.batchGet(ctx, keys, dynPK+", "+dynSK+", "+dynWant+", "+dynSent+", "+dynPrec, false,
		func(item map[string]types.AttributeValue) error {
			pk, _ := item[dynPK].(*types.AttributeValueMemberS)
			sk, _ := item[dynSK].(*types.AttributeValueMemberS)
			if pk == nil || sk == nil {
				return errors.New("ledger item without its key")
			}
			i, ok := at[rowKey{list: sk.Value, hash: pk.Value}]
			if !ok {
				return errors.New("batch read returned a row not asked for")
			}
			return rowFromItem(&rows[i], item)
		})
	if err != nil {
		return nil, fmt.Errorf("read ledger rows: %w", err)
	}
	return rows, nil
}

// batchGet reads keys (strongly consistent when consistent is set, else
// eventually) in calls of up to 100 keys, asking again for unprocessed keys
// with backoff, and hands each item found to fn (not concurrently).
func (d *Dynamo) batchGet(ctx context.Context, keys []map[string]types.AttributeValue, projection string, consistent bool, fn func(map[string]types.AttributeValue) error) error {
	for start := 0; start < len(keys); start += dynBatchGet {
		todo := keys[start:min(start+dynBatchGet, len(keys))]
		err := retry.Do(ctx, dynRetry, func(err error) bool { return errors.Is(err, errUnprocessed) },
			func(ctx context.Context) error {
				out, err := d.client.BatchGetItem(ctx, &dynamodb.BatchGetItemInput{
					RequestItems: map[string]types.KeysAndAttributes{
						d.table: {Keys: todo, ProjectionExpression: aws.String(projection), ConsistentRead: aws.Bool(consistent)},
					},
				})
				if err != nil {
					return fmt.Errorf("batch get: %w", err)
				}
				for _, item := range out.Responses[d.table] {
					if err := fn(item); err != nil {
						return err
					}
				}
				todo = out.UnprocessedKeys[d.table].Keys
				if len(todo) > 0 {
					return errUnprocessed
				}
				return nil
			}, nil)
		if err != nil {
			return err
		}
	}
	return nil
}

var errUnprocessed = errors.New("unprocessed keys left")

// write applies one change to the row read as cur (a stored row when
// exists, else a missing row or an erasure guard's virtual row) until the
// write succeeds or the change turns out stale; it returns the outcome.
func (d *Dynamo) write(ctx context.Context, it item, cur Row, exists bool) (Outcome, error) {
	for {
		dec := decide(cur, it.op, it.p)
		if dec.Outcome == Stale {
			return Stale, nil
		}
		var cond string
		vals := map[string]types.AttributeValue{}
		if !exists {
			cond = "attribute_not_exists(" + dynPK + ")"
		} else {
			cond = dynPrec + " = :p AND " + dynSent + " = :s"
			vals[":p"] = attrS(cur.Precedence)
			vals[":s"] = attrN(int64(cur.Sent))
		}
		item := d.rowItem(dec.Row, dec.Outcome)
		if it.until != 0 {
			d.guardItem(item, dec.Row, it.until)
		}
		put := &types.Put{
			TableName:           aws.String(d.table),
			Item:                item,
			ConditionExpression: aws.String(cond),
		}
		if len(vals) > 0 {
			put.ExpressionAttributeValues = vals
		}
		var conflicted bool
		err := retry.Do(ctx, dynRetry, isConflict, func(ctx context.Context) error {
			var err error
			conflicted, err = d.put(ctx, put, dec)
			return err
		}, func(attempt int, wait time.Duration, err error) {
			d.log.Debug("ledger write conflicted, retrying", "list", it.list.Key(), "attempt", attempt, "wait", wait)
		})
		if err != nil {
			return 0, fmt.Errorf("write ledger row of %s: %w", it.list.Key(), err)
		}
		if !conflicted {
			return dec.Outcome, nil
		}
		// The row changed since it was read: read it again and decide anew.
		if cur, exists, err = d.get(ctx, it.list, it.hash); err != nil {
			return 0, err
		}
		if !exists {
			cur = absentRow(it.list, it.hash, it.owned)
			if it.until == 0 {
				if cur, err = d.guardedRow(ctx, cur); err != nil {
					return 0, err
				}
			}
		}
	}
}

// put writes one row (with its counter when dec moves it); failed reports
// that the row's condition did not hold.
func (d *Dynamo) put(ctx context.Context, put *types.Put, dec Decision) (failed bool, err error) {
	if dec.Members == 0 {
		_, err := d.client.PutItem(ctx, &dynamodb.PutItemInput{
			TableName: put.TableName, Item: put.Item, ConditionExpression: put.ConditionExpression,
			ExpressionAttributeValues: put.ExpressionAttributeValues,
		})
		var ccf *types.ConditionalCheckFailedException
		if errors.As(err, &ccf) {
			return true, nil
		}
		return false, err
	}
	_, err = d.client.TransactWriteItems(ctx, &dynamodb.TransactWriteItemsInput{
		TransactItems: []types.TransactWriteItem{
			{Put: put},
			{Update: &types.Update{
				TableName:                 aws.String(d.table),
				Key:                       counterKeyAttrs(dec.Row.List, dec.Row.Hash),
				UpdateExpression:          aws.String("ADD " + dynCount + " :d"),
				ExpressionAttributeValues: map[string]types.AttributeValue{":d": attrN(dec.Members)},
			}},
		},
	})
	var canceled *types.TransactionCanceledException
	if errors.As(err, &canceled) && len(canceled.CancellationReasons) > 0 &&
		aws.ToString(canceled.CancellationReasons[0].Code) == "ConditionalCheckFailed" {
		return true, nil
	}
	return false, err
}

// isConflict reports whether err is a transaction conflict worth retrying.
func isConflict(err error) bool {
	var tce *types.TransactionConflictException
	if errors.As(err, &tce) {
		return true
	}
	var tip *types.TransactionInProgressException
	if errors.As(err, &tip) {
		return true
	}
	var canceled *types.TransactionCanceledException
	if errors.As(err, &canceled) {
		for _, r := range canceled.CancellationReasons {
			switch aws.ToString(r.Code) {
			case "TransactionConflict", "ThrottlingError", "ProvisionedThroughputExceeded":
				return true
			}
		}
	}
	return false
}

// parallel runs fn for 0..n-1 with at most d.concurrency at once and
// returns the first error (the others are cancelled).
func (d *Dynamo) parallel(ctx context.Context, n int, fn func(ctx context.Context, i int) error) error {
	if n == 0 {
		return nil
	}
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	var (
		wg       sync.WaitGroup
		once     sync.Once
		firstErr error
	)
	sem := make(chan struct{}, d.concurrency)
	for i := range n {
		select {
		case sem <- struct{}{}:
		case <-ctx.Done():
		}
		if ctx.Err() != nil {
			break
		}
		wg.Go(func() {
			defer func() { <-sem }()
			if err := fn(ctx, i); err != nil {
				once.Do(func() { firstErr = err; cancel() })
			}
		})
	}
	wg.Wait()
	if firstErr != nil {
		return firstErr
	}
	return ctx.Err()
}

// get reads one row consistently.
func (d *Dynamo) get(ctx context.Context, list List, hash string) (Row, bool, error) {
	out, err := d.client.GetItem(ctx, &dynamodb.GetItemInput{
		TableName: aws.String(d.table), Key: rowKeyAttrs(list, hash), ConsistentRead: aws.Bool(true),
	})
	if err != nil {
		return Row{}, false, fmt.Errorf("read ledger row of %s: %w", list.Key(), err)
	}
	r := Row{List: list, Hash: hash}
	if out.Item == nil {
		return r, false, nil
	}
	if err := rowFromItem(&r, out.Item); err != nil {
		return Row{}, false, fmt.Errorf("read ledger row of %s: %w", list.Key(), err)
	}
	return r, true, nil
}

// Get reads one row (strongly consistent).
func (d *Dynamo) Get(ctx context.Context, list List, hash string) (Row, bool, error) {
	return d.get(ctx, list, hash)
}

// Pending returns up to limit pending rows of list for op from the pending
// index, shard by shard. The index is eventually consistent: a row may show
// up just after it was sent or with an older precedence; MarkSent's
// condition on the row keeps that harmless.
func (d *Dynamo) Pending(ctx context.Context, list List, op audience.Op, limit int) ([]Pending, error) {
	if err := checkOp(op); err != nil {
		return nil, fmt.Errorf("read pending rows of %s: %w", list.Key(), err)
	}
	var out []Pending
	for shard := 0; shard < pendingShards && len(out) < limit; shard++ {
		var start map[string]types.AttributeValue
		for len(out) < limit {
			q, err := d.client.Query(ctx, &dynamodb.QueryInput{
				TableName:                 aws.String(d.table),
				IndexName:                 aws.String(DynamoPendingIndex),
				KeyConditionExpression:    aws.String(dynPending + " = :g"),
				ExpressionAttributeValues: map[string]types.AttributeValue{":g": attrS(pendingKey(list, op, hexDigits[shard]))},
				ProjectionExpression:      aws.String(dynPK + ", " + dynPrec),
				Limit:                     aws.Int32(int32(min(limit-len(out), 1000))),
				ExclusiveStartKey:         start,
			})
			if err != nil {
				return nil, fmt.Errorf("read pending %s rows of %s: %w", op, list.Key(), err)
			}
			for _, item := range q.Items {
				pk, ok1 := item[dynPK].(*types.AttributeValueMemberS)
				p, ok2 := item[dynPrec].(*types.AttributeValueMemberS)
				if !ok1 || !ok2 {
					return nil, fmt.Errorf("read pending %s rows of %s: index item without hash or precedence", op, list.Key())
				}
				out = append(out, Pending{Hash: pk.Value, Op: op, Precedence: p.Value})
			}
			if q.LastEvaluatedKey == nil {
				break
			}
			start = q.LastEvaluatedKey
		}
	}
	return out, nil
}

// MarkSent records that Pinterest has each row in op's state (see Store)
// with conditional writes that need no read; a row whose Want differs is
// pending (and marked a flip for the stream). A row now out and sent gets
// its expiry.
func (d *Dynamo) MarkSent(ctx context.Context, list List, op audience.Op, rows []Pending) error {
	if err := checkOp(op); err != nil {
		return fmt.Errorf("mark rows of %s sent: %w", list.Key(), err)
	}
	sent := stateFor(op)
	// Two conditional writes cover the two cases without a read: Want is
	// what was sent (no longer pending; an exit starts its TTL), or Want
	// is the other state (pending the other op, marked as a flip so the
	// stream brings it to a flusher). A row that changed between the two
	// tries is tried again.
	settled := "SET " + dynSent + " = :s REMOVE " + dynPending + ", " + dynFlip
	if sent == Out {
		// An erased row keeps its guard's expiry (dynErased).
		settled = "SET " + dynSent + " = :s, " + dynExpires + " = if_not_exists(" + dynErased + ", :x) REMOVE " + dynPending + ", " + dynFlip
	}
	other := opFor(In)
	if sent == In {
		other = opFor(Out)
	}
	unsettled := "SET " + dynSent + " = :s, " + dynPending + " = :g, " + dynFlip + " = " + dynPrec + " REMOVE " + dynExpires
	err := d.parallel(ctx, len(rows), func(ctx context.Context, i int) error {
		h := rows[i].Hash
		if !isHash(h) {
			return fmt.Errorf("row %d: hash is not 64 lowercase hex digits", i)
		}
		for range 4 {
			vals := map[string]types.AttributeValue{":s": attrN(int64(sent))}
			if sent == Out {
				vals[":x"] = attrN(d.expiry())
			}
			ok, err := d.updateRow(ctx, list, h, settled, dynWant+" = :s", vals)
			if ok || err != nil {
				return err
			}
			ok, err = d.updateRow(ctx, list, h, unsettled, "attribute_exists("+dynPK+") AND "+dynWant+" <> :s", map[string]types.AttributeValue{
				":s": attrN(int64(sent)), ":g": attrS(pendingKey(list, other, h[0])),
			})
			if ok || err != nil {
				return err
			}
			if _, found, err := d.get(ctx, list, h); err != nil || !found {
				return err // a row that is gone (TTL) has nothing to record
			}
		}
		return fmt.Errorf("row %d: changed under every try", i)
	})
	if err != nil {
		return fmt.Errorf("mark %d %s rows of %s sent: %w", len(rows), op, list.Key(), err)
	}
	return nil
}

// updateRow runs one conditional update of the row of hash in list; ok
// reports that the condition held.
func (d *Dynamo) updateRow(ctx context.Context, list List, hash, expr, cond string, vals map[string]types.AttributeValue) (ok bool, err error) {
	err = retry.Do(ctx, dynRetry, isConflict, func(ctx context.Context) error {
		_, err := d.client.UpdateItem(ctx, &dynamodb.UpdateItemInput{
			TableName:                 aws.String(d.table),
			Key:                       rowKeyAttrs(list, hash),
			ConditionExpression:       aws.String(cond),
			UpdateExpression:          aws.String(expr),
			ExpressionAttributeValues: vals,
		})
		return err
	}, nil)
	var ccf *types.ConditionalCheckFailedException
	if errors.As(err, &ccf) {
		return false, nil
	}
	return err == nil, err
}

// Sending records that rows are about to be sent as op (see Store):
// forgetSent of the state op takes them out of.
func (d *Dynamo) Sending(ctx context.Context, list List, op audience.Op, rows []Pending) error {
	if err := checkOp(op); err != nil {
		return fmt.Errorf("mark rows of %s as being sent: %w", list.Key(), err)
	}
	hashes := make([]string, len(rows))
	for i, r := range rows {
		hashes[i] = r.Hash
	}
	if err := d.forgetSent(ctx, list, hashes, otherState(op)); err != nil {
		return fmt.Errorf("mark %d rows of %s as being sent as %s: %w", len(rows), list.Key(), op, err)
	}
	return nil
}

// forgetSent makes Pinterest's state Unknown for those of list's rows (by
// hash) whose Sent is sent (In or Out). Before an ADD (sent Out): new
// members of a list pinlist created (and rows written as if it had, see
// endApplying), people who join again after their removal was sent; other
// new rows are Unknown already. Before a REMOVE (sent In): nearly every
// row, people whose ADD was sent. A strongly consistent read finds them,
// and only those are written: Sent becomes Unknown, and a row whose Want is
// sent by now (it flipped back since it was read) becomes pending (marked a
// flip for the stream) and loses any expiry.
func (d *Dynamo) forgetSent(ctx context.Context, list List, hashes []string, sent State) error {
	keys := make([]map[string]types.AttributeValue, len(hashes))
	for i, h := range hashes {
		if !isHash(h) {
			return fmt.Errorf("row %d: hash is not 64 lowercase hex digits", i)
		}
		keys[i] = rowKeyAttrs(list, h)
	}
	var hits []string
	err := d.batchGet(ctx, keys, dynPK+", "+dynSent, true, func(item map[string]types.AttributeValue) error {
		s, err := stateAttr(item, dynSent)
		if err != nil {
			return err
		}
		if pk, ok := item[dynPK].(*types.AttributeValueMemberS); ok && s == sent {
			hits = append(hits, pk.Value)
		}
		return nil
	})
	if err != nil {
		return fmt.Errorf("read them: %w", err)
	}
	other := otherState(opFor(sent)) // the state the rows are going to
	unknown, sentAttr, otherAttr := attrN(int64(Unknown)), attrN(int64(sent)), attrN(int64(other))
	return d.parallel(ctx, len(hits), func(ctx context.Context, i int) error {
		h := hits[i]
		for range 4 {
			ok, err := d.updateRow(ctx, list, h, "SET "+dynSent+" = :u",
				dynWant+" = :other AND "+dynSent+" = :sent",
				map[string]types.AttributeValue{":u": unknown, ":other": otherAttr, ":sent": sentAttr})
			if ok || err != nil {
				return err
			}
			ok, err = d.updateRow(ctx, list, h,
				"SET "+dynSent+" = :u, "+dynPending+" = :g, "+dynFlip+" = "+dynPrec+" REMOVE "+dynExpires,
				dynWant+" = :sent AND "+dynSent+" = :sent",
				map[string]types.AttributeValue{":u": unknown, ":sent": sentAttr, ":g": attrS(pendingKey(list, opFor(sent), h[0]))})
			if ok || err != nil {
				return err
			}
			row, found, err := d.get(ctx, list, h)
			if err != nil || !found || row.Sent != sent {
				return err // gone (TTL), or no longer sent so: nothing to record
			}
		}
		return fmt.Errorf("row %s: changed under every try", h[:8])
	})
}

// ListByKey returns the list whose Key() is key, from its list item: a
// stream record names a row's list only by its key (sk). ok is false for a
// list the ledger has never seen. Lists once found are remembered.
func (d *Dynamo) ListByKey(ctx context.Context, key string) (list List, ok bool, err error) {
	if l, ok := d.known.Load(key); ok {
		return l.(List), true, nil
	}
	out, err := d.client.GetItem(ctx, &dynamodb.GetItemInput{
		TableName: aws.String(d.table),
		Key:       listKeyAttrs(key),
	})
	if err != nil {
		return List{}, false, fmt.Errorf("read list %s: %w", key, err)
	}
	if out.Item == nil {
		return List{}, false, nil
	}
	l, err := listFromItem(out.Item)
	if err != nil {
		return List{}, false, fmt.Errorf("read list %s: %w", key, err)
	}
	d.known.Store(key, l)
	return l, true, nil
}

func listFromItem(item map[string]types.AttributeValue) (List, error) {
	ns, ok1 := item[dynNS].(*types.AttributeValueMemberS)
	id, ok2 := item[dynAudience].(*types.AttributeValueMemberS)
	lt, ok3 := item[dynType].(*types.AttributeValueMemberS)
	if !ok1 || !ok2 || !ok3 {
		return List{}, errors.New("list item without its parts")
	}
	return List{Audience: audience.Ref{Namespace: ns.Value, ID: id.Value}, Type: audience.ListType(lt.Value)}, nil
}

// lists reads every list item, strongly consistent: Erase must see every
// list registered before it wrote its guards (see Erase).
func (d *Dynamo) lists(ctx context.Context) ([]List, error) {
	var out []List
	var start map[string]types.AttributeValue
	for {
		q, err := d.client.Query(ctx, &dynamodb.QueryInput{
			TableName:                 aws.String(d.table),
			KeyConditionExpression:    aws.String(dynPK + " = :l"),
			ExpressionAttributeValues: map[string]types.AttributeValue{":l": attrS(dynListsPK)},
			ConsistentRead:            aws.Bool(true),
			ExclusiveStartKey:         start,
		})
		if err != nil {
			return nil, fmt.Errorf("read lists: %w", err)
		}
		for _, item := range q.Items {
			l, err := listFromItem(item)
			if err != nil {
				return nil, fmt.Errorf("read lists: %w", err)
			}
			out = append(out, l)
		}
		if q.LastEvaluatedKey == nil {
			return out, nil
		}
		start = q.LastEvaluatedKey
	}
}

// PendingLists lists the lists with pending rows: per list up to 32 index
// queries of one item (2 ops × 16 shards), lists in parallel. For polling
// and status; the Streams consumer learns its lists from the records.
func (d *Dynamo) PendingLists(ctx context.Context) ([]List, error) {
	all, err := d.lists(ctx)
	if err != nil {
		return nil, fmt.Errorf("list lists with pending rows: %w", err)
	}
	has := make([]bool, len(all))
	err = d.parallel(ctx, len(all), func(ctx context.Context, i int) error {
		for _, op := range []audience.Op{audience.OpAdd, audience.OpRemove} {
			p, err := d.Pending(ctx, all[i], op, 1)
			if err != nil {
				return err
			}
			if len(p) > 0 {
				has[i] = true
				return nil
			}
		}
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("list lists with pending rows: %w", err)
	}
	var out []List
	for i, l := range all {
		if has[i] {
			out = append(out, l)
		}
	}
	return out, nil
}

// Members sums every list's counter shards (eventually consistent reads:
// a count a moment old).
func (d *Dynamo) Members(ctx context.Context) (map[List]int64, error) {
	all, err := d.lists(ctx)
	if err != nil {
		return nil, fmt.Errorf("read member counts: %w", err)
	}
	counts := make([]int64, len(all))
	err = d.parallel(ctx, len(all), func(ctx context.Context, i int) error {
		keys := make([]map[string]types.AttributeValue, counterShards)
		for s := range counterShards {
			keys[s] = counterKeyAttrs(all[i], string([]byte{hexDigits[s>>4], hexDigits[s&15]}))
		}
		return d.batchGet(ctx, keys, dynCount, false, func(item map[string]types.AttributeValue) error {
			n, ok := item[dynCount].(*types.AttributeValueMemberN)
			if !ok {
				return errors.New("counter item without a count")
			}
			v, err := strconv.ParseInt(n.Value, 10, 64)
			if err != nil {
				return fmt.Errorf("counter item's count %q: %w", n.Value, err)
			}
			counts[i] += v
			return nil
		})
	})
	if err != nil {
		return nil, fmt.Errorf("read member counts: %w", err)
	}
	out := make(map[List]int64, len(all))
	for i, l := range all {
		out[l] = counts[i]
	}
	return out, nil
}
