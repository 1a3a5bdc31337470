package ledger

import (
	"context"
	"encoding/json"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb/types"

	"github.com/pinlist/pinlist/internal/audience"
)

// serialDynamo runs one request at a time. moto serves requests on threads
// without locking its tables, so two concurrent conditional writes (or ADDs)
// to one item can both pass or lose an update, which DynamoDB never does;
// serializing the requests gives each the atomicity DynamoDB gives it while
// the store's own interleavings (reads going stale between a read and its
// conditional write) still happen.
type serialDynamo struct {
	mu  sync.Mutex
	api DynamoAPI
}

func (s *serialDynamo) BatchGetItem(ctx context.Context, in *dynamodb.BatchGetItemInput, o ...func(*dynamodb.Options)) (*dynamodb.BatchGetItemOutput, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.api.BatchGetItem(ctx, in, o...)
}

func (s *serialDynamo) GetItem(ctx context.Context, in *dynamodb.GetItemInput, o ...func(*dynamodb.Options)) (*dynamodb.GetItemOutput, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.api.GetItem(ctx, in, o...)
}

func (s *serialDynamo) PutItem(ctx context.Context, in *dynamodb.PutItemInput, o ...func(*dynamodb.Options)) (*dynamodb.PutItemOutput, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.api.PutItem(ctx, in, o...)
}

func (s *serialDynamo) UpdateItem(ctx context.Context, in *dynamodb.UpdateItemInput, o ...func(*dynamodb.Options)) (*dynamodb.UpdateItemOutput, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.api.UpdateItem(ctx, in, o...)
}

func (s *serialDynamo) TransactWriteItems(ctx context.Context, in *dynamodb.TransactWriteItemsInput, o ...func(*dynamodb.Options)) (*dynamodb.TransactWriteItemsOutput, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.api.TransactWriteItems(ctx, in, o...)
}

func (s *serialDynamo) Query(ctx context.Context, in *dynamodb.QueryInput, o ...func(*dynamodb.Options)) (*dynamodb.QueryOutput, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.api.Query(ctx, in, o...)
}

// staleReads answers every BatchGetItem with nothing found, as an
// eventually consistent read that has not caught up would, and fails the
// first transactions it is told to with a TransactionConflict.
type staleReads struct {
	DynamoAPI
	mu        sync.Mutex
	conflicts int
}

func (s *staleReads) BatchGetItem(context.Context, *dynamodb.BatchGetItemInput, ...func(*dynamodb.Options)) (*dynamodb.BatchGetItemOutput, error) {
	return &dynamodb.BatchGetItemOutput{}, nil
}

func (s *staleReads) TransactWriteItems(ctx context.Context, in *dynamodb.TransactWriteItemsInput, o ...func(*dynamodb.Options)) (*dynamodb.TransactWriteItemsOutput, error) {
	s.mu.Lock()
	conflict := s.conflicts > 0
	s.conflicts--
	s.mu.Unlock()
	if conflict {
		return nil, &types.TransactionCanceledException{
			Message: aws.String("conflict"),
			CancellationReasons: []types.CancellationReason{
				{Code: aws.String("TransactionConflict")}, {Code: aws.String("None")},
			},
		}
	}
	return s.DynamoAPI.TransactWriteItems(ctx, in, o...)
}

// TestDynamoStaleReadsAndConflicts checks what a stale first read or a
// transaction conflict does: the row's condition rejects the write, the row
// is read again, and nothing counts twice.
func TestDynamoStaleReadsAndConflicts(t *testing.T) {
	d := openDynamo(t)
	stale := &staleReads{DynamoAPI: d.client, conflicts: 2}
	ds, err := NewDynamo(DynamoOptions{Client: stale, Table: d.table})
	if err != nil {
		t.Fatalf("new: %v", err)
	}
	r := &run{s: ds}
	a10, a11 := change(listA, h1, add, 10), change(listA, h1, add, 11)
	for _, st := range []step{
		apply(Result{Flipped: 1}, a10), // after two conflicts
		apply(Result{Stale: 1}, a10),   // the row looks missing; its condition says otherwise
		apply(Result{NoOps: 1}, a11),
		apply(Result{Flipped: 1}, change(listA, h1, rem, 12)),
		apply(Result{Stale: 1}, change(listA, h1, rem, 12)),
		members1(listA, 0),
		rowIs(listA, h1, Out, Unknown, change(listA, h1, rem, 12)),
	} {
		st.do(t, r)
	}
	if stale.conflicts >= 0 {
		t.Fatalf("%d injected conflicts left: the write did not meet them", stale.conflicts+1)
	}
}

