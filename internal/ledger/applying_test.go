package ledger

import (
	"context"
	"errors"
	"sync/atomic"
	"testing"
	"time"

	"github.com/aws/aws-lambda-go/events"
	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb/types"

	"github.com/pinlist/pinlist/internal/audience"
)

// interruptedWrites calls during before the transaction number at (a row
// write that moves a member count), then fails it when fail is set.
type interruptedWrites struct {
	DynamoAPI
	at     int32
	seen   atomic.Int32
	during func()
	fail   bool
}

var errInjected = errors.New("injected: the write failed")

func (w *interruptedWrites) TransactWriteItems(ctx context.Context, in *dynamodb.TransactWriteItemsInput, o ...func(*dynamodb.Options)) (*dynamodb.TransactWriteItemsOutput, error) {
	if w.seen.Add(1) == w.at {
		w.during()
		if w.fail {
			return nil, errInjected
		}
	}
	return w.DynamoAPI.TransactWriteItems(ctx, in, o...)
}

// listItem reads list's item as stored.
func listItem(t *testing.T, d *Dynamo, list List) map[string]types.AttributeValue {
	t.Helper()
	out, err := d.client.GetItem(t.Context(), &dynamodb.GetItemInput{
		TableName: aws.String(d.table), Key: listKeyAttrs(list.Key()), ConsistentRead: aws.Bool(true),
	})
	if err != nil {
		t.Fatalf("read the item of %s: %v", list.Key(), err)
	}
	return out.Item
}

func holdPartial(t *testing.T, d *Dynamo, list List, max time.Duration) bool {
	t.Helper()
	hold, err := d.HoldPartial(t.Context(), list, max)
	if err != nil {
		t.Fatalf("HoldPartial(%s): %v", list.Key(), err)
	}
	return hold
}

// TestApplyMarksTheListsItWrites: while an Apply writes a list's rows, a
// flush of that list holds its partial calls and one of another list does
// not; at its end the mark is gone and the list item carries f (the
// stream record that wakes a flush) where a row flipped, and not where
// the Apply flipped nothing.
func TestApplyMarksTheListsItWrites(t *testing.T) {
	d := openDynamo(t)
	w := &interruptedWrites{DynamoAPI: d.client, at: 2}
	d.client = w
	var during struct{ a, b bool }
	w.during = func() {
		during.a, during.b = holdPartial(t, d, listA, time.Hour), holdPartial(t, d, listB, time.Hour)
	}
	if _, err := d.Apply(t.Context(), []audience.Change{change(listA, h1, add, 10), change(listA, h2, add, 10)}); err != nil {
		t.Fatalf("Apply: %v", err)
	}
	if !during.a || during.b {
		t.Errorf("while the Apply wrote list A: hold A %v, hold B %v; want A held, B not", during.a, during.b)
	}
	item := listItem(t, d, listA)
	if _, ok := item[dynApplying]; ok {
		t.Errorf("list A still marked after the Apply: %v", item[dynApplying])
	}
	if _, ok := item[dynHeld]; !ok {
		t.Errorf("the hold is not recorded on list A's item")
	}
	if _, ok := item[dynFlip].(*types.AttributeValueMemberS); !ok {
		t.Errorf("list A's item has no f after an Apply that flipped its rows: no flush would follow")
	}
	if holdPartial(t, d, listA, time.Hour) {
		t.Errorf("list A held after the Apply ended")
	}
	if _, ok := listItem(t, d, listA)[dynHeld]; ok {
		t.Errorf("the hold is still recorded once it ended")
	}

	// The same changes again flip nothing: the list item ends without f.
	if res, err := d.Apply(t.Context(), []audience.Change{change(listA, h1, add, 10)}); err != nil || res.Stale != 1 {
		t.Fatalf("Apply again = %+v, %v; want 1 stale", res, err)
	}
	if f, ok := listItem(t, d, listA)[dynFlip]; ok {
		t.Errorf("an Apply that flipped nothing left f = %v: it would wake a flush for nothing", f)
	}
}

