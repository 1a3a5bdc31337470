//go:build race

package chaos

// buildFlags build the pinlist binary the way this test binary was built.
var buildFlags = []string{"-race"}
