package ledger

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"strings"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb/types"

	"github.com/pinlist/pinlist/internal/audience"
	"github.com/pinlist/pinlist/internal/retry"
)

// The promises' items in the DynamoDB ledger table:
//   - an erasure guard per identifier (see dynamo.go and Keeper): pk = the
//     hash, sk = "erased/" + list type, p = the erasure precedence, x = the
//     guard's expiry (Unix seconds, the TTL attribute);
//   - an erased row carries e = its guard's expiry; once Pinterest has the
//     removal its TTL attribute x is e, so the row goes with its guard. A
//     newer change rewrites the row without e.
//   - a retired list: pk = "retired", sk = List.Key(); ns, aid, lt = its
//     parts; dn = 1 once its rows were dropped (FinishRetire).
//
// Resync, repair and retirement read a list's rows with a Scan filtered on
// sk (the table has no index by list): a whole-table read, for rare
// operator actions only.
const (
	dynErased    = "e"
	dynDone      = "dn"
	dynRetiredPK = "retired"

	// dynBatchWrite is the most requests one BatchWriteItem takes.
	dynBatchWrite = 25
)

var _ Keeper = (*Dynamo)(nil)

// guardKeyAttrs is the key of the erasure guard of hash in lists of type t.
func guardKeyAttrs(t audience.ListType, hash string) map[string]types.AttributeValue {
	return map[string]types.AttributeValue{dynPK: attrS(hash), dynSK: attrS(dynGuardSK + string(t))}
}

// liveGuard reads a guard item's precedence; ok is false once its until
// (x) has passed: DynamoDB's TTL deletes expired items only eventually, so
// the store checks until itself.
func (d *Dynamo) liveGuard(item map[string]types.AttributeValue) (p string, ok bool, err error) {
	pv, ok1 := item[dynPrec].(*types.AttributeValueMemberS)
	xv, ok2 := item[dynExpires].(*types.AttributeValueMemberN)
	if !ok1 || !ok2 {
		return "", false, errors.New("erasure guard item without precedence or expiry")
	}
	until, err := strconv.ParseInt(xv.Value, 10, 64)
	if err != nil {
		return "", false, fmt.Errorf("erasure guard item's expiry %q: %w", xv.Value, err)
	}
	return pv.Value, d.now().Unix() < until, nil
}

// readGuards reads, with one strongly consistent BatchGetItem, the erasure
// guards of the items whose row is missing in cur (Apply's changes; an
// erasure's own REMOVEs, until != 0, are decided against the rows alone),
// and puts a live guard's virtual row (guardRow) in cur in the row's stead.
// Rows that exist cost nothing more.
func (d *Dynamo) readGuards(ctx context.Context, items []item, cur []Row) error {
	type ident struct {
		t    audience.ListType
		hash string
	}
	at := map[ident][]int{}
	var keys []map[string]types.AttributeValue
	for i, it := range items {
		if it.until != 0 || cur[i].Precedence != "" {
			continue
		}
		id := ident{it.list.Type, it.hash}
		if _, ok := at[id]; !ok {
			keys = append(keys, guardKeyAttrs(id.t, id.hash))
		}
		at[id] = append(at[id], i)
	}
	if len(keys) == 0 {
		return nil
	}
	err := d.batchGet(ctx, keys, dynPK+", "+dynSK+", "+dynPrec+", "+dynExpires, true,
		func(item map[string]types.AttributeValue) error {
			pk, _ := item[dynPK].(*types.AttributeValueMemberS)
			sk, _ := item[dynSK].(*types.AttributeValueMemberS)
			if pk == nil || sk == nil || !strings.HasPrefix(sk.Value, dynGuardSK) {
				return errors.New("batch read returned an item that is no erasure guard")
			}
			p, live, err := d.liveGuard(item)
			if err != nil || !live {
				return err
			}
			for _, i := range at[ident{audience.ListType(strings.TrimPrefix(sk.Value, dynGuardSK)), pk.Value}] {
				cur[i] = guardRow(items[i].list, items[i].hash, p)
			}
			return nil
		})
	if err != nil {
		return fmt.Errorf("read erasure guards: %w", err)
	}
	return nil
}

