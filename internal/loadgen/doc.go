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
//   - RunLoad is the load benchmark behind `pinlist load`: a fixed offered
//     load, then saturation, measuring throughput end to end, ingest
//     latency, freshness, Pinterest calls against their lower bound and the
//     server's peak memory.
//   - LoadBadCases and BadCorpus read the bad-input corpus in testdata/bad.
//
// Nothing here logs or prints an identifier: progress lines and results hold
// counts and durations only.
package loadgen
