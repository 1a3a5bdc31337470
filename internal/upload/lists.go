package upload

import (
	"context"
	"fmt"
	"log/slog"
	"strings"
	"sync"

	"github.com/pinlist/pinlist/internal/audience"
	"github.com/pinlist/pinlist/internal/ledger"
	"github.com/pinlist/pinlist/internal/pinterest"
)

// listNamePrefix starts the name of every customer list (and audience)
// pinlist creates.
const listNamePrefix = "pinlist "

// listNameSep separates the stable part of a list's name from the
// audience's display name.
const listNameSep = " - "

// ListName is the name of an audience's customer list of type lt:
// "pinlist <ns>:<id> <TYPE>", then " - <display name>" when the audience's
// name is known. Only the part before the display name is used to find the
// list again (see stableName), because a display name can change and
// Pinterest cannot rename a customer list.
func ListName(key string, lt audience.ListType, display string) string {
	name := stableName(key, lt)
	if display = strings.Join(strings.Fields(display), " "); display != "" {
		name += listNameSep + display
	}
	return name
}

// stableName is the part of a list's name that never changes.
func stableName(key string, lt audience.ListType) string {
	return listNamePrefix + key + " " + string(lt)
}

// matchesList reports whether a customer list named name is the list of
// type lt of the audience with key key.
func matchesList(name, key string, lt audience.ListType) bool {
	rest, ok := strings.CutPrefix(name, stableName(key, lt))
	return ok && (rest == "" || strings.HasPrefix(rest, listNameSep))
}

// ParseListName reads the audience key and list type back from a name that
// listName made. ok is false for any other name. Keys with spaces do not
// parse (matchesList still finds their lists).
func ParseListName(name string) (key string, lt audience.ListType, ok bool) {
	rest, ok := strings.CutPrefix(name, listNamePrefix)
	if !ok {
		return "", "", false
	}
	key, rest, ok = strings.Cut(rest, " ")
	if !ok || key == "" {
		return "", "", false
	}
	typ, tail, _ := strings.Cut(rest, " ")
	if tail != "" && !strings.HasPrefix(" "+tail, listNameSep) {
		return "", "", false
	}
	for _, t := range audience.ListTypes {
		if string(t) == typ {
			return key, t, true
		}
	}
	return "", "", false
}

// audienceTypeCustomerList is Pinterest's audience type for an audience
// built from a customer list.
const audienceTypeCustomerList = "CUSTOMER_LIST"

// listKey names one customer list in the cache: an audience key and a list type.
type listKey struct {
	audience string
	list     audience.ListType
}

// listInfo is what the cache knows about a customer list.
type listInfo struct {
	id string
	// hasAudience is true once a CUSTOMER_LIST audience is known to target the list.
	hasAudience bool
}

// olderID reports whether customer list ID a is older (smaller) than b.
// IDs are decimal strings of up to 18 digits.
func olderID(a, b string) bool {
	if len(a) != len(b) {
		return len(a) < len(b)
	}
	return a < b
}

// lockList serialises the flushes of one list within this process, so that
// two flushes never both create it or send its rows twice; it returns the
// unlock.
func (h *Handler) lockList(k listKey) func() {
	h.mu.Lock()
	l := h.locks[k]
	if l == nil {
		l = &sync.Mutex{}
		h.locks[k] = l
	}
	h.mu.Unlock()
	l.Lock()
	return l.Unlock
}

// cached returns the cached list for k.
func (h *Handler) cached(k listKey) (listInfo, bool) {
	h.mu.Lock()
	defer h.mu.Unlock()
	info, ok := h.lists[k]
	return info, ok
}

// remember caches info for k.
func (h *Handler) remember(k listKey, info listInfo) {
	h.mu.Lock()
	defer h.mu.Unlock()
	h.lists[k] = info
}

// forget drops the cached list with ID id, which answered 404, and keeps
// its ID as the list's last known one (a repair then knows which list
// vanished, and so which audience targeted it).
func (h *Handler) forget(id string) {
	h.mu.Lock()
	defer h.mu.Unlock()
	for k, info := range h.lists {
		if info.id == id {
			delete(h.lists, k)
			h.gone[k] = id
		}
	}
}