// guardedRow reads the erasure guard of the missing row absent (its
// absentRow) strongly consistently: the guard's virtual row while it is
// live, else absent.
func (d *Dynamo) guardedRow(ctx context.Context, absent Row) (Row, error) {
	list, hash := absent.List, absent.Hash
	out, err := d.client.GetItem(ctx, &dynamodb.GetItemInput{
		TableName: aws.String(d.table), Key: guardKeyAttrs(list.Type, hash), ConsistentRead: aws.Bool(true),
	})
	if err != nil {
		return Row{}, fmt.Errorf("read erasure guard for list %s: %w", list.Key(), err)
	}
	if out.Item == nil {
		return absent, nil
	}
	p, live, err := d.liveGuard(out.Item)
	if err != nil {
		return Row{}, fmt.Errorf("read erasure guard for list %s: %w", list.Key(), err)
	}
	if !live {
		return absent, nil
	}
	return guardRow(list, hash, p), nil
}

// writeGuards writes the erasures' guard items, each conditional on no
// guard with a greater precedence being there (that one, from a later
// erasure, stays as it is).
func (d *Dynamo) writeGuards(ctx context.Context, erasures []Erasure, until int64) error {
	return d.parallel(ctx, len(erasures), func(ctx context.Context, i int) error {
		e := erasures[i]
		_, err := d.client.UpdateItem(ctx, &dynamodb.UpdateItemInput{
			TableName:           aws.String(d.table),
			Key:                 guardKeyAttrs(e.Type, e.Hash),
			ConditionExpression: aws.String("attribute_not_exists(" + dynPrec + ") OR " + dynPrec + " <= :p"),
			UpdateExpression:    aws.String("SET " + dynPrec + " = :p, " + dynExpires + " = :x"),
			ExpressionAttributeValues: map[string]types.AttributeValue{
				":p": attrS(e.Precedence), ":x": attrN(until),
			},
		})
		var ccf *types.ConditionalCheckFailedException
		if errors.As(err, &ccf) {
			return nil
		}
		if err != nil {
			return fmt.Errorf("write erasure guard of a %s identifier: %w", e.Type, err)
		}
		return nil
	})
}

// guardItem marks a row item erased until until.
func (d *Dynamo) guardItem(item map[string]types.AttributeValue, r Row, until int64) {
	item[dynErased] = attrN(until)
	if r.Want == Out && r.Sent == Out {
		item[dynExpires] = attrN(until)
	}
}

// dropRetired drops the items of retired lists; it returns the others and
// how many it dropped.
func (d *Dynamo) dropRetired(ctx context.Context, items []item) ([]item, int, error) {
	retired, err := d.Retired(ctx)
	if err != nil {
		return nil, 0, err
	}
	if len(retired) == 0 {
		return items, 0, nil
	}
	out := items[:0:0]
	for _, it := range items {
		if !retired[it.list.Key()] {
			out = append(out, it)
		}
	}
	return out, len(items) - len(out), nil
}

