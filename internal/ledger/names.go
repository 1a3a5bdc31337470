package ledger

import (
	"context"

	"github.com/pinlist/pinlist/internal/audience"
)

// AudienceName is what an "audience" queue message says about an audience
// (AEP's audience create/update): its display name and description. The
// upload step names an audience's customer lists and their CUSTOMER_LIST
// audiences after it when it creates them; Pinterest cannot rename a list,
// so a name that arrives after the list was made changes nothing there.
type AudienceName struct {
	Name        string
	Description string
}

// Names stores the latest AudienceName per audience. It lives beside the
// ledger (the SQLite version in the same database), because the name must
// outlive the message that brought it: the list is created only when its
// first member is flushed, possibly much later and in another process.
// Implementations are safe for concurrent use; the last SetName wins
// (audience messages carry no time to order them by).
type Names interface {
	// SetName records a's name, replacing any earlier one.
	SetName(ctx context.Context, a audience.Ref, n AudienceName) error
	// Name returns a's name: the zero AudienceName when none was recorded.
	Name(ctx context.Context, a audience.Ref) (AudienceName, error)
}
