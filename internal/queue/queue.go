// Package queue is pinlist's queue seam: one small interface for handing
// audience messages from ingest to apply, with an Amazon SQS implementation
// (aws-sdk-go-v2; the standard changes queue, and FIFO for the legacy queue
// that pinlist redrive empties) and a local durable one (goqite on SQLite).
package queue

import "context"

// MaxBatch is the most messages one SendBatch call takes (the SQS limit).
const MaxBatch = 10

// Outgoing is a message to enqueue. GroupID orders messages (SQS FIFO
// MessageGroupId: one audience); DedupID makes a resend of the same content a
// no-op (MessageDeduplicationId).
type Outgoing struct {
	GroupID string
	DedupID string
	Body    []byte
}

// Sender enqueues messages. SendBatch takes at most MaxBatch messages and
// returns the indices (into msgs) of the entries that were not enqueued and may
// be retried; err is set when the whole call failed (then nothing may be
// assumed enqueued).
type Sender interface {
	SendBatch(ctx context.Context, msgs []Outgoing) (failed []int, err error)
}
