// Command host is kadapt's host process: it owns the training loop, evaluation,
// checkpoints, data loading and tensor compute, and talks to adaptation-method plugins
// over go-plugin. Run `host help` for the commands.
package main

import (
	"errors"
	"fmt"
	"os"
	"sort"
	"strings"

	"github.com/kadapt/kadapt/plugins"
	"github.com/spf13/pflag"

	_ "github.com/kadapt/kadapt/core/backend/cpu" // the default backend registers itself
)

// command is one subcommand. run returns an error; usage errors wrap errUsage so main
// can print the command's flags.
type command struct {
	summary string
	run     func(args []string) error
}

var commands = map[string]command{}

var errUsage = errors.New("usage")

func register(name, summary string, run func(args []string) error) {
	commands[name] = command{summary: summary, run: run}
}

func main() {
	defer plugins.CleanupClients()
	os.Exit(runMain(os.Args[1:]))
}

func runMain(args []string) int {
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
	if err := cmd.run(args[1:]); err != nil {
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
