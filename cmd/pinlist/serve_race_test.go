//go:build race

package main

// buildFlags build the pinlist binary the way this test binary was built:
// with the race detector, so the build reuses the packages `go test -race`
// compiled, and serve runs under the detector too.
var buildFlags = []string{"-race"}
