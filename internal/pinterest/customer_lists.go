package pinterest

import (
	"cmp"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"iter"
	"math"
	"net/http"
	"strings"
)

// Operation is what a customer list update does with its records: Pinterest's
// UserListOperationType.
type Operation string

// The two update operations.
const (
	OpAdd    Operation = "ADD"
	OpRemove Operation = "REMOVE"
)

// CustomerList is Pinterest's CustomerList. Status is one of PROCESSING,
// READY, TOO_SMALL, UPLOADING (kept as an open string: Pinterest adds values).
// The counters count uploaded and removed records, not matched users; times
// are Unix seconds. Pinterest's replies do not carry the list type: ListType
// is set only on what CreateCustomerList returns (from its input), so code
// that must tell lists apart by type should put the type in the name.
type CustomerList struct {
	ID                     string `json:"id"`
	AdAccountID            string `json:"ad_account_id"`
	Name                   string `json:"name"`
	ListType               string `json:"list_type,omitempty"`
	Status                 string `json:"status"`
	NumBatches             int64  `json:"num_batches"`
	NumUploadedUserRecords int64  `json:"num_uploaded_user_records"`
	NumRemovedUserRecords  int64  `json:"num_removed_user_records"`
	CreatedTime            int64  `json:"created_time"`
	UpdatedTime            int64  `json:"updated_time"`
}

// UnmarshalJSON reads a CustomerList whose counters and times Pinterest
// types as JSON "number" (so 2 and 2.0 both decode).
func (l *CustomerList) UnmarshalJSON(b []byte) error {
	var w struct {
		ID                     string `json:"id"`
		AdAccountID            string `json:"ad_account_id"`
		Name                   string `json:"name"`
		ListType               string `json:"list_type"`
		Status                 string `json:"status"`
		NumBatches             number `json:"num_batches"`
		NumUploadedUserRecords number `json:"num_uploaded_user_records"`
		NumRemovedUserRecords  number `json:"num_removed_user_records"`
		CreatedTime            number `json:"created_time"`
		UpdatedTime            number `json:"updated_time"`
	}
	if err := json.Unmarshal(b, &w); err != nil {
		return fmt.Errorf("decode customer list: %w", err)
	}
	*l = CustomerList{
		ID:                     w.ID,
		AdAccountID:            w.AdAccountID,
		Name:                   w.Name,
		ListType:               w.ListType,
		Status:                 w.Status,
		NumBatches:             int64(w.NumBatches),
		NumUploadedUserRecords: int64(w.NumUploadedUserRecords),
		NumRemovedUserRecords:  int64(w.NumRemovedUserRecords),
		CreatedTime:            int64(w.CreatedTime),
		UpdatedTime:            int64(w.UpdatedTime),
	}
	return nil
}

// CustomerListCreate is what a new customer list starts with. ListType is
// Pinterest's UserListType (EMAIL, IDFA, MAID, ...; Pinterest's default is
// EMAIL); Records are hashed identifiers, sent comma-separated.
type CustomerListCreate struct {
	Name     string
	ListType string
	Records  []string
}

// defaultListType is Pinterest's default UserListType.
const defaultListType = "EMAIL"

type customerListCreateBody struct {
	Name     string `json:"name"`
	Records  string `json:"records"`
	ListType string `json:"list_type,omitempty"`
}

type customerListUpdateBody struct {
	OperationType Operation `json:"operation_type"`
	Records       string    `json:"records"`
}

// CreateCustomerList creates a customer list with its first records; with
// none it creates an empty list (Pinterest requires the records field, an
// empty string satisfies its schema); pinlist's flusher always passes the
// list's first records. If an attempt fails after the request may have reached Pinterest (a 5xx or a
// network error), the list is looked up by name before any new attempt, and
// returned if it exists: a retry never makes a second list. A call that
// fails with a context error may still have created the list; look it up
// with FindCustomerList before calling again.
func (c *Client) CreateCustomerList(ctx context.Context, in CustomerListCreate) (*CustomerList, error) {
	if in.Name == "" {
		return nil, errors.New("create customer list: empty name")
	}
	var records string
	if len(in.Records) > 0 {
		var err error
		if records, err = joinRecords(in.Records); err != nil {
			return nil, fmt.Errorf("create customer list %q: %w", in.Name, err)
		}
	}
	req, err := c.newRequest(ctx, http.MethodPost, c.accountPath("customer_lists"), nil,
		customerListCreateBody{Name: in.Name, Records: records, ListType: in.ListType})
	if err != nil {
		return nil, fmt.Errorf("create customer list %q: %w", in.Name, err)
	}
	var out CustomerList
	lookUp := lookUpBeforeRetry(func(ctx context.Context) (*CustomerList, error) {
		return c.FindCustomerList(ctx, in.Name)
	}, &out)
	if err := c.do(req, &out, lookUp); err != nil {
		return nil, fmt.Errorf("create customer list %q: %w", in.Name, err)
	}
	if out.ListType == "" {
		out.ListType = cmp.Or(in.ListType, defaultListType)
	}
	return &out, nil
}

