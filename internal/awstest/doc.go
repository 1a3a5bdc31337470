// Package awstest runs real AWS APIs for tests: one moto_server child process
// on a free 127.0.0.1 port per test binary, with SDK clients, the environment
// for child processes, and helpers that create the queues, secrets and topics
// pinlist uses (the ledger creates its DynamoDB tables itself:
// ledger.CreateDynamoTable).
//
// Use it from TestMain so a test binary starts exactly one server:
//
//	var moto *awstest.Moto
//
//	func TestMain(m *testing.M) { os.Exit(awstest.Main(m, &moto)) }
//
// A missing moto_server fails the binary with
// `moto_server not found: install it with pip install "moto[server]"`; it is
// never a skip. The helpers give every queue, secret and topic a name unique
// within the server, so tests of one binary do not see each other's data;
// [Moto.Reset] wipes everything and is only for tests that run alone.
//
// # moto 5.2 differences from AWS that matter to pinlist
//
//   - FIFO deduplication only sees messages still in the queue. AWS drops a
//     resend with the same MessageDeduplicationId for 5 minutes even after the
//     first copy was received and deleted; moto enqueues it again. A test can
//     prove a resend is absorbed only while the first copy is still queued.
//   - Message group locking is enforced as in AWS: while a message of a group
//     is in flight, no later message of that group is delivered. One receive
//     may return several messages of the same group.
//   - FIFO order and the redrive policy interact badly: when two messages of
//     one group become visible again after a timeout, moto may deliver the
//     second first and leave the first (due for the dead-letter queue) neither
//     delivered nor moved while the second is in flight. Tests do not assert
//     strict order together with dead-lettering in the same group.
//   - SendMessageBatch validates the whole call: an entry without a
//     MessageGroupId, or without a deduplication ID on a queue without
//     content-based deduplication, fails the call (MissingParameter,
//     InvalidParameterValue) instead of that entry; moto never answers with
//     per-entry Failed results. Tests of partial failures wrap the client.
//   - The message size limit is 1 MiB (AWS's current limit); moto never
//     rejects a 256 KiB body.
//   - StartMessageMoveTask answers 500, so dead letters are redriven by
//     receive, send, delete (see queue.SQS.Redrive).
//   - There is no CloudWatch metric ApproximateAgeOfOldestMessage; SQS's
//     GetQueueAttributes has no age attribute in AWS either.
//   - A ReceiveMessage VisibilityTimeout and queue VisibilityTimeout are whole
//     seconds; 0 makes a message visible again at once (how tests stand in for
//     a timeout passing without sleeping).
//   - DynamoDB requests are not atomic with respect to each other: moto serves
//     requests on threads without locking its tables, so two concurrent
//     conditional writes to one item can both pass and two concurrent ADDs
//     can lose one. Tests that write concurrently serialize their requests
//     (the ledger's tests wrap the client) to get DynamoDB's per-request
//     atomicity. GSI reads are immediately consistent in moto (not in AWS),
//     TTL never expires items, and a table's stream has one shard.
//   - Account 123456789012; queue URLs are http://127.0.0.1:PORT/123456789012/NAME.
package awstest
