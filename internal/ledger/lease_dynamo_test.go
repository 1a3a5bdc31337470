package ledger

import (
	"errors"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

func TestDynamoLeases(t *testing.T) {
	d := openDynamo(t)
	ctx := t.Context()
	var now atomic.Int64
	now.Store(time.Date(2026, 6, 1, 0, 0, 0, 0, time.UTC).UnixMilli())
	leases, err := NewDynamoLeases(DynamoOptions{Client: d.client, Table: d.table, Now: func() time.Time { return time.UnixMilli(now.Load()) }})
	if err != nil {
		t.Fatal(err)
	}
	at := func(d time.Duration) time.Time { return time.UnixMilli(now.Load()).Add(d) }

	releaseA, err := leases.Acquire(ctx, listA, at(time.Minute))
	if err != nil {
		t.Fatalf("first Acquire: %v", err)
	}
	if _, err := leases.Acquire(ctx, listA, at(time.Minute)); !errors.Is(err, ErrLeaseHeld) {
		t.Fatalf("second Acquire while held = %v, want ErrLeaseHeld", err)
	}
	releaseB, err := leases.Acquire(ctx, listB, at(time.Minute))
	if err != nil {
		t.Fatalf("another list's Acquire: %v", err)
	}
	if err := releaseB(ctx); err != nil {
		t.Fatalf("release B: %v", err)
	}

	// A holder that crashed (never released) is overtaken after expiry,
	// and its late release then changes nothing.
	now.Add((time.Minute + time.Millisecond).Milliseconds())
	releaseC, err := leases.Acquire(ctx, listA, at(time.Minute))
	if err != nil {
		t.Fatalf("Acquire after expiry: %v", err)
	}
	if err := releaseA(ctx); err == nil || !strings.Contains(err.Error(), "another flush took it over") {
		t.Fatalf("release of the overtaken lease = %v, want an error saying so", err)
	}
	if u, err := leases.leaseUntil(ctx, listA); err != nil || u != at(time.Minute).UnixMilli() {
		t.Fatalf("lease after the late release: until %d, %v; want the new holder's %d", u, err, at(time.Minute).UnixMilli())
	}
	if err := releaseC(ctx); err != nil {
		t.Fatalf("release C: %v", err)
	}
	// Released: the next Acquire needs no waiting.
	if _, err := leases.Acquire(ctx, listA, at(time.Minute)); err != nil {
		t.Fatalf("Acquire after release: %v", err)
	}
}

// TestDynamoLeasesRace has many goroutines take one lease at once: exactly
// one wins.
func TestDynamoLeasesRace(t *testing.T) {
	d := openDynamo(t)
	leases, err := NewDynamoLeases(DynamoOptions{Client: d.client, Table: d.table})
	if err != nil {
		t.Fatal(err)
	}
	var won, held atomic.Int32
	var wg sync.WaitGroup
	for range 8 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			_, err := leases.Acquire(t.Context(), listA, time.Now().Add(time.Minute))
			switch {
			case err == nil:
				won.Add(1)
			case errors.Is(err, ErrLeaseHeld):
				held.Add(1)
			default:
				t.Errorf("Acquire: %v", err)
			}
		}()
	}
	wg.Wait()
	if won.Load() != 1 || held.Load() != 7 {
		t.Fatalf("%d won and %d found it held, want 1 and 7", won.Load(), held.Load())
	}
}

func TestNewDynamoLeasesChecksOptions(t *testing.T) {
	if _, err := NewDynamoLeases(DynamoOptions{Table: "t"}); err == nil || !strings.Contains(err.Error(), "Client") {
		t.Errorf("no client: %v", err)
	}
	if _, err := NewDynamoLeases(DynamoOptions{Client: &serialDynamo{}}); err == nil || !strings.Contains(err.Error(), "Table") {
		t.Errorf("no table: %v", err)
	}
}