// findList returns the customer list for k: from the cache, else by listing
// the ad account's customer lists. One listing fills the cache for every
// pinlist list it sees, so a cold container lists once, not once per
// audience. An absent list is never cached: another container may create it
// at any time.
func (r *run) findList(k listKey) (listInfo, bool, error) {
	if info, ok := r.h.cached(k); ok {
		return info, true, nil
	}
	found, err := r.listLists(k)
	if err != nil {
		return listInfo{}, false, err
	}
	r.h.mu.Lock()
	defer r.h.mu.Unlock()
	for fk, id := range found {
		if fk != k && r.retired[fk.audience+"/"+string(fk.list)] {
			continue // retired lists are never adopted again
		}
		if _, ok := r.h.lists[fk]; !ok {
			r.h.lists[fk] = listInfo{id: id}
		}
	}
	info, ok := r.h.lists[k]
	return info, ok, nil
}

// listLists lists the ad account's customer lists and returns the oldest
// pinlist list of every audience and type it sees (and k's, should its key
// not parse back from the name).
func (r *run) listLists(k listKey) (map[listKey]string, error) {
	found := map[listKey]string{}
	err := r.call(func(ctx context.Context) error {
		clear(found)
		for l, err := range r.h.o.Client.CustomerLists(ctx) {
			if err != nil {
				return err
			}
			if pk, pt, ok := ParseListName(l.Name); ok {
				addOldest(found, listKey{pk, pt}, l.ID)
			} else if matchesList(l.Name, k.audience, k.list) {
				addOldest(found, k, l.ID)
			}
		}
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("look for customer list %q: %w", stableName(k.audience, k.list), err)
	}
	return found, nil
}

// addOldest records id for k unless an older list is already recorded: when
// a race ever made two lists for one audience and type, every container
// settles on the same one.
func addOldest(m map[listKey]string, k listKey, id string) {
	if cur, ok := m[k]; !ok || olderID(id, cur) {
		m[k] = id
	}
}

// createList creates the customer list for k with its first records
// (never empty: Pinterest's create call carries them), then lists the
// customer lists once more: should another process have created the list at
// the same time, the oldest of the two is the one every process uses, so
// the records are sent to it too (dup is true) and this process uses it
// from now on. The list is cached; its CUSTOMER_LIST audience comes after
// (createAudience), once the records are marked sent in the ledger.
//
// When the listing shows the new list is the one every process uses, the
// ledger records it as pinlist's own (ledger.Owning): from then on people
// it has no row for start out of the list.
func (r *run) createList(l ledger.List, n ledger.AudienceName, records []string) (info listInfo, dup bool, err error) {
	k := listKey{l.Audience.Key(), l.Type}
	var created *pinterest.CustomerList
	err = r.call(func(ctx context.Context) error {
		var err error
		created, err = r.h.o.Client.CreateCustomerList(ctx, pinterest.CustomerListCreate{
			Name: ListName(k.audience, k.list, n.Name), ListType: string(k.list), Records: records,
		})
		return err
	})
	if err != nil {
		return listInfo{}, false, fmt.Errorf("create customer list %q with %d records: %w", stableName(k.audience, k.list), len(records), err)
	}
	r.flushed.ListsCreated++
	r.flushed.ListCalls++
	r.flushed.RecordsSent += int64(len(records))
	info = listInfo{id: created.ID}
	found, err := r.listLists(k)
	checked := err == nil
	if !checked {
		// The records are in the list just made; should it turn out a
		// duplicate, the next container start settles on the oldest.
		r.h.o.Logger.LogAttrs(r.ctx, slog.LevelWarn, "could not check a new customer list for a duplicate",
			slog.String("list", stableName(k.audience, k.list)), slog.String("error", err.Error()))
		found = map[listKey]string{k: created.ID}
	}
	if oldest, ok := found[k]; ok && oldest != created.ID && olderID(oldest, created.ID) {
		r.h.o.Logger.LogAttrs(r.ctx, slog.LevelWarn, "another process created the same customer list at the same time; using the older one",
			slog.String("list", stableName(k.audience, k.list)), slog.String("older", oldest), slog.String("newer", created.ID))
		info = listInfo{id: oldest}
		dup = true
	}
	r.h.remember(k, info)
	if checked && !dup && r.h.owning != nil {
		if err := r.h.owning.Own(r.ctx, l, created.ID); err != nil {
			// Only a saving is lost: the list is treated as one pinlist
			// did not create (every exit is sent).
			r.h.o.Logger.LogAttrs(r.ctx, slog.LevelWarn, "could not record a new customer list as pinlist's own",
				slog.String("list", l.Key()), slog.String("error", err.Error()))
		}
	}
	return info, dup, nil
}

// checkOwner disowns l in the ledger when the Pinterest list found for it,
// id, is not the one pinlist created (ledger.Owning): that list may hold
// anybody, so every member and every known exit is sent again.
func (r *run) checkOwner(l ledger.List, id string) error {
	if r.h.owning == nil {
		return nil
	}
	owner, err := r.h.owning.Owner(r.ctx, l)
	if err != nil || owner == "" || owner == id {
		return err
	}
	pending, err := r.h.owning.Disown(r.ctx, l)
	if err != nil {
		return err
	}
	r.h.o.Logger.LogAttrs(r.ctx, slog.LevelWarn, "the customer list found is not the one pinlist created; sending every member and every known exit again",
		slog.String("list", l.Key()), slog.String("created", owner), slog.String("found", id), slog.Int64("pending", pending))
	return nil
}

// ensureAudience makes sure a CUSTOMER_LIST audience targets the list info.
// A list found by name may lack one (its audience creation failed after the
// list was made), so found lists are checked once per container; so are
// lists re-created by a repair. When none targets it, the audience of the
// list it replaces, if there is one, is pointed at it (keepAudience), else
// one is created. naming reads the audience's name, when one has to be
// created.
func (r *run) ensureAudience(k listKey, info listInfo, naming func() (ledger.AudienceName, error)) (listInfo, error) {
	if info.hasAudience {
		return info, nil
	}
	vanished := r.h.vanishedList(k)
	targeted := map[string]bool{}
	var orphans []*pinterest.Audience
	err := r.call(func(ctx context.Context) error {
		clear(targeted)
		orphans = orphans[:0]
		for a, err := range r.h.o.Client.Audiences(ctx) {
			if err != nil {
				return err
			}
			if a.AudienceType == audienceTypeCustomerList && a.Rule.CustomerListID != "" {
				targeted[a.Rule.CustomerListID] = true
				if mayBeOldAudience(k, info.id, vanished, a) {
					orphans = append(orphans, a)
				}
			}
		}
		return nil
	})
	if err != nil {
		return info, fmt.Errorf("look for the audience of customer list %s: %w", info.id, err)
	}
	r.h.mu.Lock()
	for lk, li := range r.h.lists {
		if targeted[li.id] && !li.hasAudience {
			li.hasAudience = true
			r.h.lists[lk] = li
		}
	}
	r.h.mu.Unlock()
	if targeted[info.id] {
		info.hasAudience = true
		r.h.remember(k, info)
		r.h.settled(k)
		return info, nil
	}
	return r.keepAudience(k, info, orphans, naming)
}

// createAudience creates the CUSTOMER_LIST audience for the list info,
// named like the list, and caches that the list has one. It returns the
// new audience's ID.
func (r *run) createAudience(k listKey, info listInfo, n ledger.AudienceName) (listInfo, string, error) {
	description := n.Description
	if description == "" {
		description = "Kept in step by pinlist: audience " + k.audience + ", " + string(k.list) + " identifiers."
	}
	var created *pinterest.Audience
	err := r.call(func(ctx context.Context) error {
		var err error
		created, err = r.h.o.Client.CreateAudience(ctx, pinterest.AudienceCreate{
			Name: ListName(k.audience, k.list, n.Name), Description: description, CustomerListID: info.id,
		})
		return err
	})
	if err != nil {
		return info, "", fmt.Errorf("create audience for customer list %s: %w", info.id, err)
	}
	info.hasAudience = true
	r.h.remember(k, info)
	r.h.settled(k)
	return info, created.ID, nil
}
