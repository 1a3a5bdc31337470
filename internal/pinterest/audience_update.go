package pinterest

import (
	"context"
	"fmt"
	"net/http"
)

// audienceUpdateBody is AudienceUpdateRequest: a new name and description,
// and operation_type UPDATE or REMOVE.
type audienceUpdateBody struct {
	Name          string `json:"name,omitempty"`
	Description   string `json:"description,omitempty"`
	OperationType string `json:"operation_type"`
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
