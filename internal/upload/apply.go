package upload

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"slices"

	"github.com/pinlist/pinlist/internal/audience"
	"github.com/pinlist/pinlist/internal/pinterest"
	"github.com/pinlist/pinlist/internal/token"
)

// seqShift places a message's index (within its group in the batch) in the
// high bits of its changes' Seq: coalescing then prefers later messages on
// equal event times, and every surviving change tells which message it came
// from (Seq >> seqShift). One message holds far fewer than 2^32 records.
const seqShift = 32

// chunk is one customer list call's worth of records.
type chunk struct {
	op      pinterest.Operation
	records []string
	// src is the earliest message (index in the group) with a change here.
	src int
}

// listWork is everything one batch does to one customer list.
type listWork struct {
	key listKey
	// ensure is the earliest audience message asking for the list to exist,
	// or -1 when none does.
	ensure               int
	display, description string
	adds, removes        []chunk
}

// minSrc is the earliest message with a change in chunks.
func minSrc(chunks []chunk) int {
	src := noFailure
	for _, c := range chunks {
		src = min(src, c.src)
	}
	return src
}

// allSrc is the earliest message with any part in w.
func (w *listWork) allSrc() int {
	src := min(minSrc(w.adds), minSrc(w.removes))
	if w.ensure >= 0 {
		src = min(src, w.ensure)
	}
	return src
}

// noFailure is the failure index of a group with no failed message.
const noFailure = int(^uint(0) >> 1)

// applyGroup applies one message group and returns the index of its first
// message that must be delivered again (len(g.msgs) or more when none) and
// why. Messages from that index on are failed together, so the group keeps
// its order: a message is only ever deleted when it and every message before
// it in its group were applied.
//
// Only messages before the first undecodable one are applied; that one can
// never succeed, so it fails on every delivery until SQS moves it to the
// dead-letter queue, and the group resumes behind it.
func (b *batch) applyGroup(g *group) (int, error) {
	failFrom := noFailure
	var why error
	fail := func(src int, err error) {
		if src < failFrom {
			failFrom = src
		}
		if why == nil {
			why = err
		}
	}
	valid := len(g.msgs)
	for i, m := range g.msgs {
		if m.err != nil {
			valid = i
			fail(i, fmt.Errorf("decode message %s: %w", m.id, m.err))
			break
		}
	}
	work := b.plan(g.msgs[:valid])
	for i, w := range work {
		src, err := b.applyList(w)
		if err == nil {
			continue
		}
		// Stop the group at its first failure: what is left would most
		// likely fail the same way, and spend retries and rate limit on it.
		fail(src, err)
		for _, rest := range work[i+1:] {
			fail(rest.allSrc(), err)
		}
		break
	}
	return failFrom, why
}

// plan coalesces the changes of msgs (one group's decodable messages, in
// order) and cuts them into customer list calls, per list. After coalescing
// each (list, identifier) has one change, so the ADD and REMOVE sets of a
// list are disjoint and the calls may run in any order.
func (b *batch) plan(msgs []*message) []*listWork {
	byKey := map[listKey]*listWork{}
	get := func(k listKey) *listWork {
		w := byKey[k]
		if w == nil {
			w = &listWork{key: k, ensure: -1}
			byKey[k] = w
		}
		return w
	}
	names := map[string]naming{}
	var changes []audience.Change
	for i, m := range msgs {
		if m.msg.Kind == audience.MessageAudience {
			key := m.msg.Audience.Key()
			names[key] = naming{m.msg.Name, m.msg.Description} // the latest wins
			for _, lt := range audience.ListTypes {
				if w := get(listKey{key, lt}); w.ensure < 0 {
					w.ensure = i
				}
			}
		}
		changes = append(changes, m.msg.Changes(uint64(i)<<seqShift)...)
	}
	for _, c := range audience.Coalesce(changes) {
		w := get(listKey{c.Audience.Key(), c.List})
		src := int(c.Seq >> seqShift)
		if c.Op == audience.OpRemove {
			w.removes = addRecord(w.removes, pinterest.OpRemove, c.Hash, src, b.h.maxRecords)
		} else {
			w.adds = addRecord(w.adds, pinterest.OpAdd, c.Hash, src, b.h.maxRecords)
		}
	}
	work := make([]*listWork, 0, len(byKey))
	for key, n := range names {
		b.h.rememberName(key, n)
	}
	for _, w := range byKey {
		n, ok := names[w.key.audience]
		if !ok {
			n = b.h.name(w.key.audience)
		}
		w.display, w.description = n.display, n.description
		work = append(work, w)
	}
	slices.SortFunc(work, func(a, b *listWork) int {
		return cmp.Or(cmp.Compare(a.key.audience, b.key.audience),
			cmp.Compare(slices.Index(audience.ListTypes, a.key.list), slices.Index(audience.ListTypes, b.key.list)))
	})
	return work
}

