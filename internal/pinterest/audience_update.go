package pinterest

import (
	"context"
	"fmt"
	"net/http"
)

// audienceUpdateBody is AudienceUpdateRequest (AudienceCommon's name and
// rule, a description, and operation_type UPDATE or REMOVE).
type audienceUpdateBody struct {
	Name          string        `json:"name,omitempty"`
	Description   string        `json:"description,omitempty"`
	Rule          *AudienceRule `json:"rule,omitempty"`
	OperationType string        `json:"operation_type"`
}

// RemoveAudience renames an audience and removes it (PATCH .../audiences/{id}
// with operation_type REMOVE, the one way API v5 retires an audience; its
// customer list cannot be deleted through the API). name and description,
// when not empty, are set in the same call. A retry after a lost answer
// may meet a 404 (already removed).
func (c *Client) RemoveAudience(ctx context.Context, id, name, description string) (*Audience, error) {
	if !idPattern.MatchString(id) {
		return nil, fmt.Errorf("remove audience: ID %q is not 1 to 18 digits", id)
	}
	req, err := c.newRequest(ctx, http.MethodPatch, c.accountPath("audiences", id), nil,
		audienceUpdateBody{Name: name, Description: description, OperationType: "REMOVE"})
	if err != nil {
		return nil, fmt.Errorf("remove audience %s: %w", id, err)
	}
	var out Audience
	if err := c.do(req, &out, nil); err != nil {
		return nil, fmt.Errorf("remove audience %s: %w", id, err)
	}
	return &out, nil
}

// PointAudience points the CUSTOMER_LIST audience audienceID at the customer
// list customerListID (PATCH .../audiences/{id}, operation_type UPDATE, rule
// {customer_list_id}), so that the campaigns targeting the audience keep it
// when its list is replaced. Sending it again is harmless (it sets the same
// rule), so retries need no look-up. Pinterest may refuse to change an
// existing audience's rule: a 4xx *APIError.
func (c *Client) PointAudience(ctx context.Context, audienceID, customerListID string) (*Audience, error) {
	if !idPattern.MatchString(audienceID) {
		return nil, fmt.Errorf("point audience: ID %q is not 1 to 18 digits", audienceID)
	}
	if !idPattern.MatchString(customerListID) {
		return nil, fmt.Errorf("point audience %s: customer list ID %q is not 1 to 18 digits", audienceID, customerListID)
	}
	req, err := c.newRequest(ctx, http.MethodPatch, c.accountPath("audiences", audienceID), nil, audienceUpdateBody{
		Rule: &AudienceRule{CustomerListID: customerListID}, OperationType: "UPDATE",
	})
	if err != nil {
		return nil, fmt.Errorf("point audience %s at customer list %s: %w", audienceID, customerListID, err)
	}
	var out Audience
	if err := c.do(req, &out, nil); err != nil {
		return nil, fmt.Errorf("point audience %s at customer list %s: %w", audienceID, customerListID, err)
	}
	return &out, nil
}
