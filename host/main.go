// Command host is kadapt's host process: it owns the training loop, evaluation,
// checkpoints, data loading and tensor compute, and talks to adaptation-method plugins
// over go-plugin. Run `host help` for the commands.
package main

import (
	"context"
	"errors"
	"fmt"
	"os"
	"os/signal"
	"sort"
	"strings"
	"syscall"

	"github.com/spf13/pflag"

	"github.com/kadapt/kadapt/host/lifecycle"
	"github.com/kadapt/kadapt/plugins"

	_ "github.com/kadapt/kadapt/core/backend/cpu" // the default backend registers itself
)

// command is one subcommand. run returns an error; usage errors wrap errUsage so main
// can print the command's flags.
type command struct {
	summary string
	run     func(ctx context.Context, args []string) error
}

var commands = map[string]command{}

var errUsage = errors.New("usage")

func register(name, summary string, run func(args []string) error) {
	commands[name] = command{summary: summary, run: func(_ context.Context, args []string) error { return run(args) }}
}

// registerStoppable registers a command that stops cleanly on SIGINT or SIGTERM: its
// context is cancelled by the first one (host/lifecycle), and it returns the cause.
func registerStoppable(name, summary string, run func(ctx context.Context, args []string) error) {
	commands[name] = command{summary: summary, run: run}
}

func main() {
	os.Exit(runMain(os.Args[1:]))
}

// runMain returns the exit status: 0, 1 for an error, 2 for a usage error,
// lifecycle.ExitInterrupted after a signal. Every way out of it, a panic included,
// first stops the plugin processes this process started.
func runMain(args []string) int {
	defer plugins.CleanupClients()
	// With SIGPIPE caught, a write to a closed stdout (`host run | head -1`) fails with
	// EPIPE instead of killing the process before the deferred cleanup.
	signal.Notify(make(chan os.Signal, 1), syscall.SIGPIPE)
	ctx, stop := lifecycle.OnSignals(context.Background(), func(s os.Signal) {
		fmt.Fprintln(os.Stderr, "host: interrupted again: stopping now, without a checkpoint of the step in flight")
		plugins.CleanupClients()
		os.Exit(lifecycle.ForcedExitCode(s))
	})
	defer stop()
	if len(args) == 0 || args[0] == "help" || args[0] == "-h" || args[0] == "--help" {
		printHelp()
		return 0
	}
	if args[0] == "--version" {
		args[0] = "version"
	}
	cmd, ok := commands[args[0]]
	if !ok {
		fmt.Fprintf(os.Stderr, "host: unknown command %q\n\n", args[0])
		printHelp()
		return 2
	}
	if err := cmd.run(ctx, args[1:]); err != nil {
		if errors.Is(err, pflag.ErrHelp) {
			return 0
		}
		fmt.Fprintf(os.Stderr, "host %s: %v\n", args[0], err)
		var exit *exitError
		switch {
		case errors.Is(err, errUsage):
			return 2
		case errors.As(err, &exit):
			return exit.code
		case lifecycle.IsInterrupted(err):
			return lifecycle.ExitInterrupted
		}
		return 1
	}
	return 0
}

func printHelp() {
	fmt.Println("host — kadapt: parameter-efficient adaptation of vision transformers")
	fmt.Println()
	fmt.Println("Usage: host <command> [flags]   (host <command> --help for its flags)")
	fmt.Println()
	var names []string
	for n := range commands {
		names = append(names, n)
	}
	sort.Strings(names)
	for _, n := range names {
		fmt.Printf("  %-11s %s\n", n, commands[n].summary)
	}
}

// newFlags makes a flag set whose errors name the command.
func newFlags(name, usage string) *pflag.FlagSet {
	fs := pflag.NewFlagSet(name, pflag.ContinueOnError)
	fs.SortFlags = false
	fs.Usage = func() {
		fmt.Fprintf(os.Stderr, "Usage: host %s\n\nFlags:\n%s", usage, fs.FlagUsages())
	}
	return fs
}

// usageErr marks an error as a usage mistake.
func usageErr(format string, a ...any) error {
	return fmt.Errorf("%w: %s", errUsage, fmt.Sprintf(format, a...))
}

func splitList(s string) []string {
	var out []string
	for _, p := range strings.Split(s, ",") {
		if p = strings.TrimSpace(p); p != "" {
			out = append(out, p)
		}
	}
	return out
}
