// Package local is the local runner behind `pinlist serve` (and `make run`):
// the whole connector as one process on embedded defaults. It wires the same
// pieces the Lambda functions use — internal/ingest, internal/upload,
// internal/refresh — to local stand-ins: the durable SQLite queue
// (queue.Local) for SQS FIFO, a 0600 token file for Secrets Manager, and,
// unless a Pinterest base URL is configured, the built-in Pinterest simulator.
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
//   - Config.Workers upload workers. Each takes one batch of up to
//     Config.BatchSize (default 100) messages of one audience
//     (queue.Local.ReceiveGroupBatch: a group is never in two workers at
//     once, so several audiences run in parallel and each one in order),
//     turns it into the events.SQSEvent the Lambda event source would
//     deliver, and calls upload.Handler.HandleSQS. What succeeded is
//     deleted; what is reported in BatchItemFailures is released for
//     redelivery.
//   - A batching window (Config.BatchWindow, default 1 s): an audience's
//     messages wait until the oldest is that old or a full batch waits.
//     Every batch makes at least one ADD and, with exits, one REMOVE call
//     per list it touches, so fewer, larger batches make fewer Pinterest
//     calls; the window is what it costs in freshness. Production (SQS FIFO
//     and the Lambda event source) has batches of at most 10 and no window.
//   - The token refresher at start and every Config.RefreshEvery.
//   - Queue housekeeping (queue.Local.Maintain) every Config.MaintainEvery.
//   - A one-line progress summary on stdout every Config.ProgressEvery while
//     work flows.
//   - With no Config.PinterestURL, the Pinterest simulator on Config.SimAddr,
//     with an OAuth app and a token pair provisioned at start and written to
//     the token file (no user step). The simulator keeps its state in memory:
//     a restart of the stack starts it empty, and the queue then applies what
//     is left to the new, empty simulator.
//
// # Retries: release with a backoff instead of waiting out the timeout
//
// Lambda's SQS event source leaves a failed message hidden until its
// visibility timeout ends. Locally a failed message is instead released at
// once with a jittered delay (internal/retry) whose ceiling doubles with its
// receive count (Config.RetryBase, at most Config.RetryMax), as an SQS consumer does with
// ChangeMessageVisibility. Its group stays locked until the delay ends, so
// order is kept exactly as in production, and a Pinterest hiccup costs
// seconds rather than a whole visibility timeout. After Config.MaxReceive
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
// Applying a batch twice is harmless (ADD and REMOVE are set operations).
//
// # Files in the data directory (0700)
//
//   - queue.db (and -wal, -shm): the queue, hashed identifiers only.
//   - token.json: the Pinterest token pair, 0600, the token secret's schema.
//   - ingest-token: the generated ingest token, 0600, when
//     PINLIST_INGEST_TOKEN is not set.
package local
