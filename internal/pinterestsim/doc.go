// Package pinterestsim is an in-memory simulator of the parts of Pinterest's
// API v5 that pinlist uses: customer lists, audiences and OAuth tokens. Every
// API request is validated against Pinterest's own OpenAPI description; it adds
// fault injection and an inspection API under /_sim/ for tests.
//
// Served like Pinterest (bearer token and scopes checked, bodies validated):
//
//	POST  /v5/ad_accounts/{ad}/customer_lists              customer_lists.create
//	GET   /v5/ad_accounts/{ad}/customer_lists              customer_lists.list (bookmark paging)
//	GET   /v5/ad_accounts/{ad}/customer_lists/{id}         customer_lists.get
//	PATCH /v5/ad_accounts/{ad}/customer_lists/{id}         customer_lists.update (ADD/REMOVE)
//	POST  /v5/ad_accounts/{ad}/audiences                   audiences.create (CUSTOMER_LIST)
//	GET   /v5/ad_accounts/{ad}/audiences                   audiences.list
//	GET   /v5/ad_accounts/{ad}/audiences/{id}              audiences.get
//	PATCH /v5/ad_accounts/{ad}/audiences/{id}              audiences.update (name, description; rule.customer_list_id
//	                                                       points it at another list of the account; operation_type
//	                                                       REMOVE → status REMOVED)
//	POST  /v5/oauth/token                                  oauth.token (Basic auth; code, refresh, client credentials)
//	GET   /oauth/?client_id&redirect_uri&scope&state       approves at once: 302 to redirect_uri with code and state
//
// Errors are Pinterest's {"code", "message"}: 400 code 1 for a request that
// does not match the description (the message names the parameter or JSON
// pointer), 401 code 2 for a missing, unknown or expired token, 403 code 3
// for missing scopes, 404 for an unknown ad account, list or audience, and
// 429 code 8 for an injected rate limit or a spent write budget.
//
// The write budget (Options.WriteLimit; PinterestWriteLimit = 400 in
// `pinlist sim` and `pinlist serve`) stands for Pinterest's ads_write rate
// limit: N write calls a minute per ad account, shared by customer list
// creates and updates and audience creates and updates, as a token bucket
// holding N/10 calls (at least 1; Options.WriteBurst) and refilled at N/60 a
// second. Only valid, authenticated writes spend it (validation comes
// first); reads are not limited. Every write answer, 2xx or 429, carries
// X-RateLimit-Limit (N, calls a minute), X-RateLimit-Remaining (whole calls
// left in the bucket) and X-RateLimit-Reset (seconds, rounded up, until the
// bucket holds a call again: 0 while it does); a 429 also carries
// Retry-After with the same seconds, at least 1. Pinterest's OpenAPI description documents no
// response headers; X-RateLimit-Reset in seconds is what its clients
// (Airbyte's) read. Token endpoint errors also carry
// RFC 6749's "error" ("invalid_grant", "invalid_client", "invalid_request").
//
// Inspection and control, unauthenticated (the simulator is a local tool):
//
//	GET    /_sim/state                                     State as JSON
//	GET    /_sim/ad_accounts/{ad}/customer_lists/{id}/records  {"records": [...sorted]}
//	GET    /_sim/calls                                     requests per route name; 429s per route as "<route>.429"
//	POST   /_sim/faults                                    a FaultSpec as JSON
//	DELETE /_sim/faults                                    clear every fault
//	POST   /_sim/expire_tokens                             every access token expires now
//	POST   /_sim/tokens                                    {"client_id", "scopes"} → {"access_token", "refresh_token"}
//	POST   /_sim/ad_accounts                               {"id"}: make an ad account exist
//	DELETE /_sim/ad_accounts/{ad}/customer_lists/{id}      delete a list, as Ads Manager can (204; 404 when absent)
//	POST   /_sim/audience_rules                            {"refuse": bool}: audiences.update refuses (400) a PATCH
//	                                                       that changes an audience's rule, as Pinterest might
//	                                                       (Options.RefuseAudienceRuleChanges)
package pinterestsim
