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
	"strings"
	"syscall"
	"unicode"
	"unicode/utf8"

	"github.com/spf13/cobra"

	"github.com/kadapt/kadapt/host/lifecycle"
	"github.com/kadapt/kadapt/plugins"

	_ "github.com/kadapt/kadapt/core/backend/cpu" // the default backend registers itself
)

// commandMakers build the subcommands; each command's file adds its own in init.
// runMain builds a fresh tree each time, so flag values never carry over from one
// in-process call (a test's) to the next.
var commandMakers []func() *cobra.Command

func addCommand(build func() *cobra.Command) {
	commandMakers = append(commandMakers, build)
}

// usageError marks a mistake in how a command was called: runMain exits 2 and points
// at the command's help.
type usageError struct{ error }

func (e usageError) Unwrap() error { return e.error }

// usageErr is a usage error with this message.
func usageErr(format string, a ...any) error {
	return usageError{fmt.Errorf(format, a...)}
}

// asUsage marks err, if any, as a usage error.
func asUsage(err error) error {
	if err == nil || isUsage(err) {
		return err
	}
	return usageError{err}
}

func isUsage(err error) bool {
	var u usageError
	return errors.As(err, &u)
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
	root := newRootCmd()
	root.SetArgs(args)
	cmd, err := root.ExecuteContextC(ctx)
	if err == nil {
		return 0
	}
	fmt.Fprintf(os.Stderr, "%s: %v\n", cmd.CommandPath(), err)
	var exit *exitError
	switch {
	case isUsage(err):
		fmt.Fprintf(os.Stderr, "Run `%s --help` for usage.\n", cmd.CommandPath())
		return 2
	case errors.As(err, &exit):
		return exit.code
	case lifecycle.IsInterrupted(err):
		return lifecycle.ExitInterrupted
	}
	return 1
}

// newRootCmd is the command tree: every subcommand, help, completion, --version and
// the persistent --log-level.
func newRootCmd() *cobra.Command {
	var version bool
	root := &cobra.Command{
		Use:   "host",
		Short: "kadapt: parameter-efficient adaptation of vision transformers",
		Long: `host — kadapt: parameter-efficient adaptation of vision transformers

The host owns training, evaluation, checkpoints and the tensor backends; each
adaptation method is a plugin binary (host plugins lists them).`,
		Args:              unknownCommand,
		SilenceErrors:     true, // runMain prints the error and picks the exit status
		SilenceUsage:      true,
		PersistentPreRunE: setLogLevel,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if version {
				return printVersion(false)
			}
			return cmd.Help()
		},
	}
	root.Flags().BoolVar(&version, "version", false, "print the version, as host version does")
	root.PersistentFlags().String("log-level", "", "log level: "+strings.Join(logLevels, ", ")+" (default info, or $"+logLevelEnv+")")
	root.SetFlagErrorFunc(func(_ *cobra.Command, err error) error { return asUsage(err) })
	completeWords(root, "log-level", logLevels...)
	root.SetHelpCommand(newHelpCmd())
	for _, mk := range commandMakers {
		root.AddCommand(mk())
	}
	root.InitDefaultCompletionCmd() // now, not at Execute, so that settle reaches it
	var settle func(c *cobra.Command)
	settle = func(c *cobra.Command) {
		// cobra's completion commands start their one-line help with a capital, and
		// stood out in `host --help` among ours.
		if r, n := utf8.DecodeRuneInString(c.Short); n > 0 {
			c.Short = string(unicode.ToLower(r)) + c.Short[n:]
		}
		c.Flags().SortFlags = false // in declaration order: related flags stay together
		completeCommonFlags(c)
		c.SuggestionsMinimumDistance = 2         // cobra's default, which SuggestionsFor does not apply itself
		if !c.Runnable() && c.HasSubCommands() { // cobra's completion: a group like ours
			c.Args, c.RunE = unknownCommand, needSubcommand
		}
		if c.Args != nil {
			c.Args = usageArgs(c.Args)
		}
		for _, sub := range c.Commands() {
			settle(sub)
		}
	}
	settle(root)
	return root
}

// usageArgs marks the errors of an argument check as usage mistakes (exit 2).
func usageArgs(check cobra.PositionalArgs) cobra.PositionalArgs {
	return func(cmd *cobra.Command, args []string) error {
		return asUsage(check(cmd, args))
	}
}

// unknownCommand rejects arguments to a command that only groups subcommands.
func unknownCommand(cmd *cobra.Command, args []string) error {
	if len(args) == 0 {
		return nil
	}
	hint := ""
	if s := cmd.SuggestionsFor(args[0]); len(s) > 0 {
		hint = fmt.Sprintf(" (did you mean %s?)", strings.Join(s, " or "))
	}
	return usageErr("unknown command %q for %q%s", args[0], cmd.CommandPath(), hint)
}

// noArgs rejects positional arguments; cobra.NoArgs would call them unknown commands.
func noArgs(_ *cobra.Command, args []string) error {
	if len(args) > 0 {
		return usageErr("unexpected argument %q", args[0])
	}
	return nil
}

// newGroupCmd is a command that only holds subcommands: alone it is a usage error
// naming them.
func newGroupCmd(use, short string, subs ...*cobra.Command) *cobra.Command {
	c := &cobra.Command{Use: use, Short: short, Args: unknownCommand, RunE: needSubcommand}
	c.AddCommand(subs...)
	return c
}

// needSubcommand is a group command's run without a subcommand: a usage error.
func needSubcommand(cmd *cobra.Command, _ []string) error {
	var names []string
	for _, s := range cmd.Commands() {
		names = append(names, s.Name())
	}
	return usageErr("want a subcommand: %s", strings.Join(names, ", "))
}

// newHelpCmd replaces cobra's help command, which prints the root's usage and exits 0
// for a command that does not exist.
func newHelpCmd() *cobra.Command {
	return &cobra.Command{
		Use:   "help [command]",
		Short: "help about any command",
		RunE: func(c *cobra.Command, args []string) error {
			cmd, rest, err := c.Root().Find(args)
			if err == nil && len(rest) > 0 {
				err = unknownCommand(cmd, rest)
			}
			if err != nil {
				return err
			}
			return cmd.Help()
		},
		ValidArgsFunction: func(c *cobra.Command, args []string, toComplete string) ([]cobra.Completion, cobra.ShellCompDirective) {
			cmd, _, err := c.Root().Find(args)
			if err != nil {
				return nil, cobra.ShellCompDirectiveNoFileComp
			}
			var out []cobra.Completion
			for _, s := range cmd.Commands() {
				if s.IsAvailableCommand() && strings.HasPrefix(s.Name(), toComplete) {
					out = append(out, cobra.CompletionWithDesc(s.Name(), s.Short))
				}
			}
			return out, cobra.ShellCompDirectiveNoFileComp
		},
	}
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
