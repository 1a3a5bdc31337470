package upload

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"slices"

	"github.com/pinlist/pinlist/internal/ledger"
	"github.com/pinlist/pinlist/internal/pinterest"
)

// A repaired list keeps its audience. Advertisers' campaigns target a
// list's CUSTOMER_LIST audience, not the list, so when a list that vanished
// on Pinterest is re-created (repair), the audience that targeted it is
// pointed at the new list (PATCH audiences/{id}, rule.customer_list_id)
// rather than replaced by a new one. Should Pinterest refuse the change (a
// 4xx), a new audience is created as for any new list, and a WARN names the
// old audience: its campaigns must be re-targeted by hand.
//
// The old audience is found in ensureAudience's listing, which every list
// without a known audience gets, a newly created one too: one that targets
// the vanished list when its ID is known (the list answered 404 in this
// container, Handler.gone), else one named like the list (the stable part,
// as pinlist names audiences) whose list no longer exists. So a repair is
// finished in any container: a re-point that failed for a reason that may
// pass (429 or 5xx after the client's retries, the deadline) is tried again
// by the next flush that checks the list's audience, and a re-creation of
// the list that failed is done by the next flush of the list, which finds
// the old audience by its name; nothing is created meanwhile.

// audienceStatusRemoved is the status of an audience removed with
// operation_type REMOVE (a retired list's).
const audienceStatusRemoved = "REMOVED"

// audiencePointer is the Pinterest call that points an audience at another
// customer list (*pinterest.Client has it).
type audiencePointer interface {
	PointAudience(ctx context.Context, audienceID, customerListID string) (*pinterest.Audience, error)
}

var _ audiencePointer = (*pinterest.Client)(nil)

// errCannotPoint stands for Pinterest's refusal when the client has no
// PointAudience.
var errCannotPoint = errors.New("the Pinterest client cannot point an audience at another customer list")

// String is the list's key as the ledger writes it ("ns:id/TYPE").
func (k listKey) String() string { return k.audience + "/" + string(k.list) }

// startRepair records that k is being re-created: the ID of the list that
// vanished, when a 404 left it in gone, is kept as a hint for finding its
// audience until ensureAudience or createAudience settles k's audience.
func (h *Handler) startRepair(k listKey) {
	h.mu.Lock()
	defer h.mu.Unlock()
	if id := h.gone[k]; id != "" {
		h.repairs[k] = id
	}
	delete(h.gone, k)
}

// vanishedList is the ID of the list that k's re-created list replaces,
// when this process knows it and k's audience is not settled yet, else "".
func (h *Handler) vanishedList(k listKey) string {
	h.mu.Lock()
	defer h.mu.Unlock()
	return h.repairs[k]
}

// settled records that k's audience is settled (it has one).
func (h *Handler) settled(k listKey) {
	h.mu.Lock()
	defer h.mu.Unlock()
	delete(h.repairs, k)
}

// mayBeOldAudience reports whether the CUSTOMER_LIST audience a may be the
// audience of a list that k's list (newID) replaces: it is not removed,
// targets another list, and that list is the one known to have vanished
// or the audience is named like k's list. (Whether its list still exists
// is checked later, and only when needed: oldAudience.)
func mayBeOldAudience(k listKey, newID, vanished string, a *pinterest.Audience) bool {
	target := a.Rule.CustomerListID
	if a.Status == audienceStatusRemoved || target == "" || target == newID {
		return false
	}
	return (vanished != "" && target == vanished) || matchesList(a.Name, k.audience, k.list)
}

// oldAudience picks, of the candidates mayBeOldAudience let through, the
// audience of the list k's list replaces, or nil: one that targets the
// list known to have vanished (named like k's list first), else one named
// like k's list whose list no longer exists (a listing tells). Of several
// alike the newest wins: after a refused re-point the newer audience is
// the one campaigns were told to use.
func (r *run) oldAudience(k listKey, candidates []*pinterest.Audience) (*pinterest.Audience, error) {
	if len(candidates) == 0 {
		return nil, nil
	}
	vanished := r.h.vanishedList(k)
	var byID, byName []*pinterest.Audience
	for _, a := range candidates {
		if vanished != "" && a.Rule.CustomerListID == vanished {
			byID = append(byID, a)
		} else {
			byName = append(byName, a)
		}
	}
	if len(byID) > 0 {
		named := slices.DeleteFunc(slices.Clone(byID), func(a *pinterest.Audience) bool {
			return !matchesList(a.Name, k.audience, k.list)
		})
		if len(named) > 0 {
			return newest(named), nil
		}
		return newest(byID), nil
	}
	live, err := r.customerListIDs()
	if err != nil {
		return nil, err
	}
	byName = slices.DeleteFunc(byName, func(a *pinterest.Audience) bool { return live[a.Rule.CustomerListID] })
	if len(byName) == 0 {
		return nil, nil
	}
	return newest(byName), nil
}

