package pinterest

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"iter"
	"net/http"
)

// audienceTypeCustomerList is the audience type that targets a customer list.
const audienceTypeCustomerList = "CUSTOMER_LIST"

// Audience is Pinterest's Audience. Status is READY, INITIALIZING or
// TOO_SMALL (an open string); Size is nil until Pinterest knows it. Times
// are Unix seconds, zero when Pinterest sent none.
type Audience struct {
	ID               string       `json:"id"`
	AdAccountID      string       `json:"ad_account_id"`
	Name             string       `json:"name"`
	Description      string       `json:"description,omitempty"`
	AudienceType     string       `json:"audience_type"`
	Status           string       `json:"status"`
	Rule             AudienceRule `json:"rule"`
	Size             *int64       `json:"size,omitempty"`
	CreatedTimestamp int64        `json:"created_timestamp,omitempty"`
	UpdatedTimestamp int64        `json:"updated_timestamp,omitempty"`
}

// UnmarshalJSON reads an Audience, whose nullable fields Pinterest may send
// as null.
func (a *Audience) UnmarshalJSON(b []byte) error {
	var w struct {
		ID               string       `json:"id"`
		AdAccountID      string       `json:"ad_account_id"`
		Name             string       `json:"name"`
		Description      *string      `json:"description"`
		AudienceType     string       `json:"audience_type"`
		Status           string       `json:"status"`
		Rule             AudienceRule `json:"rule"`
		Size             *number      `json:"size"`
		CreatedTimestamp number       `json:"created_timestamp"`
		UpdatedTimestamp number       `json:"updated_timestamp"`
	}
	if err := json.Unmarshal(b, &w); err != nil {
		return fmt.Errorf("decode audience: %w", err)
	}
	*a = Audience{
		ID:               w.ID,
		AdAccountID:      w.AdAccountID,
		Name:             w.Name,
		AudienceType:     w.AudienceType,
		Status:           w.Status,
		Rule:             w.Rule,
		CreatedTimestamp: int64(w.CreatedTimestamp),
		UpdatedTimestamp: int64(w.UpdatedTimestamp),
	}
	if w.Description != nil {
		a.Description = *w.Description
	}
	if w.Size != nil {
		size := int64(*w.Size)
		a.Size = &size
	}
	return nil
}

// AudienceRule is the part of Pinterest's AudienceRule a CUSTOMER_LIST
// audience uses.
type AudienceRule struct {
	CustomerListID string `json:"customer_list_id,omitempty"`
}

// AudienceCreate describes a CUSTOMER_LIST audience that targets the
// customer list CustomerListID.
type AudienceCreate struct {
	Name           string
	Description    string
	CustomerListID string
}

type audienceCreateBody struct {
	Name         string       `json:"name"`
	AudienceType string       `json:"audience_type"`
	Rule         AudienceRule `json:"rule"`
	Description  string       `json:"description,omitempty"`
}

// CreateAudience creates a CUSTOMER_LIST audience for a customer list. If an
// attempt fails after the request may have reached Pinterest (a 5xx or a
// network error), the customer list's audience is looked up before any new
// attempt and returned if it exists: a retry never makes a second audience.
func (c *Client) CreateAudience(ctx context.Context, in AudienceCreate) (*Audience, error) {
	if in.Name == "" {
		return nil, errors.New("create audience: empty name")
	}
	if !idPattern.MatchString(in.CustomerListID) {
		return nil, fmt.Errorf("create audience %q: customer list ID %q is not 1 to 18 digits", in.Name, in.CustomerListID)
	}
	req, err := c.newRequest(ctx, http.MethodPost, c.accountPath("audiences"), nil, audienceCreateBody{
		Name:         in.Name,
		AudienceType: audienceTypeCustomerList,
		Rule:         AudienceRule{CustomerListID: in.CustomerListID},
		Description:  in.Description,
	})
	if err != nil {
		return nil, fmt.Errorf("create audience %q: %w", in.Name, err)
	}
	var out Audience
	lookUp := lookUpBeforeRetry(func(ctx context.Context) (*Audience, error) {
		return c.FindAudienceForList(ctx, in.CustomerListID)
	}, &out)
	if err := c.do(req, &out, lookUp); err != nil {
		return nil, fmt.Errorf("create audience %q for customer list %s: %w", in.Name, in.CustomerListID, err)
	}
	return &out, nil
}

// FindAudienceForList returns the ad account's first CUSTOMER_LIST audience
// whose rule targets the customer list customerListID, or (nil, nil) when
// there is none.
func (c *Client) FindAudienceForList(ctx context.Context, customerListID string) (*Audience, error) {
	for a, err := range c.Audiences(ctx) {
		if err != nil {
			return nil, fmt.Errorf("find audience for customer list %s: %w", customerListID, err)
		}
		if a.AudienceType == audienceTypeCustomerList && a.Rule.CustomerListID == customerListID {
			return a, nil
		}
	}
	return nil, nil
}

// Audiences iterates over the ad account's audiences, 250 a page. On an
// error it yields (nil, err) once and stops.
func (c *Client) Audiences(ctx context.Context) iter.Seq2[*Audience, error] {
	return paginate[Audience](ctx, c, c.accountPath("audiences"), "list audiences")
}

// lookUpBeforeRetry makes the beforeRetry hook of a create call: unless the
// last attempt was refused with a 429 (Pinterest did nothing), it looks the
// object up with find before the create is sent again, and settles the call
// with what it found (stored in *out).
func lookUpBeforeRetry[T any](find func(context.Context) (*T, error), out *T) beforeRetry {
	return func(ctx context.Context, lastErr error) (bool, error) {
		var rl *RateLimitError
		if errors.As(lastErr, &rl) {
			return false, nil
		}
		found, err := find(ctx)
		if err != nil {
			return false, fmt.Errorf("look for it before creating it again: %w", err)
		}
		if found == nil {
			return false, nil
		}
		*out = *found
		return true, nil
	}
}
