// Package upload is pinlist's upload step, with the membership ledger
// (internal/ledger) in the middle: Apply records batches of queue messages
// in the ledger, and Flush drains the ledger's pending rows to Pinterest
// customer lists. In AWS (stream.go) Handler.HandleApply is the apply
// Lambda function (standard SQS queue) and Flusher the upload function (the
// ledger table's stream and a one-minute sweep, each list under its lease);
// Handler.HandleSQS does both in one invocation. The local runner calls
// ApplyTo inside its own SQLite transaction (so that the queue's delete and
// the ledger write commit together) and wakes one loop that calls FlushAll.
//
// # Apply
//
// A batch's "changes" messages are recorded with one ledger Apply call: the
// ledger orders changes by precedence (audience.Change.Precedence: later
// event time wins, on a tie the exit), drops the stale ones, and keeps each
// change that flips a row pending until Pinterest has it. So the order and
// grouping of the messages no longer matter, and a message delivered twice
// records nothing new. An "audience" message (POST /v1/audiences: the
// audience's name and description) is recorded in the name store
// (ledger.Names), where the flusher finds it when it creates the audience's
// lists; no list is created for it: each list is created with its first
// records.
//
// The ledger's promises (promises.go): an "erasure" message (POST
// /v1/erasure) is recorded with the ledger's Erase (every list of each
// identifier's type gets a REMOVE at the erasure's precedence); a "retire"
// message (DELETE /v1/audiences/{id}) with Retire, after which the flusher
// empties the audience's lists, renames and removes their CUSTOMER_LIST
// audiences and drops the rows (FlushAll finishes retirements a flush left
// undone). A list that vanished on Pinterest's side (a 404 on update that a
// listing confirms, or a list the ledger sent members to that the listing
// lacks) is re-created and refilled from the ledger, once per flush, with
// an ERROR log line and the ListsRepaired metric; it keeps its CUSTOMER_LIST
// audience, which is pointed at the new list (keepaudience.go), so the
// campaigns that target the audience keep it. Only when Pinterest refuses
// to change the audience's rule does the new list get a new audience, with
// a WARN naming the old one.
//
// A message that cannot be decoded fails alone, on every delivery, until
// the queue moves it to the dead-letter queue. A store failure fails the
// messages it concerned (every "changes" message of the batch when the
// ledger write fails; one "audience" message when its name write fails), to
// be delivered again; recording again is harmless (the ledger is idempotent).
//
// # Flush
//
// For each list with pending rows, for ADD then REMOVE: read up to
// PINLIST_MAX_RECORDS_PER_REQUEST pending rows, send them in one customer
// list call, mark them sent, until the list has nothing pending. Calls are
// thus filled across batches. A row changed while its call was in flight
// stays pending (MarkSent compares precedences) and its newer state is sent
// next.
//
// Finding a list: an in-memory cache (per process, that is per Lambda
// container), else one listing of the ad account's customer lists, which
// fills the cache for every pinlist list it sees. Lists are matched on the
// stable part of their name, "pinlist <ns>:<id> <TYPE>"; the audience's
// display name, when known at creation, follows as " - <name>" but is never
// used to find a list (it can change; Pinterest cannot rename a list). When
// a race ever made two lists for one audience and type, the oldest (smallest
// ID) is used, by every container alike. A missing list is created with its
// first pending ADD records, then the lists are listed once more: should
// another process have created the same list at the same moment (an
// invocation's flush and a sweep, say), the older one wins, the records
// are sent there too and the process uses it from then on; else a
// CUSTOMER_LIST audience is created for the new list. Within one process
// the flushes of a list take turns, so they never both create it; a list found by name gets its audience checked once per container
// (the audience creation may have failed after the list was made). Pending
// removals from a list that did not exist when the flush began are marked
// sent without a call: a list that does not exist holds nobody. A list that
// answers 404 is dropped from the cache and looked for again next time. (Should
// another process create the list and add a member between this flush's
// lookup and its reading of that member's pending removal, the removal is
// lost; the window is one listing call wide.)
//
// # Failures
//
// One list's failure (a 400, a 404, the client's retries of a 429 or 5xx
// exhausted, a ledger error) is logged (the list's key, never a member) and
// counted, leaves that list's rows pending, and the flush carries on with
// the other lists; Flush returns every list's error, joined. A flush
// failure fails no queue message: the rows stay pending in the ledger until
// the next flush of their list, or the schedule's FlushAll, sends them.
//   - 401: the access token is reloaded from the token store once per flush
//     and the call tried again; a second 401 (or an expired stored token)
//     stops the flush: every later call would fail alike.
//   - Near the context's deadline (minus a margin, Options.DeadlineMargin)
//     no new call starts and the flush stops; what was sent is still marked
//     sent.
//
// Sending a row twice (its call succeeded but MarkSent failed, or the
// process died in between) is harmless: ADD and REMOVE are set operations.
// Its rows are marked as being sent before the call (ledger.Store.Sending),
// so a change that comes after such a call is sent too rather than taken
// for a revert to what the ledger last recorded as sent.
//
// # Logs and metrics
//
// Apply, Flush and FlushAll each log a summary (slog) and write one
// CloudWatch Embedded Metric Format line (namespace pinlist, dimension
// Connection); HandleSQS writes one line for both halves. Apply's metrics:
// MessageFailures (messages not recorded), ChangesFlipped (now pending),
// ChangesNoOp and ChangesStale. Flush's: RecordsSent and ListCalls (in
// successful customer list create and update calls), ListsCreated,
// ListFailures (lists failed or not flushed), ListsRepaired, ListsRetired,
// and APICalls and Retries (the Pinterest client's counters). None carries
// an identifier.
package upload
