package upload

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/http"

	"github.com/pinlist/pinlist/internal/audience"
	"github.com/pinlist/pinlist/internal/ledger"
	"github.com/pinlist/pinlist/internal/pinterest"
	"github.com/pinlist/pinlist/internal/wire"
)

// Eraser is what a Recorder needs for "erasure" messages (ledger.Keeper's
// Erase; ledger.SQLite.EraseTx in the local runner's transaction).
type Eraser interface {
	Erase(ctx context.Context, erasures []ledger.Erasure) (ledger.Erased, error)
}

// Retirer is what a Recorder needs for "retire" messages (ledger.Keeper's
// Retire; ledger.SQLite.RetireTx in the local runner's transaction).
type Retirer interface {
	Retire(ctx context.Context, a audience.Ref) ([]ledger.List, error)
}

// errNoKeeper: the store cannot keep the ledger's promises.
var errNoKeeper = errors.New("the ledger store does not implement erasure and retirement (ledger.Keeper)")

// Erase calls f.EraseFunc.
func (f RecorderFuncs) Erase(ctx context.Context, erasures []ledger.Erasure) (ledger.Erased, error) {
	if f.EraseFunc == nil {
		return ledger.Erased{}, errNoKeeper
	}
	return f.EraseFunc(ctx, erasures)
}

// Retire calls f.RetireFunc.
func (f RecorderFuncs) Retire(ctx context.Context, a audience.Ref) ([]ledger.List, error) {
	if f.RetireFunc == nil {
		return nil, errNoKeeper
	}
	return f.RetireFunc(ctx, a)
}

// Erase erases in the Handler's ledger.
func (s stores) Erase(ctx context.Context, erasures []ledger.Erasure) (ledger.Erased, error) {
	k, ok := s.Store.(ledger.Keeper)
	if !ok {
		return ledger.Erased{}, errNoKeeper
	}
	return k.Erase(ctx, erasures)
}

// Retire retires in the Handler's ledger.
func (s stores) Retire(ctx context.Context, a audience.Ref) ([]ledger.List, error) {
	k, ok := s.Store.(ledger.Keeper)
	if !ok {
		return nil, errNoKeeper
	}
	return k.Retire(ctx, a)
}

// erasuresOf turns an erasure message's records into ledger erasures.
func erasuresOf(m wire.Message) []ledger.Erasure {
	out := make([]ledger.Erasure, 0, len(m.Records))
	for _, c := range m.Changes(0) {
		out = append(out, ledger.Erasure{Type: c.List, Hash: c.Hash, Precedence: c.Precedence()})
	}
	return out
}

// applyErasures records the erasures of msgs in rec (one call): on a
// failure every erasure message fails, to be delivered again.
func applyErasures(ctx context.Context, rec Recorder, erasures []ledger.Erasure, msgs []string, a *Applied, lists map[ledger.List]bool) {
	if len(erasures) == 0 {
		return
	}
	var er ledger.Erased
	var err error
	if e, ok := rec.(Eraser); ok {
		er, err = e.Erase(ctx, erasures)
	} else {
		err = errNoKeeper
	}
	if err != nil {
		err = fmt.Errorf("record %d erasures of %d messages in the ledger: %w", len(erasures), len(msgs), err)
		for _, id := range msgs {
			a.Failed = append(a.Failed, Failure{ID: id, Err: err})
		}
		return
	}
	a.Erasures += len(erasures)
	a.ErasedRows += er.Flipped
	for _, l := range er.Lists {
		lists[l] = true
	}
}

// applyRetire records the retirement of an audience in rec; its lists
// (every type: those the ledger does not know are finished at once) are
// flushed next, which removes their members.
func applyRetire(ctx context.Context, rec Recorder, ref audience.Ref) ([]ledger.List, error) {
	r, ok := rec.(Retirer)
	if !ok {
		return nil, errNoKeeper
	}
	if _, err := r.Retire(ctx, ref); err != nil {
		return nil, err
	}
	out := make([]ledger.List, len(audience.ListTypes))
	for i, t := range audience.ListTypes {
		out[i] = ledger.List{Audience: ref, Type: t}
	}
	return out, nil
}