// permanent reports whether err, from a call that was started, would fail
// the same way on every delivery: not a stop of the batch, not retryable
// (429, 5xx, network, deadline), not a token problem.
func (b *batch) permanent(err error) bool {
	var unauthorized *pinterest.UnauthorizedError
	return b.stop == nil && !pinterest.IsRetryable(err) && !errors.As(err, &unauthorized) &&
		!errors.Is(err, context.Canceled) && !errors.Is(err, token.ErrExpired)
}

// addRecord appends hash to the last chunk, or to a new one when the last is full.
func addRecord(chunks []chunk, op pinterest.Operation, hash string, src, maxRecords int) []chunk {
	if n := len(chunks); n == 0 || len(chunks[n-1].records) >= maxRecords {
		chunks = append(chunks, chunk{op: op, records: make([]string, 0, maxRecords), src: src})
	}
	last := &chunks[len(chunks)-1]
	last.records = append(last.records, hash)
	last.src = min(last.src, src)
	return chunks
}

// applyList makes w's list exist (with its CUSTOMER_LIST audience) when it
// needs to, then sends w's ADD and REMOVE calls. On an error it returns the
// earliest message with a part not applied.
func (b *batch) applyList(w *listWork) (int, error) {
	chunks := append(slices.Clip(w.adds), w.removes...)
	info, found, err := b.findList(w.key)
	if err != nil {
		return w.allSrc(), err
	}
	next := 0
	switch {
	case found:
		if info, err = b.ensureAudience(w.key, info, w.display, w.description); err != nil {
			return w.allSrc(), err
		}
	case len(w.adds) == 0 && w.ensure < 0:
		// Only removals, from a list that does not exist: nothing to remove.
		return noFailure, nil
	case len(w.adds) == 0:
		// An audience message asks for the list before any member: create it
		// empty. Should Pinterest refuse an empty list for good, the list is
		// created with its first members instead, under the name remembered.
		info, err = b.createList(w.key, w.display, w.description, nil)
		if err != nil && info.id == "" && b.permanent(err) {
			b.h.logger.LogAttrs(b.ctx, slog.LevelWarn, "could not create an empty customer list; it will be created with its first members",
				slog.String("list", stableName(w.key.audience, w.key.list)), slog.String("error", err.Error()))
			return noFailure, nil
		}
		if err != nil {
			return w.allSrc(), err
		}
	default:
		// On an error the first records count as not applied even if the
		// list was created with them: sending them again is harmless.
		if info, err = b.createList(w.key, w.display, w.description, w.adds[0].records); err != nil {
			return w.allSrc(), err
		}
		next = 1
	}
	for i := next; i < len(chunks); i++ {
		c := chunks[i]
		err := b.call(func(ctx context.Context) error {
			_, err := b.h.client.UpdateCustomerList(ctx, info.id, c.op, c.records)
			return err
		})
		if err != nil {
			return minSrc(chunks[i:]), fmt.Errorf("%s %d records to customer list %s: %w", c.op, len(c.records), info.id, err)
		}
		b.changesApplied += len(c.records)
	}
	return noFailure, nil
}
