// Package chaos holds pinlist's proofs under faults and bad input, as
// tests that start real processes: the chaos suite runs `pinlist serve`
// and `pinlist sim` as separate processes, injects Pinterest faults, expires
// the tokens and kills the server mid-run, and checks that the final lists
// equal what an independent oracle computes from the input; the corpus test
// posts every request of testdata/bad and checks each answer. The package
// has no code of its own beyond these tests.
package chaos
