package ledger

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"log/slog"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb/types"
)

// Apply marks (see Applying) on the list items:
//
//   - a: the marks of the Applies writing the list's rows now, a string set
//     of "UNTIL/HOLDER" (UNTIL in Unix milliseconds: the Apply's deadline
//     plus applyMarkSlack, after which the mark counts for nothing, so an
//     Apply that died leaves no hold behind; HOLDER random per Apply).
//     Apply ADDs its mark before it writes a row and DELETEs it after.
//   - f: on the write that ends an Apply in a list where a row flipped,
//     the ending mark, so the stream filter on NewImage.f passes it and a
//     flush of the list follows every Apply; every other write of the list
//     item REMOVEs it, so that the filter passes nothing else.
//   - hd: since when (Unix milliseconds) flushes have kept the list's
//     partial calls pending for an Apply (HoldPartial), only while they do.
const (
	dynApplying = "a"
	dynHeld     = "hd"

	// applyMarkSlack is added to an Apply's deadline for its mark's end,
	// for clock differences between the functions' hosts.
	applyMarkSlack = 2 * time.Second
	// DefaultApplyMarkTTL is how long an Apply's mark holds when its context
	// has no deadline (an apply Lambda's mark ends at the invocation's).
	DefaultApplyMarkTTL = 5 * time.Minute
)

var _ Applying = (*Dynamo)(nil)

// applyMark is one Apply's mark on the lists it writes.
type applyMark struct {
	mark  string
	lists []List
	// owned holds, for each list (by key) that had an owner when marked,
	// that owner and the hashes of the rows this Apply writes there: rows
	// written as in a list pinlist created (absentRow), which endApplying
	// forgets again if the owner was forgotten meanwhile (Disown).
	owned map[string]ownedRows
}

type ownedRows struct {
	owner  string
	hashes []string
}

// markApplying writes the list item of every list of items (its parts,
// so it also records a list new to the ledger), adds this Apply's mark to
// it and drops its f, and sets items' owned from the item as written (one
// UpdateItem per list; the item returned is the one written, as strongly
// consistent as a read after it).
func (d *Dynamo) markApplying(ctx context.Context, items []item) (applyMark, error) {
	var holder [8]byte
	if _, err := rand.Read(holder[:]); err != nil {
		return applyMark{}, fmt.Errorf("mark the lists being written: make a holder ID: %w", err)
	}
	ttl := DefaultApplyMarkTTL
	if dl, ok := ctx.Deadline(); ok {
		ttl = time.Until(dl) + applyMarkSlack
	}
	m := applyMark{
		mark:  strconv.FormatInt(d.now().Add(ttl).UnixMilli(), 10) + "/" + hex.EncodeToString(holder[:]),
		owned: map[string]ownedRows{},
	}
	at := map[string][]int{}
	for i, it := range items {
		key := it.list.Key()
		if _, ok := at[key]; !ok {
			m.lists = append(m.lists, it.list)
		}
		at[key] = append(at[key], i)
	}
	var mu sync.Mutex
	err := d.parallel(ctx, len(m.lists), func(ctx context.Context, i int) error {
		l := m.lists[i]
		out, err := d.client.UpdateItem(ctx, &dynamodb.UpdateItemInput{
			TableName: aws.String(d.table),
			Key:       listKeyAttrs(l.Key()),
			UpdateExpression: aws.String("SET " + dynNS + " = :ns, " + dynAudience + " = :aid, " + dynType + " = :lt" +
				" ADD " + dynApplying + " :m REMOVE " + dynFlip),
			ExpressionAttributeValues: map[string]types.AttributeValue{
				":ns": attrS(l.Audience.Namespace), ":aid": attrS(l.Audience.ID), ":lt": attrS(string(l.Type)),
				":m": &types.AttributeValueMemberSS{Value: []string{m.mark}},
			},
			ReturnValues: types.ReturnValueAllNew,
		})
		if err != nil {
			return fmt.Errorf("mark list %s as being written: %w", l.Key(), err)
		}
		if o, owned := out.Attributes[dynOwner].(*types.AttributeValueMemberS); owned {
			rows := ownedRows{owner: o.Value}
			mu.Lock()
			for _, j := range at[l.Key()] {
				items[j].owned = true
				rows.hashes = append(rows.hashes, items[j].hash)
			}
			m.owned[l.Key()] = rows
			mu.Unlock()
		}
		return nil
	})
	if err != nil {
		return applyMark{}, err
	}
	return m, nil
}