// keeper is the Handler's ledger's promises, or nil.
func (h *Handler) keeper() ledger.Keeper {
	k, _ := h.o.Ledger.(ledger.Keeper)
	return k
}

// withRetiring adds the retired lists not finished yet to lists (FlushAll:
// a retirement whose flush failed is finished by a later sweep).
func (h *Handler) withRetiring(ctx context.Context, lists []ledger.List) ([]ledger.List, error) {
	k := h.keeper()
	if k == nil {
		return lists, nil
	}
	r, err := k.Retiring(ctx)
	if err != nil {
		return nil, fmt.Errorf("list the retiring lists: %w", err)
	}
	return append(lists, r...), nil
}

// loadRetired reads the retired lists for this run: they are never written
// to or created, only emptied and finished (retireList).
func (r *run) loadRetired() error {
	k := r.h.keeper()
	if k == nil {
		return nil
	}
	retired, err := k.Retired(r.ctx)
	if err != nil {
		return fmt.Errorf("read the retired lists: %w", err)
	}
	r.retired = retired
	return nil
}

// audienceRemover is the Pinterest call that removes an audience
// (*pinterest.Client has it).
type audienceRemover interface {
	RemoveAudience(ctx context.Context, id, name, description string) (*pinterest.Audience, error)
}

// retiredName is the name a retired list's CUSTOMER_LIST audience gets.
func retiredName(k listKey) string {
	return "pinlist retired " + k.audience + " " + string(k.list)
}

// retireList finishes the retirement of l: its pending removals are sent
// (a list that no longer exists holds nobody), the CUSTOMER_LIST audiences
// that target it are renamed and removed (API v5 cannot delete a customer
// list: the emptied list stays in the ad account), and the ledger drops
// its rows.
func (r *run) retireList(l ledger.List) error {
	k := listKey{l.Audience.Key(), l.Type}
	defer r.h.lockList(k)()
	info, existed, err := r.findList(k)
	if err != nil {
		return err
	}
	err = r.drain(l, audience.OpAdd, func([]string) error { return nil }) // none after Retire; never sent
	if err != nil {
		return err
	}
	err = r.drain(l, audience.OpRemove, func(records []string) error {
		if !existed {
			return nil
		}
		err := r.update(info.id, pinterest.OpRemove, records)
		if isNotFound(err) {
			existed = false // gone: it holds nobody
			return nil
		}
		return err
	})
	if err != nil {
		return err
	}
	if existed {
		if err := r.removeAudiences(k, info.id); err != nil {
			return err
		}
	}
	if err := r.h.keeper().FinishRetire(r.ctx, l); err != nil {
		return err
	}
	r.h.forgetKey(k)
	r.h.settled(k)
	r.flushed.ListsRetired++
	r.h.o.Logger.LogAttrs(r.ctx, slog.LevelInfo, "list retired: members removed, audience removed, ledger rows dropped",
		slog.String("list", l.Key()), slog.Bool("on_pinterest", existed))
	return nil
}

// removeAudiences renames and removes the CUSTOMER_LIST audiences that
// target customer list id.
func (r *run) removeAudiences(k listKey, id string) error {
	remover, ok := r.h.o.Client.(audienceRemover)
	if !ok {
		r.h.o.Logger.LogAttrs(r.ctx, slog.LevelWarn, "the Pinterest client cannot remove audiences; the retired list's audience stays",
			slog.String("customer_list", id))
		return nil
	}
	var targets []string
	err := r.call(func(ctx context.Context) error {
		targets = targets[:0]
		for a, err := range r.h.o.Client.Audiences(ctx) {
			if err != nil {
				return err
			}
			if a.AudienceType == audienceTypeCustomerList && a.Rule.CustomerListID == id && a.Status != audienceStatusRemoved {
				targets = append(targets, a.ID)
			}
		}
		return nil
	})
	if err != nil {
		return fmt.Errorf("look for the audiences of retired customer list %s: %w", id, err)
	}
	for _, aid := range targets {
		err := r.call(func(ctx context.Context) error {
			_, err := remover.RemoveAudience(ctx, aid, retiredName(k),
				"Retired by pinlist: AEP deleted audience "+k.audience+"; the customer list was emptied.")
			return err
		})
		if err != nil && !isNotFound(err) {
			return fmt.Errorf("remove audience %s of retired customer list %s: %w", aid, id, err)
		}
	}
	return nil
}

