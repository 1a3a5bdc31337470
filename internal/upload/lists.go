package upload

import (
	"context"
	"fmt"
	"strings"

	"github.com/pinlist/pinlist/internal/audience"
	"github.com/pinlist/pinlist/internal/pinterest"
)

// listNamePrefix starts the name of every customer list (and audience)
// pinlist creates.
const listNamePrefix = "pinlist "

// listNameSep separates the stable part of a list's name from the
// audience's display name.
const listNameSep = " - "

// listName is the name of an audience's customer list of type lt:
// "pinlist <ns>:<id> <TYPE>", then " - <display name>" when the audience's
// name is known. Only the part before the display name is used to find the
// list again (see stableName), because a display name can change and
// Pinterest cannot rename a customer list.
func listName(key string, lt audience.ListType, display string) string {
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

// parseListName reads the audience key and list type back from a name that
// listName made. ok is false for any other name. Keys with spaces do not
// parse (matchesList still finds their lists).
func parseListName(name string) (key string, lt audience.ListType, ok bool) {
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

// naming is an audience's display name and description, from its latest
// audience message.
type naming struct{ display, description string }

// rememberName keeps an audience's naming for lists created later by this
// process.
func (h *Handler) rememberName(key string, n naming) {
	h.mu.Lock()
	defer h.mu.Unlock()
	h.names[key] = n
}

// name returns the naming remembered for an audience (zero when none).
func (h *Handler) name(key string) naming {
	h.mu.Lock()
	defer h.mu.Unlock()
	return h.names[key]
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

// findList returns the customer list for k: from the cache, else by listing
// the ad account's customer lists. One listing fills the cache for every
// pinlist list it sees, so a cold container lists once, not once per
// audience. An absent list is never cached: another container may create it
// at any time.
func (b *batch) findList(k listKey) (listInfo, bool, error) {
	if info, ok := b.h.cached(k); ok {
		return info, true, nil
	}
	found := map[listKey]string{}
	err := b.call(func(ctx context.Context) error {
		clear(found)
		for l, err := range b.h.client.CustomerLists(ctx) {
			if err != nil {
				return err
			}
			if pk, pt, ok := parseListName(l.Name); ok {
				addOldest(found, listKey{pk, pt}, l.ID)
			} else if matchesList(l.Name, k.audience, k.list) {
				addOldest(found, k, l.ID)
			}
		}
		return nil
	})
	if err != nil {
		return listInfo{}, false, fmt.Errorf("look for customer list %q: %w", stableName(k.audience, k.list), err)
	}
	b.h.mu.Lock()
	defer b.h.mu.Unlock()
	for fk, id := range found {
		if _, ok := b.h.lists[fk]; !ok {
			b.h.lists[fk] = listInfo{id: id}
		}
	}
	info, ok := b.h.lists[k]
	return info, ok, nil
}

// addOldest records id for k unless an older list is already recorded: when
// a race ever made two lists for one audience and type, every container
// settles on the same one.
func addOldest(m map[listKey]string, k listKey, id string) {
	if cur, ok := m[k]; !ok || olderID(id, cur) {
		m[k] = id
	}
}

// createList creates the customer list for k with its first records and a
// CUSTOMER_LIST audience for it, and caches both.
func (b *batch) createList(k listKey, display, description string, records []string) (listInfo, error) {
	name := listName(k.audience, k.list, display)
	var created *pinterest.CustomerList
	err := b.call(func(ctx context.Context) error {
		var err error
		created, err = b.h.client.CreateCustomerList(ctx, pinterest.CustomerListCreate{
			Name: name, ListType: string(k.list), Records: records,
		})
		return err
	})
	if err != nil {
		return listInfo{}, fmt.Errorf("create customer list %q: %w", stableName(k.audience, k.list), err)
	}
	info := listInfo{id: created.ID}
	b.h.remember(k, info)
	b.listsCreated++
	b.changesApplied += len(records)
	// Nothing can target a list created a moment ago: create its audience
	// without looking for one first.
	if err := b.createAudience(k, info.id, name, description); err != nil {
		return info, err
	}
	info.hasAudience = true
	b.h.remember(k, info)
	return info, nil
}

// ensureAudience makes sure a CUSTOMER_LIST audience targets the list info.
// A list found by name may lack one (its audience creation failed after the
// list was made), so found lists are checked once per container.
func (b *batch) ensureAudience(k listKey, info listInfo, display, description string) (listInfo, error) {
	if info.hasAudience {
		return info, nil
	}
	targeted := map[string]bool{}
	err := b.call(func(ctx context.Context) error {
		clear(targeted)
		for a, err := range b.h.client.Audiences(ctx) {
			if err != nil {
				return err
			}
			if a.AudienceType == audienceTypeCustomerList && a.Rule.CustomerListID != "" {
				targeted[a.Rule.CustomerListID] = true
			}
		}
		return nil
	})
	if err != nil {
		return info, fmt.Errorf("look for the audience of customer list %s: %w", info.id, err)
	}
	b.h.mu.Lock()
	for lk, li := range b.h.lists {
		if targeted[li.id] && !li.hasAudience {
			li.hasAudience = true
			b.h.lists[lk] = li
		}
	}
	b.h.mu.Unlock()
	if !targeted[info.id] {
		if err := b.createAudience(k, info.id, listName(k.audience, k.list, display), description); err != nil {
			return info, err
		}
	}
	info.hasAudience = true
	b.h.remember(k, info)
	return info, nil
}

// createAudience creates the CUSTOMER_LIST audience named name for list id.
func (b *batch) createAudience(k listKey, id, name, description string) error {
	if description == "" {
		description = "Kept in step by pinlist: audience " + k.audience + ", " + string(k.list) + " identifiers."
	}
	err := b.call(func(ctx context.Context) error {
		_, err := b.h.client.CreateAudience(ctx, pinterest.AudienceCreate{
			Name: name, Description: description, CustomerListID: id,
		})
		return err
	})
	if err != nil {
		return fmt.Errorf("create audience for customer list %s: %w", id, err)
	}
	return nil
}
