// Package local is the local runner behind `pinlist serve` (and `make run`):
// the whole connector as one process on embedded defaults. It wires the same
// pieces the Lambda functions use — internal/ingest, internal/upload,
// internal/refresh — to local stand-ins: the durable SQLite queue
// (queue.Local) for SQS, the SQLite membership ledger (internal/ledger, in
// the queue's database) for DynamoDB, a 0600 token file for Secrets
// Manager, and, unless a Pinterest base URL is configured, the built-in
// Pinterest simulator.
//
// # What runs
//
//   - The ingest HTTP server on Config.Addr (POST /v1/profiles, POST
//     /v1/audiences, GET /healthz), the ingest handler unchanged, and the
//     status page at GET /status (statuspage.go): what ReadStatus reports,
//     plus the stack's recent history kept in memory (activity.go): changes
//     applied per list, Pinterest calls and 429s per minute, the last
//     warnings and errors scrubbed of identifiers. It needs no token on a
//     loopback address and the ingest token elsewhere.
//   - Config.Workers apply workers (worker.go). Each takes one batch of up
//     to Config.BatchSize (default 100) messages of one audience
//     (queue.Local.ReceiveGroupBatch), turns it into the events.SQSEvent the
//     Lambda event source would deliver, records it in the ledger with
//     upload.Handler.ApplyTo and deletes the recorded messages in the same
//     SQLite transaction; what could not be recorded is released for
//     redelivery. Then it wakes the flush loop.
//   - A batching window (Config.BatchWindow, default 1 s): an audience's
//     messages wait until the oldest is that old or a full batch waits, so
//     a batch is one ledger transaction rather than many.
//   - One flush loop (stack.go): upload.Handler.FlushAll, woken after each
//     recorded batch and every 10 s, sends every list's pending rows in
//     calls of up to PINLIST_MAX_RECORDS_PER_REQUEST records. The order of
//     changes is the ledger's (precedence), not the queue's.
//   - The token refresher at start and every Config.RefreshEvery.
//   - Queue housekeeping (queue.Local.Maintain) every Config.MaintainEvery.
//   - A one-line progress summary on stdout every Config.ProgressEvery while
//     work flows.
//   - With no Config.PinterestURL, the Pinterest simulator on Config.SimAddr,
//     with an OAuth app and a token pair provisioned at start and written to
//     the token file (no user step). The simulator keeps its state in memory:
//     a restart of the stack starts it empty, so the stack then marks every
//     ledger row as sent out (ledger.SQLite.ResetSent) and the flush loop
//     sends every member to it again.
//
// # Retries: release with a backoff instead of waiting out the timeout
//
// Lambda's SQS event source leaves a failed message hidden until its
// visibility timeout ends. Locally a failed message is instead released at
// once with a jittered delay (internal/retry) whose ceiling doubles with its
// receive count (Config.RetryBase, at most Config.RetryMax), as an SQS consumer does with
// ChangeMessageVisibility. Its group stays locked until the delay ends, and
// a failure costs seconds rather than a whole visibility timeout. A
// Pinterest failure fails no message: its rows stay pending in the ledger. After Config.MaxReceive
// deliveries a message goes to the dead letters (pinlist status shows them;
// redrive brings them back). The visibility timeout remains the safety net
// for a batch that outlives its deadline.
//
// # Shutdown and crashes
//
// Close (SIGINT/SIGTERM in `pinlist serve`) stops accepting requests and
// lets in-flight requests finish, stops receiving, gives in-flight batches
// Config.ShutdownGrace to finish and then cancels them, which returns their
// unapplied messages to the queue at once; then it closes the database
// (checkpointing its WAL). Every queued change is committed to SQLite before
// ingest answers 202, so a crash (SIGKILL) loses nothing either: the next
// start takes over the queue and delivers what was in flight again at once.
// Recording a batch twice is harmless (the ledger is idempotent), and so is
// sending a row twice (ADD and REMOVE are set operations).
//
// # Files in the data directory (0700)
//
//   - queue.db (and -wal, -shm): the queue and the ledger, hashed
//     identifiers only.
//   - token.json: the Pinterest token pair, 0600, the token secret's schema.
//   - ingest-token: the generated ingest token, 0600, when
//     PINLIST_INGEST_TOKEN is not set.
package local
