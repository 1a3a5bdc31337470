// Package upload is pinlist's upload step: it applies batches of audience
// messages from the SQS FIFO queue (message group = audience) to Pinterest
// customer lists. Handler.HandleSQS is the entry point of the upload Lambda
// function and of the local runner alike.
//
// # What a batch does
//
// Messages are grouped by message group, groups in order of first
// appearance, messages in delivery order. For each group, every change of
// its messages in the batch is coalesced (per audience, list type and
// identifier the latest event time wins; on a tie the later message), then
// each of the audience's customer lists (one per list type) is found or
// created and sent its ADD and REMOVE calls, at most
// PINLIST_MAX_RECORDS_PER_REQUEST records per call.
//
// Finding a list: an in-memory cache (per process, that is per Lambda
// container), else one listing of the ad account's customer lists, which
// fills the cache for every pinlist list it sees. Lists are matched on the
// stable part of their name, "pinlist <ns>:<id> <TYPE>"; the audience's
// display name, when known at creation, follows as " - <name>" but is never
// used to find a list (it can change; Pinterest cannot rename a list). When
// a race ever made two lists for one audience and type, the oldest (smallest
// ID) is used, by every container alike. A missing list is created with the
// first chunk of ADD records, then a CUSTOMER_LIST audience is created for
// it; a list found by name gets its audience checked once per container
// (the audience creation may have failed after the list was made). A list
// that does not exist is not created just to remove records from it.
//
// # Audience messages
//
// An "audience" message (POST /v1/audiences: the audience's name and
// description) creates the audience's customer lists, one per list type, and
// their CUSTOMER_LIST audiences, named after the audience, right away — even
// before any member arrives. The alternative, remembering the name until the
// first members arrive, would need state that outlives a Lambda container;
// creating the lists at once needs none, lets the advertiser target the
// audience under its own name at once, and is what ARCHITECTURE.md promises
// for POST /v1/audiences. The lists are created with no records (an empty
// "records" field, which Pinterest's create call requires to be present). If
// the lists already exist, their names are left as they are.
//
// # Failures and order
//
// HandleSQS reports partial batch failures: when a message of a group is not
// applied, it and every later message of its group are returned in
// BatchItemFailures (so SQS FIFO delivers them again, in order); every other
// message was applied and may be deleted. A group stops at its first failed
// call; other groups go on. In particular:
//   - A message that cannot be decoded can never succeed: it fails on every
//     delivery until SQS moves it to the dead-letter queue (maxReceiveCount),
//     and only the messages behind it in its own group wait for that.
//   - 401: the access token is reloaded from the token store once per batch
//     and the call tried again; a second 401 fails what is left of the batch.
//   - 429 and 5xx: the Pinterest client's bounded retries, then the group's
//     unapplied messages fail.
//   - Near the invocation's deadline (the context's deadline minus a margin)
//     no new call starts and what is left fails.
//
// Applying a chunk twice (a redelivered message whose calls partly
// succeeded) is harmless: ADD and REMOVE are set operations. Order is what
// matters, and it is kept: within a batch the group's changes are coalesced
// first, so each identifier has one change and the ADD and REMOVE sets are
// disjoint — the calls may run in any order and give the same membership.
// Across batches, FIFO delivers a group's messages in order and never hands
// out later messages of a group while earlier ones are in flight, and a
// failed message takes every later message of its group back to the queue
// with it; so a redelivered change is always re-coalesced with everything
// that followed it. (Event times are compared only within one batch: a
// change that arrives in a later batch wins over an earlier one, whatever
// its event time.)
//
// # Logs and metrics
//
// Each batch logs one JSON line (slog) and writes one CloudWatch Embedded
// Metric Format line (namespace pinlist, dimension Connection): metrics
// ChangesApplied (records sent in successful create and update calls),
// ListsCreated, APICalls and Retries (from the Pinterest client's counters)
// and Failures (failed messages). Neither carries an identifier; a failed
// group's log line names its message group (the audience key), never a
// member.
package upload
