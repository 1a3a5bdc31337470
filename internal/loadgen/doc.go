// Package loadgen drives pinlist from outside, the way a customer data
// platform and an operator would: it generates realistic AEP
// audience-membership bodies, posts them to a running `pinlist serve`, and
// works out independently what the Pinterest customer lists must hold
// afterwards, so a run can be checked against the simulator's state.
//
// The pieces, each usable alone:
//
//   - Generator makes AEP profiles: emails (some upper-case or padded with
//     white space), GAIDs, IDFAs, a few identities of other namespaces and
//     opt-outs, memberships of a fixed set of audiences, and exits of
//     identities that joined earlier.
//   - Oracle reads the bodies as they were sent and computes the expected
//     membership of every (audience, list type) with its own, deliberately
//     separate code for the mapping rules of ARCHITECTURE.md: normalise and
//     SHA-256 each identifier, and for one (audience, list type, identifier)
//     the latest lastQualificationTime wins, on a tie the exit wins, so the
//     outcome never depends on arrival order (retries and replays included). It imports no pinlist package, so a bug in internal/audience
//     cannot hide itself by being repeated here.
//   - Sim is a client of the simulator's inspection and control API
//     (/_sim/state, records, calls, faults, expire_tokens, tokens).
//   - AEPGenerator makes traffic shaped as Adobe's HTTP API destination
//     sends it: at most ten profiles a body, each with all its memberships
//     (most unchanged since its last send), retries and replays.
//   - RunLoad is the load benchmark behind `pinlist load`. Its default AEP
//     shape runs a warm-up, saturation, a paced phase and a second pass of
//     unchanged memberships, and checks the ledger issue's budget goals
//     (BudgetGoals): state flips sustained within Pinterest's write budget,
//     write calls against their lower bound, freshness, 429s, writes caused
//     by unchanged memberships. The bulk shape is issue 8's benchmark: a
//     fixed offered load, then saturation (Goals).
//   - LoadBadCases and BadCorpus read the bad-input corpus in testdata/bad.
//
// Nothing here logs or prints an identifier: progress lines and results hold
// counts and durations only.
package loadgen