// endApplying removes m from its lists' items; a list for which woken says
// true gets f, so its stream record wakes a flush. It is called whether the
// Apply succeeded or not, with a context that outlives the caller's. A
// mark it cannot remove is logged and ends by itself (its UNTIL).
//
// It closes the race with Disown: a list whose owner is not the one the
// mark read (forgotten, or another since) was disowned while this Apply
// wrote it as a list pinlist created, after or while Disown reset its
// rows. Every mark live when the owner was forgotten ends after that, so
// its Apply sees the change here and forgets what its own rows say was
// sent out (forgetSent): a person in the list found who left in that
// moment is removed after all.
func (d *Dynamo) endApplying(ctx context.Context, m applyMark, woken func(List) bool) {
	_ = d.parallel(ctx, len(m.lists), func(ctx context.Context, i int) error {
		l := m.lists[i]
		expr := "DELETE " + dynApplying + " :m"
		vals := map[string]types.AttributeValue{":m": &types.AttributeValueMemberSS{Value: []string{m.mark}}}
		if woken(l) {
			expr = "SET " + dynFlip + " = :f " + expr
			vals[":f"] = attrS(m.mark)
		}
		out, err := d.client.UpdateItem(ctx, &dynamodb.UpdateItemInput{
			TableName: aws.String(d.table), Key: listKeyAttrs(l.Key()),
			ConditionExpression:       aws.String("attribute_exists(" + dynPK + ")"),
			UpdateExpression:          aws.String(expr),
			ExpressionAttributeValues: vals,
			ReturnValues:              types.ReturnValueAllNew,
		})
		var ccf *types.ConditionalCheckFailedException
		if errors.As(err, &ccf) { // a list retired meanwhile has no item: nothing to end
			return nil
		}
		if err != nil {
			d.log.LogAttrs(ctx, slog.LevelWarn, "apply mark not removed; it ends by itself",
				slog.String("list", l.Key()), slog.String("error", err.Error()))
			return nil
		}
		rows, ok := m.owned[l.Key()]
		if o, _ := out.Attributes[dynOwner].(*types.AttributeValueMemberS); !ok || (o != nil && o.Value == rows.owner) {
			return nil
		}
		if err := d.forgetSent(ctx, l, rows.hashes, Out); err != nil {
			d.log.LogAttrs(ctx, slog.LevelError, "list disowned while an apply wrote it as pinlist's own; its rows could not be reset, so some exits may not be sent",
				slog.String("list", l.Key()), slog.Int("rows", len(rows.hashes)), slog.String("error", err.Error()))
			return nil
		}
		d.log.LogAttrs(ctx, slog.LevelWarn, "list disowned while an apply wrote it as pinlist's own; what its rows say was sent out is forgotten",
			slog.String("list", l.Key()), slog.Int("rows", len(rows.hashes)))
		return nil
	})
}

// HoldPartial reads list's item (strongly consistent) and answers true
// while a mark on it is live, for at most max from the first time it
// answered so (recorded on the item): see Applying. Answering false ends a
// hold recorded, and it drops the marks that have ended.
func (d *Dynamo) HoldPartial(ctx context.Context, list List, max time.Duration) (bool, error) {
	out, err := d.client.GetItem(ctx, &dynamodb.GetItemInput{
		TableName: aws.String(d.table), Key: listKeyAttrs(list.Key()), ConsistentRead: aws.Bool(true),
		ProjectionExpression: aws.String(dynApplying + ", " + dynHeld),
	})
	if err != nil {
		return false, fmt.Errorf("read the apply marks of list %s: %w", list.Key(), err)
	}
	now := d.now()
	live := false
	var ended []string
	if marks, ok := out.Item[dynApplying].(*types.AttributeValueMemberSS); ok {
		for _, m := range marks.Value {
			if until, ok := markUntil(m); ok && until.After(now) {
				live = true
			} else {
				ended = append(ended, m)
			}
		}
	}
	_, recorded := out.Item[dynHeld]
	var since time.Time
	if n, ok := out.Item[dynHeld].(*types.AttributeValueMemberN); ok {
		if ms, err := strconv.ParseInt(n.Value, 10, 64); err == nil {
			since = time.UnixMilli(ms)
		}
	}
	hold := live && (!recorded || now.Sub(since) < max)
	start, end := hold && !recorded, !hold && recorded
	if !start && !end && len(ended) == 0 {
		return hold, nil
	}
	expr, remove := "", dynFlip // every list item write but an Apply's end drops f
	vals := map[string]types.AttributeValue{}
	if start {
		expr = "SET " + dynHeld + " = if_not_exists(" + dynHeld + ", :now) "
		vals[":now"] = attrN(now.UnixMilli())
	}
	if end {
		remove += ", " + dynHeld
	}
	expr += "REMOVE " + remove
	if len(ended) > 0 {
		expr += " DELETE " + dynApplying + " :ended"
		vals[":ended"] = &types.AttributeValueMemberSS{Value: ended}
	}
	in := &dynamodb.UpdateItemInput{
		TableName: aws.String(d.table), Key: listKeyAttrs(list.Key()),
		ConditionExpression: aws.String("attribute_exists(" + dynPK + ")"),
		UpdateExpression:    aws.String(expr),
	}
	if len(vals) > 0 {
		in.ExpressionAttributeValues = vals
	}
	_, err = d.client.UpdateItem(ctx, in)
	var ccf *types.ConditionalCheckFailedException
	if err != nil && !errors.As(err, &ccf) {
		return false, fmt.Errorf("record the hold of list %s: %w", list.Key(), err)
	}
	return hold, nil
}

// markUntil reads the end of a mark ("UNTIL/HOLDER").
func markUntil(m string) (time.Time, bool) {
	ms, _, ok := strings.Cut(m, "/")
	if !ok {
		return time.Time{}, false
	}
	n, err := strconv.ParseInt(ms, 10, 64)
	if err != nil {
		return time.Time{}, false
	}
	return time.UnixMilli(n), true
}