// TestApplyThatFailsEndsItsMark: an Apply that fails part way ends its
// mark (no flush waits for it) and wakes a flush of its list, whose rows
// written before the failure are pending.
func TestApplyThatFailsEndsItsMark(t *testing.T) {
	d := openDynamo(t)
	d.client = &interruptedWrites{DynamoAPI: d.client, at: 2, during: func() {}, fail: true}
	d.concurrency = 1
	if _, err := d.Apply(t.Context(), []audience.Change{change(listA, h1, add, 10), change(listA, h2, add, 10)}); !errors.Is(err, errInjected) {
		t.Fatalf("Apply = %v; want the injected failure", err)
	}
	item := listItem(t, d, listA)
	if _, ok := item[dynApplying]; ok {
		t.Errorf("a failed Apply left its mark: %v", item[dynApplying])
	}
	if _, ok := item[dynFlip]; !ok {
		t.Errorf("a failed Apply woke no flush of its list")
	}
	if holdPartial(t, d, listA, time.Hour) {
		t.Errorf("list A held after the failed Apply")
	}
}

// TestHoldPartialIsBounded: a mark that stays (applies that keep
// overlapping) holds a list for max from the first hold, then lets one
// flush through and starts a new hold; a mark past its end (an Apply that
// died) holds nothing and is dropped.
func TestHoldPartialIsBounded(t *testing.T) {
	d := openDynamo(t)
	start := time.Date(2026, 6, 1, 12, 0, 0, 0, time.UTC)
	now := start
	d.now = func() time.Time { return now }
	items, _, err := prepare([]audience.Change{change(listA, h1, add, 10)})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := d.markApplying(t.Context(), items); err != nil { // never ended
		t.Fatalf("markApplying: %v", err)
	}
	for _, tc := range []struct {
		after time.Duration
		hold  bool
	}{
		{0, true},
		{30 * time.Second, true},
		{61 * time.Second, false}, // a minute since the first hold: one flush goes through
		{62 * time.Second, true},  // and the next hold starts
		{DefaultApplyMarkTTL + time.Second, false},
	} {
		now = start.Add(tc.after)
		if got := holdPartial(t, d, listA, time.Minute); got != tc.hold {
			t.Errorf("HoldPartial %v after the mark = %v, want %v", tc.after, got, tc.hold)
		}
	}
	if m, ok := listItem(t, d, listA)[dynApplying]; ok {
		t.Errorf("a mark past its end was kept: %v", m)
	}
}

// TestListItemWritesOtherThanAnApplysEndDropF: the stream filter passes
// list items with f; Own, Disown and a hold's writes drop it, so only the
// end of an Apply wakes a flush.
func TestListItemWritesOtherThanAnApplysEndDropF(t *testing.T) {
	d := openDynamo(t)
	ctx := t.Context()
	hasF := func() bool { _, ok := listItem(t, d, listA)[dynFlip]; return ok }
	flip := func(hour int) {
		t.Helper()
		if _, err := d.Apply(ctx, []audience.Change{change(listA, h1, add, hour)}); err != nil {
			t.Fatal(err)
		}
		if !hasF() {
			t.Fatalf("the Apply's end left no f")
		}
	}
	flip(10)
	if err := d.Own(ctx, listA, "549755813890"); err != nil {
		t.Fatal(err)
	}
	if hasF() {
		t.Errorf("Own kept f")
	}
	if _, err := d.Apply(ctx, []audience.Change{change(listA, h1, rem, 11)}); err != nil {
		t.Fatal(err)
	}
	flip(12)
	if _, err := d.Disown(ctx, listA); err != nil {
		t.Fatal(err)
	}
	if hasF() {
		t.Errorf("Disown kept f")
	}
}

func TestStreamList(t *testing.T) {
	s := events.NewStringAttribute
	for _, tc := range []struct {
		name   string
		pk, sk events.DynamoDBAttributeValue
		ok     bool
	}{
		{"a row", s(h1), s(listA.Key()), true},
		{"a list item", s(dynListsPK), s(listA.Key()), true},
		{"a member counter", s("n#" + listA.Key() + "#ab"), s(dynCounterSK), false},
		{"an erasure guard", s(h1), s(dynGuardSK + "EMAIL"), false},
		{"a lease", s(dynLeasePrefix + listA.Key()), s(dynLeaseSK), false},
		{"a name", s(dynNamePrefix + "ups:aud-1"), s(dynNameSK), false},
		{"keys that are not strings", events.NewNumberAttribute("1"), s(listA.Key()), false},
	} {
		got, err := StreamList(map[string]events.DynamoDBAttributeValue{dynPK: tc.pk, dynSK: tc.sk})
		if tc.ok && (err != nil || got != listA) {
			t.Errorf("%s: StreamList = %v, %v; want %v", tc.name, got, err, listA)
		}
		if !tc.ok && err == nil {
			t.Errorf("%s: StreamList = %v; want an error", tc.name, got)
		}
	}
}