// Erase erases (see Keeper): first the guard item per identifier, then one
// REMOVE at the erasure's precedence per list of the identifier's type,
// written like Apply's changes and marked erased.
//
// A join racing the erasure in a list the ledger has not seen is closed by
// the order of the two calls' steps, not by luck. Erase writes the guards,
// then reads the list items (strongly consistent); Apply writes its lists'
// items (markApplying), then reads the guards
// of its missing rows (strongly consistent). If Apply's guard read misses
// Erase's guard, it came before the guard write, so Apply's list write came
// before Erase's list read: Erase sees the list and writes its REMOVE row.
// Both rows' writes are conditional on the row as read (attribute_not_exists
// for a new row), so whichever comes second re-reads and decides again: a
// join stamped before the erasure loses to the REMOVE either way.
func (d *Dynamo) Erase(ctx context.Context, erasures []Erasure) (Erased, error) {
	if err := checkErasures(erasures); err != nil {
		return Erased{}, fmt.Errorf("erase %d identifiers: check erasures: %w", len(erasures), err)
	}
	if len(erasures) == 0 {
		return Erased{}, nil
	}
	until := d.now().Add(d.guard).Unix()
	if err := d.writeGuards(ctx, erasures, until); err != nil {
		return Erased{}, fmt.Errorf("erase %d identifiers: %w", len(erasures), err)
	}
	all, err := d.lists(ctx)
	if err != nil {
		return Erased{}, fmt.Errorf("erase %d identifiers: %w", len(erasures), err)
	}
	retired, err := d.Retired(ctx)
	if err != nil {
		return Erased{}, fmt.Errorf("erase %d identifiers: %w", len(erasures), err)
	}
	var items []item
	at := map[rowKey]int{}
	stale := 0
	for _, e := range erasures {
		for _, l := range all {
			if l.Type != e.Type || retired[l.Key()] {
				continue
			}
			it := item{list: l, hash: e.Hash, op: audience.OpRemove, p: e.Precedence, until: until}
			k := rowKey{list: l.Key(), hash: e.Hash}
			if j, ok := at[k]; ok {
				stale++
				if it.p > items[j].p {
					items[j] = it
				}
				continue
			}
			at[k] = len(items)
			items = append(items, it)
		}
	}
	res, lists, err := d.applyItems(ctx, items, Result{Stale: stale})
	if err != nil {
		return Erased{}, fmt.Errorf("erase %d identifiers: %w", len(erasures), err)
	}
	return Erased{Result: res, Lists: lists}, nil
}

// scanRows hands every row item of the lists keyed keys to fn (not
// concurrently).
func (d *Dynamo) scanRows(ctx context.Context, keys []string, fn func(List, Row, map[string]types.AttributeValue) error) error {
	if len(keys) == 0 {
		return nil
	}
	byKey := map[string]List{}
	vals := map[string]types.AttributeValue{}
	var in []string
	for i, k := range keys {
		l, ok, err := d.ListByKey(ctx, k)
		if err != nil {
			return err
		}
		if !ok {
			continue
		}
		byKey[k] = l
		name := ":k" + strconv.Itoa(i)
		vals[name] = attrS(k)
		in = append(in, name)
	}
	if len(in) == 0 {
		return nil
	}
	var start map[string]types.AttributeValue
	for {
		out, err := d.client.Scan(ctx, &dynamodb.ScanInput{
			TableName:                 aws.String(d.table),
			FilterExpression:          aws.String(dynSK + " IN (" + strings.Join(in, ", ") + ") AND attribute_exists(" + dynWant + ")"),
			ExpressionAttributeValues: vals,
			ConsistentRead:            aws.Bool(true),
			ExclusiveStartKey:         start,
		})
		if err != nil {
			return fmt.Errorf("scan the rows of %d lists: %w", len(in), err)
		}
		for _, item := range out.Items {
			pk, _ := item[dynPK].(*types.AttributeValueMemberS)
			sk, _ := item[dynSK].(*types.AttributeValueMemberS)
			if pk == nil || sk == nil || !isHash(pk.Value) {
				continue
			}
			l := byKey[sk.Value]
			r := Row{List: l, Hash: pk.Value}
			if err := rowFromItem(&r, item); err != nil {
				return fmt.Errorf("read a row of %s: %w", l.Key(), err)
			}
			if err := fn(l, r, item); err != nil {
				return err
			}
		}
		if out.LastEvaluatedKey == nil {
			return nil
		}
		start = out.LastEvaluatedKey
	}
}

