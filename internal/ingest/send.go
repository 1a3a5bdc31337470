package ingest

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"log/slog"
	"slices"
	"time"

	"github.com/pinlist/pinlist/internal/audience"
	"github.com/pinlist/pinlist/internal/queue"
)

// responseMargin is the time kept back from the request deadline for writing
// the answer: no send attempt starts later than this before the deadline.
const responseMargin = 250 * time.Millisecond

// outgoing is the queue message for one packed body: grouped by audience
// (its key, which audience.Ref.Validate keeps within SQS's MessageGroupId
// alphabet and length), deduplicated by content (a caller's retry of the same
// request produces the same bodies, which SQS then drops within its
// five-minute window; 64 hex characters, within SQS's 128).
func outgoing(ref audience.Ref, body []byte) queue.Outgoing {
	sum := sha256.Sum256(body)
	return queue.Outgoing{GroupID: ref.Key(), DedupID: hex.EncodeToString(sum[:]), Body: body}
}

// sendResult is what enqueueing a request's messages came to.
type sendResult struct {
	unsent   []int // indices into the messages that were never enqueued
	attempts int   // send rounds made
	retried  int   // message sends repeated after a failure
}

// sendAll offers msgs to the sender in batches of at most queue.MaxBatch and
// offers the failed ones again after the send policy's jittered backoff (one
// round per policy attempt; retry.Do does not fit, as each round re-offers
// only the messages that failed), until all are
// enqueued, the attempts are used up, or the request's deadline leaves no room
// for another round. Messages keep their relative order in every round.
func (h *Handler) sendAll(ctx context.Context, msgs []queue.Outgoing, log *slog.Logger) sendResult {
	pending := make([]int, len(msgs))
	for i := range pending {
		pending[i] = i
	}
	var res sendResult
	batch := make([]queue.Outgoing, 0, queue.MaxBatch)
	for len(pending) > 0 {
		res.attempts++
		var failed []int
		for chunk := range slices.Chunk(pending, queue.MaxBatch) {
			batch = batch[:0]
			for _, i := range chunk {
				batch = append(batch, msgs[i])
			}
			bad, err := h.sender.SendBatch(ctx, batch)
			switch {
			case err != nil:
				log.WarnContext(ctx, "send batch failed", "messages", len(batch), "attempt", res.attempts, "error", err.Error())
				failed = append(failed, chunk...)
			case len(bad) > 0:
				idx, ok := failedIndices(bad, len(chunk))
				if !ok {
					// A sender that names entries it was not given cannot be
					// trusted about the others either.
					log.ErrorContext(ctx, "send batch reported failed entries out of range", "messages", len(batch))
					failed = append(failed, chunk...)
					continue
				}
				log.WarnContext(ctx, "send batch: some entries failed", "failed", len(idx), "messages", len(batch), "attempt", res.attempts)
				for _, j := range idx {
					failed = append(failed, chunk[j])
				}
			}
		}
		pending = failed
		if len(pending) == 0 {
			break
		}
		if res.attempts >= h.sendRetry.Attempts {
			break
		}
		delay := h.sendRetry.Delay(res.attempts, nil)
		if deadline, ok := ctx.Deadline(); ok && time.Until(deadline) < delay+responseMargin {
			break
		}
		if err := h.sendRetry.Sleep(ctx, delay); err != nil {
			break
		}
		res.retried += len(pending)
	}
	res.unsent = pending
	return res
}

// failedIndices sorts and deduplicates a sender's failed indices; ok is false
// when one is out of range.
func failedIndices(bad []int, n int) (idx []int, ok bool) {
	idx = slices.Clone(bad)
	slices.Sort(idx)
	idx = slices.Compact(idx)
	if idx[0] < 0 || idx[len(idx)-1] >= n {
		return nil, false
	}
	return idx, true
}
