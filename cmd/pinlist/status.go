package main

import (
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"strings"

	"github.com/pinlist/pinlist/internal/config"
	"github.com/pinlist/pinlist/internal/local"
)

func init() {
	register(command{name: "status", summary: "show the Pinterest connection's expiry, the queue and the managed lists", run: runStatus})
}

func runStatus(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	env, err := config.FromEnv()
	if err != nil {
		return fmt.Errorf("%w: %v", errUsage, err)
	}
	opts := local.StatusOptions{DataDir: env.DataDir, AdAccountID: env.AdAccountID}
	if env.APIBaseURLSet {
		opts.PinterestURL = env.APIBaseURL
	}
	fs := flag.NewFlagSet("pinlist status", flag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.Usage = func() {
		fmt.Fprintln(stderr, "Usage: pinlist status [flags]")
		fmt.Fprintln(stderr, "Shows the stored Pinterest connection (token expiry dates, last refresh), the local queue")
		fmt.Fprintln(stderr, "(depth, in flight, dead letters, oldest message) and the customer lists pinlist manages.")
		fs.PrintDefaults()
	}
	fs.StringVar(&opts.DataDir, "data-dir", opts.DataDir, "data directory of pinlist serve ($"+config.EnvDataDir+")")
	fs.StringVar(&opts.PinterestURL, "pinterest-url", opts.PinterestURL, "Pinterest API v5 base URL to read the lists from ($"+config.EnvAPIBaseURL+"); empty: the simulator of a running pinlist serve")
	fs.StringVar(&opts.SimAddr, "sim-addr", local.DefaultSimAddr, "address of pinlist serve's built-in simulator")
	fs.StringVar(&opts.AdAccountID, "ad-account", opts.AdAccountID, "ad account ID ($"+config.EnvAdAccountID+"; default: the token file's)")
	asJSON := fs.Bool("json", false, "print JSON, for scripts")
	if err := fs.Parse(args); err != nil {
		return err
	}
	if fs.NArg() > 0 {
		fs.Usage()
		return fmt.Errorf("%w: unexpected arguments %q", errUsage, fs.Args())
	}
	opts.PinterestURL = strings.TrimRight(strings.TrimSpace(opts.PinterestURL), "/")
	st := local.ReadStatus(ctx, opts)
	if *asJSON {
		enc := json.NewEncoder(stdout)
		enc.SetIndent("", "  ")
		if err := enc.Encode(st); err != nil {
			return fmt.Errorf("write status: %w", err)
		}
		return nil
	}
	if err := st.WriteText(stdout); err != nil {
		return fmt.Errorf("write status: %w", err)
	}
	return nil
}