// rewrite writes row r (read from item old) anew, conditional on its
// precedence and Sent being as read; a row that changed meanwhile is left
// to its newer change (reported as false). A pending row carries the flip
// attribute, so the stream's upload step flushes its list.
func (d *Dynamo) rewrite(ctx context.Context, r Row, old map[string]types.AttributeValue, oldSent State) (bool, error) {
	o := NoOp
	if r.Pending() {
		o = Flip
	}
	item := d.rowItem(r, o)
	if e, ok := old[dynErased].(*types.AttributeValueMemberN); ok {
		until, _ := strconv.ParseInt(e.Value, 10, 64)
		d.guardItem(item, r, until)
	}
	_, err := d.client.PutItem(ctx, &dynamodb.PutItemInput{
		TableName:           aws.String(d.table),
		Item:                item,
		ConditionExpression: aws.String(dynPrec + " = :p AND " + dynSent + " = :s"),
		ExpressionAttributeValues: map[string]types.AttributeValue{
			":p": attrS(r.Precedence), ":s": attrN(int64(oldSent)),
		},
	})
	var ccf *types.ConditionalCheckFailedException
	if errors.As(err, &ccf) {
		return false, nil
	}
	if err != nil {
		return false, fmt.Errorf("rewrite a row of %s: %w", r.List.Key(), err)
	}
	return true, nil
}

// ResetList forgets what Pinterest was sent for list's rows (see Keeper).
func (d *Dynamo) ResetList(ctx context.Context, list List, assume State) (int64, error) {
	if assume > Out {
		return 0, fmt.Errorf("reset sent state of %s: unknown state %d", list.Key(), assume)
	}
	var pending int64
	err := d.scanRows(ctx, []string{list.Key()}, func(_ List, r Row, item map[string]types.AttributeValue) error {
		old := r.Sent
		r.Sent = assume
		if r.Pending() {
			pending++
		}
		if old == assume {
			return nil
		}
		_, err := d.rewrite(ctx, r, item, old)
		return err
	})
	if err != nil {
		return 0, fmt.Errorf("reset sent state of %s: %w", list.Key(), err)
	}
	return pending, nil
}

// Retire retires a (see Keeper).
func (d *Dynamo) Retire(ctx context.Context, a audience.Ref) ([]List, error) {
	if err := a.Validate(); err != nil {
		return nil, fmt.Errorf("retire audience: %w", err)
	}
	var keys []string
	for _, t := range audience.ListTypes {
		l := List{Audience: a, Type: t}
		keys = append(keys, l.Key())
		_, err := d.client.UpdateItem(ctx, &dynamodb.UpdateItemInput{
			TableName:        aws.String(d.table),
			Key:              map[string]types.AttributeValue{dynPK: attrS(dynRetiredPK), dynSK: attrS(l.Key())},
			UpdateExpression: aws.String("SET " + dynNS + " = :ns, " + dynAudience + " = :aid, " + dynType + " = :lt"),
			ExpressionAttributeValues: map[string]types.AttributeValue{
				":ns": attrS(a.Namespace), ":aid": attrS(a.ID), ":lt": attrS(string(t)),
			},
		})
		if err != nil {
			return nil, fmt.Errorf("retire audience %s: register retired list %s: %w", a.Key(), l.Key(), err)
		}
	}
	var known []List
	for _, k := range keys {
		l, ok, err := d.ListByKey(ctx, k)
		if err != nil {
			return nil, fmt.Errorf("retire audience %s: %w", a.Key(), err)
		}
		if ok {
			known = append(known, l)
		}
	}
	err := d.scanRows(ctx, keys, func(_ List, r Row, item map[string]types.AttributeValue) error {
		if r.Want == Out && !r.Pending() {
			return nil
		}
		old := r.Sent
		r.Want = Out
		_, err := d.rewrite(ctx, r, item, old)
		return err
	})
	if err != nil {
		return nil, fmt.Errorf("retire audience %s: %w", a.Key(), err)
	}
	return known, nil
}

