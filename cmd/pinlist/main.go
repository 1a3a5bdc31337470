// Command pinlist is pinlist's operator CLI: `pinlist <command> [flags]`.
//
// Each subcommand lives in its own file and adds itself to the command table
// with register in an init function, so adding one is a one-file change.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"maps"
	"os"
	"os/signal"
	"slices"
	"syscall"
)

// command is one subcommand. run gets the arguments after the command name;
// it returns when its work is done or ctx is cancelled (SIGINT/SIGTERM).
type command struct {
	name    string
	summary string
	run     func(ctx context.Context, args []string, stdout, stderr io.Writer) error
}

// commands is the subcommand table, filled by register at init time only.
var commands = map[string]command{}

// register adds a subcommand; call it from an init function.
func register(c command) {
	if _, dup := commands[c.name]; dup {
		panic("pinlist: command registered twice: " + c.name) // a programming error, caught by any test
	}
	commands[c.name] = c
}

// newFlagSet is a subcommand's flag set: parse errors go to stderr, and the
// usage text is "Usage: pinlist NAME [flags]", the about lines, then the
// flags.
func newFlagSet(name string, stderr io.Writer, about ...string) *flag.FlagSet {
	fs := flag.NewFlagSet("pinlist "+name, flag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.Usage = func() {
		fmt.Fprintln(stderr, "Usage: pinlist "+name+" [flags]")
		for _, line := range about {
			fmt.Fprintln(stderr, line)
		}
		fs.PrintDefaults()
	}
	return fs
}

// parseFlags parses args into fs and refuses positional arguments, which no
// subcommand takes.
func parseFlags(fs *flag.FlagSet, args []string) error {
	if err := fs.Parse(args); err != nil {
		return err
	}
	if fs.NArg() > 0 {
		fs.Usage()
		return fmt.Errorf("%w: unexpected arguments %q", errUsage, fs.Args())
	}
	return nil
}

// errUsage is a command line that cannot be run; usage has been printed.
var errUsage = errors.New("usage")

// exitError ends pinlist with its own exit code (and its message, when it
// has one, on stderr): how a command tells scripts more than pass or fail.
type exitError struct {
	code int
	msg  string
}

func (e *exitError) Error() string { return e.msg }

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	err := run(ctx, os.Args[1:], os.Stdout, os.Stderr)
	stop()
	if code := exitCode(err, os.Stderr); code != 0 {
		os.Exit(code)
	}
}

// exitCode reports err on stderr and returns the process's exit code: 0
// for success or -h, 2 for a usage error, an exitError's own code, else 1.
func exitCode(err error, stderr io.Writer) int {
	var exit *exitError
	switch {
	case err == nil, errors.Is(err, flag.ErrHelp):
		return 0
	case errors.Is(err, errUsage):
		if err != errUsage { // wrapped: it says what was wrong
			fmt.Fprintln(stderr, "pinlist:", err)
		}
		return 2
	case errors.As(err, &exit):
		if exit.msg != "" {
			fmt.Fprintln(stderr, "pinlist:", exit.msg)
		}
		return exit.code
	default:
		fmt.Fprintln(stderr, "pinlist:", err)
		return 1
	}
}

// run dispatches to the subcommand named by args[0].
func run(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	if len(args) == 0 {
		usage(stderr)
		return errUsage
	}
	switch args[0] {
	case "help", "-h", "-help", "--help":
		usage(stdout)
		return nil
	}
	cmd, ok := commands[args[0]]
	if !ok {
		fmt.Fprintf(stderr, "pinlist: unknown command %q\n\n", args[0])
		usage(stderr)
		return errUsage
	}
	return cmd.run(ctx, args[1:], stdout, stderr)
}

func usage(w io.Writer) {
	fmt.Fprintln(w, "Usage: pinlist <command> [flags]")
	fmt.Fprintln(w)
	fmt.Fprintln(w, "Commands:")
	for _, name := range slices.Sorted(maps.Keys(commands)) {
		fmt.Fprintf(w, "  %-10s %s\n", name, commands[name].summary)
	}
	fmt.Fprintln(w)
	fmt.Fprintln(w, `Run "pinlist <command> -h" for a command's flags.`)
}
