package pinterestsim

import (
	"maps"
	"slices"
	"strconv"
	"sync"
	"time"
)

// minMembersReady is Pinterest's threshold: a list or audience with fewer
// members is TOO_SMALL.
const minMembersReady = 100

// firstID is where object IDs start; Pinterest's IDs are long digit strings.
const firstID = 549755813888

// store is the simulator's data, keyed by ad account. One mutex guards it all:
// requests are short, and it keeps every operation atomic.
type store struct {
	mu       sync.Mutex
	nextID   uint64
	accounts map[string]*adAccount
}

type adAccount struct {
	lists     []*customerList // in creation (= ascending ID) order
	listByID  map[string]*customerList
	audiences []*audience // in creation (= ascending ID) order
	audByID   map[string]*audience
}

type customerList struct {
	id                uint64
	name              string
	listType          string
	members           map[string]struct{}
	created, updated  time.Time
	batches           int64
	uploaded, removed int64
}

type audience struct {
	id               uint64
	name             string
	audienceType     string
	description      string
	rule             map[string]any
	listID           string
	created, updated time.Time
	removed          bool // operation_type REMOVE
}

func newStore(adAccounts []string) *store {
	s := &store{nextID: firstID, accounts: map[string]*adAccount{}}
	for _, id := range adAccounts {
		s.addAccount(id)
	}
	return s
}

// addAccount adds an empty ad account; an existing one is left as it is.
// The caller holds mu or owns s exclusively.
func (s *store) addAccount(id string) {
	if _, ok := s.accounts[id]; ok {
		return
	}
	s.accounts[id] = &adAccount{listByID: map[string]*customerList{}, audByID: map[string]*audience{}}
}

func (s *store) newID() uint64 {
	id := s.nextID
	s.nextID++
	return id
}

func formatID(id uint64) string { return strconv.FormatUint(id, 10) }

// status is Pinterest's customer list (and audience) status for a size.
func status(members int) string {
	if members < minMembersReady {
		return "TOO_SMALL"
	}
	return "READY"
}

// State is the whole simulator state, as served by GET /_sim/state.
type State struct {
	AdAccounts map[string]AdAccountState `json:"ad_accounts"`
}

// AdAccountState is one ad account's customer lists and audiences, each in
// creation order.
type AdAccountState struct {
	CustomerLists []CustomerListState `json:"customer_lists"`
	Audiences     []AudienceState     `json:"audiences"`
}

// CustomerListState is a customer list with its current members, sorted.
type CustomerListState struct {
	ID                     string   `json:"id"`
	Name                   string   `json:"name"`
	ListType               string   `json:"list_type"`
	Records                []string `json:"records"`
	NumBatches             int64    `json:"num_batches"`
	NumUploadedUserRecords int64    `json:"num_uploaded_user_records"`
	NumRemovedUserRecords  int64    `json:"num_removed_user_records"`
	Status                 string   `json:"status"`
	CreatedTime            int64    `json:"created_time"`
	UpdatedTime            int64    `json:"updated_time"`
}

// AudienceState is an audience as created, with its rule as sent.
type AudienceState struct {
	ID           string         `json:"id"`
	Name         string         `json:"name"`
	AudienceType string         `json:"audience_type"`
	Description  string         `json:"description,omitempty"`
	Rule         map[string]any `json:"rule"`
	Size         int            `json:"size"`
	Status       string         `json:"status"`
}

func (s *store) state() State {
	s.mu.Lock()
	defer s.mu.Unlock()
	st := State{AdAccounts: make(map[string]AdAccountState, len(s.accounts))}
	for id, acct := range s.accounts {
		as := AdAccountState{CustomerLists: []CustomerListState{}, Audiences: []AudienceState{}}
		for _, l := range acct.lists {
			as.CustomerLists = append(as.CustomerLists, CustomerListState{
				ID:                     formatID(l.id),
				Name:                   l.name,
				ListType:               l.listType,
				Records:                sortedMembers(l),
				NumBatches:             l.batches,
				NumUploadedUserRecords: l.uploaded,
				NumRemovedUserRecords:  l.removed,
				Status:                 status(len(l.members)),
				CreatedTime:            l.created.Unix(),
				UpdatedTime:            l.updated.Unix(),
			})
		}
		for _, a := range acct.audiences {
			size := acct.audienceSize(a)
			st := status(size)
			if a.removed {
				st = audienceRemoved
			}
			as.Audiences = append(as.Audiences, AudienceState{
				ID:           formatID(a.id),
				Name:         a.name,
				AudienceType: a.audienceType,
				Description:  a.description,
				Rule:         maps.Clone(a.rule),
				Size:         size,
				Status:       st,
			})
		}
		st.AdAccounts[id] = as
	}
	return st
}

// records returns a list's members, sorted, and whether the list exists.
func (s *store) records(adAccountID, listID string) ([]string, bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	acct, ok := s.accounts[adAccountID]
	if !ok {
		return nil, false
	}
	l, ok := acct.listByID[listID]
	if !ok {
		return nil, false
	}
	return sortedMembers(l), true
}

func sortedMembers(l *customerList) []string {
	return slices.Sorted(maps.Keys(l.members))
}

// audienceSize is the member count of the audience's customer list.
func (a *adAccount) audienceSize(aud *audience) int {
	if l, ok := a.listByID[aud.listID]; ok {
		return len(l.members)
	}
	return 0
}