// retiredItems reads the retired list items.
func (d *Dynamo) retiredItems(ctx context.Context) ([]map[string]types.AttributeValue, error) {
	var out []map[string]types.AttributeValue
	var start map[string]types.AttributeValue
	for {
		q, err := d.client.Query(ctx, &dynamodb.QueryInput{
			TableName:                 aws.String(d.table),
			KeyConditionExpression:    aws.String(dynPK + " = :r"),
			ExpressionAttributeValues: map[string]types.AttributeValue{":r": attrS(dynRetiredPK)},
			ConsistentRead:            aws.Bool(true),
			ExclusiveStartKey:         start,
		})
		if err != nil {
			return nil, fmt.Errorf("read retired lists: %w", err)
		}
		out = append(out, q.Items...)
		if q.LastEvaluatedKey == nil {
			return out, nil
		}
		start = q.LastEvaluatedKey
	}
}

// Retiring lists the retired lists whose rows are not dropped yet.
func (d *Dynamo) Retiring(ctx context.Context) ([]List, error) {
	items, err := d.retiredItems(ctx)
	if err != nil {
		return nil, err
	}
	var out []List
	for _, item := range items {
		if _, done := item[dynDone]; done {
			continue
		}
		l, err := listFromItem(item)
		if err != nil {
			return nil, fmt.Errorf("read retired lists: %w", err)
		}
		out = append(out, l)
	}
	return out, nil
}

// Retired reports every retired list's key.
func (d *Dynamo) Retired(ctx context.Context) (map[string]bool, error) {
	items, err := d.retiredItems(ctx)
	if err != nil {
		return nil, err
	}
	out := make(map[string]bool, len(items))
	for _, item := range items {
		if sk, ok := item[dynSK].(*types.AttributeValueMemberS); ok {
			out[sk.Value] = true
		}
	}
	return out, nil
}

// FinishRetire deletes list's rows, counters and list item and marks the
// retired item done.
func (d *Dynamo) FinishRetire(ctx context.Context, list List) error {
	if _, known, err := d.ListByKey(ctx, list.Key()); err != nil {
		return fmt.Errorf("drop the rows of retired list %s: %w", list.Key(), err)
	} else if !known {
		return d.markRetiredDone(ctx, list)
	}
	var keys []map[string]types.AttributeValue
	err := d.scanRows(ctx, []string{list.Key()}, func(_ List, r Row, _ map[string]types.AttributeValue) error {
		keys = append(keys, rowKeyAttrs(list, r.Hash))
		return nil
	})
	if err != nil {
		return fmt.Errorf("drop the rows of retired list %s: %w", list.Key(), err)
	}
	for s := range counterShards {
		keys = append(keys, counterKeyAttrs(list, string([]byte{hexDigits[s>>4], hexDigits[s&15]})))
	}
	keys = append(keys, listKeyAttrs(list.Key()))
	if err := d.batchDelete(ctx, keys); err != nil {
		return fmt.Errorf("drop the rows of retired list %s: %w", list.Key(), err)
	}
	d.known.Delete(list.Key())
	return d.markRetiredDone(ctx, list)
}

// markRetiredDone marks list's retired item done.
func (d *Dynamo) markRetiredDone(ctx context.Context, list List) error {
	_, err := d.client.UpdateItem(ctx, &dynamodb.UpdateItemInput{
		TableName:                 aws.String(d.table),
		Key:                       map[string]types.AttributeValue{dynPK: attrS(dynRetiredPK), dynSK: attrS(list.Key())},
		UpdateExpression:          aws.String("SET " + dynDone + " = :one"),
		ExpressionAttributeValues: map[string]types.AttributeValue{":one": attrN(1)},
	})
	if err != nil {
		return fmt.Errorf("mark retired list %s done: %w", list.Key(), err)
	}
	return nil
}