// newest returns the audience with the greatest ID (the last created).
func newest(as []*pinterest.Audience) *pinterest.Audience {
	best := as[0]
	for _, a := range as[1:] {
		if olderID(best.ID, a.ID) {
			best = a
		}
	}
	return best
}

// customerListIDs lists the IDs of the ad account's customer lists.
func (r *run) customerListIDs() (map[string]bool, error) {
	live := map[string]bool{}
	err := r.call(func(ctx context.Context) error {
		clear(live)
		for l, err := range r.h.o.Client.CustomerLists(ctx) {
			if err != nil {
				return err
			}
			live[l.ID] = true
		}
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("list the customer lists to tell whether an audience's list is gone: %w", err)
	}
	return live, nil
}

// keepAudience gives the list info, which no audience targets, the
// audience of the list it replaces (pointed at it), or a new one when
// there is none or Pinterest refuses the change (a WARN names the old
// audience). A failure that may pass is returned: the next check of the
// list's audience tries again, and nothing new is created meanwhile.
func (r *run) keepAudience(k listKey, info listInfo, candidates []*pinterest.Audience, naming func() (ledger.AudienceName, error)) (listInfo, error) {
	old, err := r.oldAudience(k, candidates)
	if err != nil {
		return info, fmt.Errorf("find the audience of the list that customer list %s replaces: %w", info.id, err)
	}
	var refusal error
	if old != nil {
		if refusal = r.pointAudience(old.ID, info.id); refusal == nil {
			info.hasAudience = true
			r.h.remember(k, info)
			r.h.settled(k)
			r.h.o.Logger.LogAttrs(r.ctx, slog.LevelInfo, "kept the vanished list's audience: pointed it at the re-created customer list",
				slog.String("list", k.String()), slog.String("audience", old.ID),
				slog.String("customer_list", info.id), slog.String("vanished_customer_list", old.Rule.CustomerListID))
			return info, nil
		}
		if !isRefused(refusal) {
			return info, fmt.Errorf("keep the audience of the vanished list: %w", refusal)
		}
	}
	n, err := naming()
	if err != nil {
		return info, err
	}
	info, created, err := r.createAudience(k, info, n)
	if err != nil {
		return info, err
	}
	if old != nil {
		r.h.o.Logger.LogAttrs(r.ctx, slog.LevelWarn,
			"Pinterest refused to point the vanished list's audience at the re-created customer list; created a new audience instead: campaigns that targeted the old audience must be re-targeted to the new one",
			slog.String("list", k.String()), slog.String("old_audience", old.ID), slog.String("new_audience", created),
			slog.String("customer_list", info.id), slog.String("error", refusal.Error()))
	}
	return info, nil
}

// pointAudience points audience id at customer list listID.
func (r *run) pointAudience(id, listID string) error {
	pointer, ok := r.h.o.Client.(audiencePointer)
	if !ok {
		return errCannotPoint
	}
	return r.call(func(ctx context.Context) error {
		_, err := pointer.PointAudience(ctx, id, listID)
		return err
	})
}

// isRefused reports whether err is Pinterest refusing a call for good (a
// 4xx other than 401, 408 and 429, which a reload or a later try may get
// past), or errCannotPoint.
func isRefused(err error) bool {
	if errors.Is(err, errCannotPoint) {
		return true
	}
	var apiErr *pinterest.APIError
	if !errors.As(err, &apiErr) || pinterest.IsRetryable(err) {
		return false
	}
	return apiErr.StatusCode >= 400 && apiErr.StatusCode < 500 && apiErr.StatusCode != http.StatusUnauthorized
}