// isNotFound reports whether err is Pinterest's 404.
func isNotFound(err error) bool {
	var apiErr *pinterest.APIError
	return errors.As(err, &apiErr) && apiErr.StatusCode == http.StatusNotFound
}

// forgetKey drops the cached list for k.
func (h *Handler) forgetKey(k listKey) {
	h.mu.Lock()
	defer h.mu.Unlock()
	delete(h.lists, k)
}

// repair re-creates a list that vanished on Pinterest's side: the ledger
// forgets what it sent (every member is pending again), the cache forgets
// the list, and the caller's flush creates it with its members and points
// the vanished list's audience at it (keepaudience.go). It logs an ERROR
// (the alert; the RepairedLists metric counts it).
func (r *run) repair(l ledger.List, why string) error {
	k := r.h.keeper()
	if k == nil {
		return nil
	}
	n, err := k.ResetList(r.ctx, l, ledger.Out)
	if err != nil {
		return fmt.Errorf("repair vanished list: %w", err)
	}
	key := listKey{l.Audience.Key(), l.Type}
	r.h.forgetKey(key)
	r.h.startRepair(key)
	r.flushed.ListsRepaired++
	r.h.o.Logger.LogAttrs(r.ctx, slog.LevelError, "customer list vanished on Pinterest; re-creating it and refilling it from the ledger",
		slog.String("list", l.Key()), slog.String("detected_by", why), slog.Int64("rows_pending", n))
	return nil
}

// expectsList reports whether the ledger expects l to exist on Pinterest
// (it sent it members that are still in).
func (r *run) expectsList(l ledger.List) (bool, error) {
	k := r.h.keeper()
	if k == nil {
		return false, nil
	}
	ok, err := k.SentIn(r.ctx, l)
	if err != nil {
		return false, fmt.Errorf("check whether the ledger expects the list: %w", err)
	}
	return ok, nil
}

// flushList flushes l (flushListOnce) or, when it is retired, finishes its
// retirement. A 404 on an update, when a listing confirms the list is gone
// (it vanished since it was found), repairs it once and flushes it again.
func (r *run) flushList(l ledger.List) error {
	if r.retired[l.Key()] {
		return r.retireList(l)
	}
	err := r.flushListOnce(l)
	if err == nil || !isNotFound(err) || r.repaired[l.Key()] || r.h.keeper() == nil {
		return err
	}
	// Confirm with a listing (not cached: the 404 dropped the list from
	// the cache, and a list still listed was not deleted).
	k := listKey{l.Audience.Key(), l.Type}
	found, lerr := r.listLists(k)
	if lerr != nil {
		return errors.Join(err, lerr)
	}
	if _, listed := found[k]; listed {
		return err
	}
	r.markRepaired(l)
	if rerr := r.repair(l, "404 on update"); rerr != nil {
		return errors.Join(err, rerr)
	}
	return r.flushListOnce(l)
}

// markRepaired records that l was repaired in this run (once per run).
func (r *run) markRepaired(l ledger.List) {
	if r.repaired == nil {
		r.repaired = map[string]bool{}
	}
	r.repaired[l.Key()] = true
}

// repairIfVanished is called when l was not found on Pinterest: if the
// ledger expects it, it is repaired (once per run).
func (r *run) repairIfVanished(l ledger.List) error {
	if r.repaired[l.Key()] {
		return nil
	}
	expected, err := r.expectsList(l)
	if err != nil || !expected {
		return err
	}
	r.markRepaired(l)
	return r.repair(l, "missing from GET customer_lists")
}