// GetCustomerList fetches one customer list.
func (c *Client) GetCustomerList(ctx context.Context, id string) (*CustomerList, error) {
	if !idPattern.MatchString(id) {
		return nil, fmt.Errorf("get customer list: ID %q is not 1 to 18 digits", id)
	}
	req, err := c.newRequest(ctx, http.MethodGet, c.accountPath("customer_lists", id), nil, nil)
	if err != nil {
		return nil, fmt.Errorf("get customer list %s: %w", id, err)
	}
	var out CustomerList
	if err := c.do(req, &out, nil); err != nil {
		return nil, fmt.Errorf("get customer list %s: %w", id, err)
	}
	return &out, nil
}

// UpdateCustomerList adds records to or removes them from a customer list.
// Both operations are idempotent on membership, so failed attempts are
// retried (Pinterest's upload counters may then count a batch twice).
func (c *Client) UpdateCustomerList(ctx context.Context, id string, op Operation, records []string) (*CustomerList, error) {
	if !idPattern.MatchString(id) {
		return nil, fmt.Errorf("update customer list: ID %q is not 1 to 18 digits", id)
	}
	if op != OpAdd && op != OpRemove {
		return nil, fmt.Errorf("update customer list %s: operation %q is neither %s nor %s", id, op, OpAdd, OpRemove)
	}
	joined, err := joinRecords(records)
	if err != nil {
		return nil, fmt.Errorf("update customer list %s (%s): %w", id, op, err)
	}
	req, err := c.newRequest(ctx, http.MethodPatch, c.accountPath("customer_lists", id), nil,
		customerListUpdateBody{OperationType: op, Records: joined})
	if err != nil {
		return nil, fmt.Errorf("update customer list %s (%s): %w", id, op, err)
	}
	var out CustomerList
	if err := c.do(req, &out, nil); err != nil {
		return nil, fmt.Errorf("update customer list %s (%s %d records): %w", id, op, len(records), err)
	}
	return &out, nil
}

// CustomerLists iterates over the ad account's customer lists, 250 a page.
// On an error it yields (nil, err) once and stops.
func (c *Client) CustomerLists(ctx context.Context) iter.Seq2[*CustomerList, error] {
	return paginate[CustomerList](ctx, c, c.accountPath("customer_lists"), "list customer lists")
}

// FindCustomerList returns the ad account's first customer list named
// exactly name, or (nil, nil) when there is none.
func (c *Client) FindCustomerList(ctx context.Context, name string) (*CustomerList, error) {
	for l, err := range c.CustomerLists(ctx) {
		if err != nil {
			return nil, fmt.Errorf("find customer list %q: %w", name, err)
		}
		if l.Name == name {
			return l, nil
		}
	}
	return nil, nil
}

// joinRecords joins records for Pinterest's comma-separated records field,
// refusing what would change meaning on the wire.
func joinRecords(records []string) (string, error) {
	if len(records) == 0 {
		return "", errors.New("no records")
	}
	for i, r := range records {
		if r == "" {
			return "", fmt.Errorf("record %d is empty", i)
		}
		if strings.ContainsAny(r, ", \t\r\n") {
			return "", fmt.Errorf("record %d contains a comma or white space", i)
		}
	}
	return strings.Join(records, ","), nil
}

// accountPath is the escaped path of the ad account's sub-resource.
func (c *Client) accountPath(segments ...string) string {
	var b strings.Builder
	b.WriteString("/ad_accounts/")
	b.WriteString(c.adAccountID)
	for _, s := range segments {
		b.WriteByte('/')
		b.WriteString(s)
	}
	return b.String()
}

// number decodes a JSON number that Pinterest types as "number" into an
// integer: 2, 2.0 and 2e0 all decode; null leaves zero.
type number int64

func (n *number) UnmarshalJSON(b []byte) error {
	if string(b) == "null" {
		return nil
	}
	var f json.Number
	if err := json.Unmarshal(b, &f); err != nil {
		return err
	}
	if i, err := f.Int64(); err == nil {
		*n = number(i)
		return nil
	}
	x, err := f.Float64()
	if err != nil {
		return fmt.Errorf("number %s: %w", f, err)
	}
	if x < -(1<<63) || x >= 1<<63 || x != math.Trunc(x) {
		return fmt.Errorf("number %s is not a 64-bit whole number", f)
	}
	*n = number(x)
	return nil
}
