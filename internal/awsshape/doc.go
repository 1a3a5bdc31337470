// Package awsshape runs pinlist's real Lambda handlers the way the AWS
// deployment wires them, without AWS: small drivers that behave like
// Lambda's event source mappings, configured from template.yaml (parameter
// defaults resolved), over moto_server's SQS, DynamoDB and DynamoDB
// Streams.
//
//   - SQSDriver is an SQS event source: pollers gather batches of up to
//     BatchSize messages for at most MaximumBatchingWindowInSeconds, invoke
//     the function with its Timeout, delete what succeeded and make only
//     the BatchItemFailures visible again (ReportBatchItemFailures).
//   - StreamDriver is a DynamoDB stream event source. moto keeps one shard
//     per table; the driver spreads its records over virtual shards by the
//     hash of their partition key (one key's records stay in one shard, in
//     order), as a busy table's stream has several shards, so a benchmark
//     sees what sharding does. It applies the FilterCriteria (Filter: only
//     the "exists" matchers the template uses; any other pattern is an
//     error), retries from the lowest failed sequence number, bisects a
//     batch whose invocation failed (BisectBatchOnFunctionError) and parks
//     records when MaximumRetryAttempts or MaximumRecordAgeInSeconds run
//     out.
//   - ScheduleDriver runs a Schedule event's rate(...).
//
// What the drivers do not model: Lambda's scaling of SQS pollers with the
// backlog (a fixed Concurrency), shard splits, the 6 MB payload cut, and
// the queue's visibility timeout, which a failed message waits out
// shortened (SQSOptions.RedeliverAfter).
package awsshape