// batchDelete deletes keys in calls of up to 25, retrying unprocessed ones.
func (d *Dynamo) batchDelete(ctx context.Context, keys []map[string]types.AttributeValue) error {
	for start := 0; start < len(keys); start += dynBatchWrite {
		var reqs []types.WriteRequest
		for _, k := range keys[start:min(start+dynBatchWrite, len(keys))] {
			reqs = append(reqs, types.WriteRequest{DeleteRequest: &types.DeleteRequest{Key: k}})
		}
		err := retry.Do(ctx, dynRetry, func(err error) bool { return errors.Is(err, errUnprocessed) },
			func(ctx context.Context) error {
				out, err := d.client.BatchWriteItem(ctx, &dynamodb.BatchWriteItemInput{
					RequestItems: map[string][]types.WriteRequest{d.table: reqs},
				})
				if err != nil {
					return fmt.Errorf("batch delete: %w", err)
				}
				reqs = out.UnprocessedItems[d.table]
				if len(reqs) > 0 {
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

// memberCount sums list's counter shards.
func (d *Dynamo) memberCount(ctx context.Context, list List) (int64, error) {
	keys := make([]map[string]types.AttributeValue, counterShards)
	for s := range counterShards {
		keys[s] = counterKeyAttrs(list, string([]byte{hexDigits[s>>4], hexDigits[s&15]}))
	}
	var n int64
	err := d.batchGet(ctx, keys, dynCount, false, func(item map[string]types.AttributeValue) error {
		c, ok := item[dynCount].(*types.AttributeValueMemberN)
		if !ok {
			return errors.New("counter item without a count")
		}
		v, err := strconv.ParseInt(c.Value, 10, 64)
		if err != nil {
			return fmt.Errorf("counter item's count %q: %w", c.Value, err)
		}
		n += v
		return nil
	})
	if err != nil {
		return 0, fmt.Errorf("read the member count of %s: %w", list.Key(), err)
	}
	return n, nil
}

// sentInProbe bounds the pending ADDs SentIn reads.
const sentInProbe = 5000

// SentIn compares list's member count with its pending ADDs: a member
// that is not pending was sent. It reads at most sentInProbe pending rows:
// a list with more members than that, all of the first sentInProbe
// pending, counts as never sent (a new list; a vanished one is then
// repaired on its first 404). Counts and index are eventually consistent.
func (d *Dynamo) SentIn(ctx context.Context, list List) (bool, error) {
	n, err := d.memberCount(ctx, list)
	if err != nil || n <= 0 {
		return false, err
	}
	probe := int(min(n, sentInProbe))
	p, err := d.Pending(ctx, list, audience.OpAdd, probe)
	if err != nil {
		return false, err
	}
	return len(p) < probe, nil
}

// PendingCount counts list's pending rows in the pending index.
func (d *Dynamo) PendingCount(ctx context.Context, list List) (int64, error) {
	var n int64
	for _, op := range []audience.Op{audience.OpAdd, audience.OpRemove} {
		for shard := range pendingShards {
			var start map[string]types.AttributeValue
			for {
				q, err := d.client.Query(ctx, &dynamodb.QueryInput{
					TableName:                 aws.String(d.table),
					IndexName:                 aws.String(DynamoPendingIndex),
					KeyConditionExpression:    aws.String(dynPending + " = :g"),
					ExpressionAttributeValues: map[string]types.AttributeValue{":g": attrS(pendingKey(list, op, hexDigits[shard]))},
					Select:                    types.SelectCount,
					ExclusiveStartKey:         start,
				})
				if err != nil {
					return 0, fmt.Errorf("count pending rows of %s: %w", list.Key(), err)
				}
				n += int64(q.Count)
				if q.LastEvaluatedKey == nil {
					break
				}
				start = q.LastEvaluatedKey
			}
		}
	}
	return n, nil
}
