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
//	POST  /v5/oauth/token                                  oauth.token (Basic auth; code, refresh, client credentials)
//	GET   /oauth/?client_id&redirect_uri&scope&state       approves at once: 302 to redirect_uri with code and state
//
// Errors are Pinterest's {"code", "message"}: 400 code 1 for a request that
// does not match the description (the message names the parameter or JSON
// pointer), 401 code 2 for a missing, unknown or expired token, 403 code 3
// for missing scopes, 404 for an unknown ad account, list or audience, and
// 429 code 8 for an injected rate limit. Token endpoint errors also carry
// RFC 6749's "error" ("invalid_grant", "invalid_client", "invalid_request").
//
// Inspection and control, unauthenticated (the simulator is a local tool):
//
//	GET    /_sim/state                                     State as JSON
//	GET    /_sim/ad_accounts/{ad}/customer_lists/{id}/records  {"records": [...sorted]}
//	GET    /_sim/calls                                     requests per route name
//	POST   /_sim/faults                                    a FaultSpec as JSON
//	DELETE /_sim/faults                                    clear every fault
//	POST   /_sim/expire_tokens                             every access token expires now
//	POST   /_sim/tokens                                    {"client_id", "scopes"} → {"access_token", "refresh_token"}
//	POST   /_sim/ad_accounts                               {"id"}: make an ad account exist
package pinterestsim