// TestDynamoItemAttributes checks the attributes the stream filter, the
// pending index and TTL depend on.
func TestDynamoItemAttributes(t *testing.T) {
	d := openDynamo(t)
	now := time.Date(2026, 6, 1, 0, 0, 0, 0, time.UTC)
	d.now = func() time.Time { return now }
	d.outTTL = 48 * time.Hour
	ctx := t.Context()
	raw := func() map[string]types.AttributeValue {
		t.Helper()
		out, err := d.client.GetItem(ctx, &dynamodb.GetItemInput{
			TableName: aws.String(d.table), Key: rowKeyAttrs(listA, h1), ConsistentRead: aws.Bool(true),
		})
		if err != nil {
			t.Fatalf("get item: %v", err)
		}
		return out.Item
	}
	str := func(item map[string]types.AttributeValue, name string) string {
		switch v := item[name].(type) {
		case *types.AttributeValueMemberS:
			return v.Value
		case *types.AttributeValueMemberN:
			return v.Value
		case nil:
			return ""
		default:
			t.Fatalf("attribute %s has type %T", name, v)
			return ""
		}
	}
	expires := strconv.FormatInt(now.Add(48*time.Hour).Unix(), 10)
	a10, a11, r12 := change(listA, h1, add, 10), change(listA, h1, add, 11), change(listA, h1, rem, 12)
	r := &run{s: d}
	tests := []struct {
		name            string
		st              step
		flip, g, expire string
	}{
		{"a flip is marked and pending", apply(Result{Flipped: 1}, a10), a10.Precedence(), pendingKey(listA, add, h1[0]), ""},
		{"a no-op is not marked", apply(Result{NoOps: 1}, a11), "", pendingKey(listA, add, h1[0]), ""},
		{"sent is neither marked nor pending", send(listA, add, h1), "", "", ""},
		{"an exit is marked and pending", apply(Result{Flipped: 1}, r12), r12.Precedence(), pendingKey(listA, rem, h1[0]), ""},
		{"a sent exit expires", send(listA, rem, h1), "", "", expires},
	}
	for _, tt := range tests {
		tt.st.do(t, r)
		item := raw()
		if got := str(item, dynFlip); got != tt.flip {
			t.Errorf("%s: f = %q, want %q", tt.name, got, tt.flip)
		}
		if got := str(item, dynPending); got != tt.g {
			t.Errorf("%s: g = %q, want %q", tt.name, got, tt.g)
		}
		if got := str(item, dynExpires); got != tt.expire {
			t.Errorf("%s: x = %q, want %q", tt.name, got, tt.expire)
		}
	}
}

func TestNewDynamoChecksOptions(t *testing.T) {
	client := &serialDynamo{}
	tests := []struct {
		name  string
		opts  DynamoOptions
		field string
	}{
		{"no client", DynamoOptions{Table: "t"}, "Client"},
		{"no table", DynamoOptions{Client: client}, "Table"},
		{"negative TTL", DynamoOptions{Client: client, Table: "t", OutTTL: -time.Hour}, "OutTTL"},
		{"negative concurrency", DynamoOptions{Client: client, Table: "t", Concurrency: -1}, "Concurrency"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := NewDynamo(tt.opts)
			if err == nil || !strings.Contains(err.Error(), tt.field) {
				t.Fatalf("NewDynamo error %v, want one naming %s", err, tt.field)
			}
		})
	}
	d, err := NewDynamo(DynamoOptions{Client: client, Table: "t"})
	if err != nil || d.outTTL != DefaultOutTTL || d.concurrency != DefaultDynamoConcurrency {
		t.Fatalf("NewDynamo defaults = %v, %d, %v", d.outTTL, d.concurrency, err)
	}
}

// TestDynamoPendingSpansShards fills pending rows over many index shards
// and reads them back with limits.
func TestDynamoPendingSpansShards(t *testing.T) {
	d := openDynamo(t)
	ctx := t.Context()
	var changes []audience.Change
	for i := range 60 {
		changes = append(changes, change(listA, hashOf(strconv.Itoa(i)), add, 10))
	}
	if res, err := d.Apply(ctx, changes); err != nil || res.Flipped != 60 {
		t.Fatalf("Apply = %+v, %v", res, err)
	}
	seen := map[string]bool{}
	for _, limit := range []int{7, 100} {
		p, err := d.Pending(ctx, listA, add, limit)
		if err != nil {
			t.Fatalf("Pending: %v", err)
		}
		if want := min(limit, 60); len(p) != want {
			t.Fatalf("Pending(limit %d) = %d rows, want %d", limit, len(p), want)
		}
		for _, x := range p {
			seen[x.Hash] = true
		}
	}
	if len(seen) != 60 {
		t.Fatalf("Pending saw %d distinct rows, want 60", len(seen))
	}
	m, err := d.Members(ctx)
	if err != nil || m[listA] != 60 {
		t.Fatalf("Members = %v, %v; want 60", m, err)
	}
}

func TestDynamoStreamFilterIsJSONOnTheFlipMark(t *testing.T) {
	var pattern struct {
		DynamoDB struct {
			NewImage map[string]map[string][]map[string]bool
		} `json:"dynamodb"`
	}
	if err := json.Unmarshal([]byte(DynamoStreamFilter), &pattern); err != nil {
		t.Fatalf("DynamoStreamFilter is not JSON: %v", err)
	}
	f := pattern.DynamoDB.NewImage[dynFlip]["S"]
	if len(f) != 1 || !f[0]["exists"] {
		t.Fatalf("DynamoStreamFilter = %s, want NewImage.%s.S to exist", DynamoStreamFilter, dynFlip)
	}
}

func TestDynamoListByKey(t *testing.T) {
	d := openDynamo(t)
	ctx := t.Context()
	odd := List{Audience: audience.Ref{Namespace: "a:b", ID: "c/d"}, Type: audience.ListIDFA}
	if _, err := d.Apply(ctx, []audience.Change{change(odd, h1, add, 10)}); err != nil {
		t.Fatalf("Apply: %v", err)
	}
	// A second store, as another Lambda instance would be, knows no lists.
	other, err := NewDynamo(DynamoOptions{Client: d.client, Table: d.table})
	if err != nil {
		t.Fatalf("new: %v", err)
	}
	for range 2 {
		got, ok, err := other.ListByKey(ctx, odd.Key())
		if err != nil || !ok || got != odd {
			t.Fatalf("ListByKey(%q) = %+v, %v, %v; want %+v", odd.Key(), got, ok, err, odd)
		}
	}
	if _, ok, err := other.ListByKey(ctx, listB.Key()); err != nil || ok {
		t.Fatalf("ListByKey of an unseen list = found %v, %v; want not found", ok, err)
	}
}
