// Package ingest is pinlist's ingest step: an HTTP handler that accepts AEP
// audience-membership updates and audience metadata, turns them into hashed
// membership changes and hands them to the queue. The same Handler serves the
// Lambda function (HandleAPIGateway, behind an API Gateway HTTP API) and the
// local runner (ServeHTTP, mounted by pinlist serve).
//
// # Routes
//
//   - GET (or HEAD) /healthz: 200 {"status":"ok"}, no credentials.
//   - POST /v1/profiles: one AEP profile, an array of them or
//     {"profiles": [...]}. The profiles are mapped and coalesced within the
//     request (a pooled audience.Mapper), packed per audience into messages of at
//     most Options.MaxMessageBytes, and sent in batches of at most 10 with
//     group = the audience key and deduplication ID = the hex SHA-256 of the
//     message body. 202 {"profiles","identitiesActivated","excluded",
//     "failed","failures","failuresTruncated"?,"changesEnqueued","messages"}
//     once every message is enqueued. A malformed identity or membership
//     fails alone (counted, with its JSON path); the good ones are enqueued.
//   - POST /v1/audiences: {"id","name","description"?,"namespace"?}
//     (namespace defaults to "ups"). Enqueues an "audience" message in the
//     audience's group and answers 202 {"externalAudienceId": "<ns>:<id>"}.
//
// # Requests
//
// Every /v1/* request needs "Authorization: Bearer <ingest token>". The
// presented token is compared with the expected one in constant time (both
// are hashed first). The expected token comes from an IngestTokenSource: a fixed one
// (PINLIST_INGEST_TOKEN) or a Secrets Manager secret
// (PINLIST_INGEST_TOKEN_SECRET_ID), cached for Options.TokenTTL; a token that
// does not match makes the handler fetch the secret again, at most once per
// Options.TokenRefresh, so a rotated secret is accepted within that time.
//
// The body must be JSON: Content-Type application/json or any
// application/*+json type, with no charset parameter or UTF-8. A request with
// no Content-Type at all is read as JSON too: some senders omit it, and the
// body must still parse as JSON or the answer is 400. Header names are
// matched case-insensitively (API Gateway lowercases them).
//
// # Errors
//
// Every error is {"error":{"code","message","path"}}; path is a JSON path
// into the body ("$.id", "$[3].identityMap.email") or "" when no part of the
// body is at fault. Codes and statuses:
//
//	400 invalid_request, or the audience.RequestError kind (malformed_json,
//	    wrong_type, ambiguous_body, duplicate_key: a key twice in one object
//	    the mapping reads, too_deep: nesting over 10,000, too_many_profiles,
//	    too_many_identities, too_many_audiences, too_many_changes)
//	401 unauthorized (with WWW-Authenticate: Bearer)
//	404 not_found
//	405 method_not_allowed (with Allow)
//	413 payload_too_large (body over Options.Limits.MaxBodyBytes)
//	415 unsupported_media_type
//	503 unavailable (with Retry-After): a message could not be enqueued after
//	    the retries, or the expected token could not be fetched
//
// A request is never answered 2xx unless all of its messages were accepted by
// the queue. After a 503 some of its messages may be queued already; the
// caller's retry produces the same changes with the same event times, which
// the ledger finds flip nothing, so they cost no Pinterest call (the local
// queue also drops identical bodies within five minutes, as SQS FIFO did;
// the standard queue in AWS takes them again). A membership without
// lastQualificationTime takes the receive time, so its retry carries a later
// time: it sets the same state, which flips nothing either.
//
// Messages, log lines and error messages never hold a plain identifier: only
// hashes, counts and JSON paths. Each request logs one JSON line with its
// request ID (the Lambda request ID, or a random one), which is also returned
// in X-Request-Id.
//
// # Metrics
//
// With Options.Metrics set, each POST /v1/profiles request that was mapped
// writes one CloudWatch Embedded Metric Format line (namespace pinlist,
// dimension Connection = Options.Connection), all of unit Count:
// ChangesReceived (the changes answered 202, after coalescing within the
// request; 0 after a 503, since the caller sends them again),
// IdentitiesFailed and IdentitiesExcluded (the report's failed and excluded
// totals). template.yaml's dashboard reads them.
package ingest
