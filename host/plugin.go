package main

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"text/tabwriter"

	"github.com/hashicorp/go-hclog"
	"github.com/spf13/cobra"

	"github.com/kadapt/kadapt/plugins"
)

func init() {
	addCommand(newPluginsCmd)
}

// pluginDirs is the search path: configured directories, $KADAPT_PLUGIN_PATH, then
// bin/plugins beside the host.
func pluginDirs(configured string) []string {
	var dirs []string
	if configured != "" {
		dirs = filepath.SplitList(configured)
	}
	return plugins.SearchPath(dirs...)
}

// openMethod starts the plugin binary resolvePlugin chose, pinned to its SHA-256
// (go-plugin checks it again as it starts the process).
func openMethod(rc RunConfig, log hclog.Logger) (method, error) {
	return plugins.Open(rc.PluginBinary, plugins.OpenOptions{Logger: log, SHA256: rc.PluginSHA256})
}

func newPluginsCmd() *cobra.Command {
	var dirs string
	var jsonOut bool
	list := &cobra.Command{
		Use:   "plugins [show NAME] [--plugin-path DIRS]",
		Short: "list method plugins (name, version, summary, path); `plugins show NAME` documents one",
		Args:  unknownCommand,
		RunE: func(*cobra.Command, []string) error {
			return listPlugins(pluginDirs(dirs), jsonOut)
		},
	}
	show := &cobra.Command{
		Use: "show NAME",
		ValidArgsFunction: func(c *cobra.Command, args []string, s string) ([]cobra.Completion, cobra.ShellCompDirective) {
			if len(args) > 0 {
				return nil, cobra.ShellCompDirectiveNoFileComp
			}
			return completePlugins(c, args, s)
		},
		Short: "a plugin's description and hyperparameters (name, type, default, help)",
		Args:  cobra.ExactArgs(1),
		RunE: func(_ *cobra.Command, args []string) error {
			return showPlugin(args[0], pluginDirs(dirs), jsonOut)
		},
	}
	list.PersistentFlags().StringVar(&dirs, "plugin-path", "", "extra plugin directories, colon-separated (searched before $KADAPT_PLUGIN_PATH and bin/plugins)")
	list.PersistentFlags().BoolVar(&jsonOut, "json", false, "print the result as one JSON document")
	list.AddCommand(show)
	return list
}

func showPlugin(name string, dirs []string, jsonOut bool) error {
	log := newLogger("host")
	path, err := plugins.Find(name, dirs)
	if err != nil {
		return err
	}
	d, _, err := plugins.DescribeFile(path, plugins.OpenOptions{Logger: log})
	if err != nil {
		return err
	}
	if jsonOut {
		return writeJSON(struct {
			plugins.Description
			Path string `json:"path"`
		}{d, path})
	}
	fmt.Printf("%s %s — %s\npath: %s\n\nhyperparameters (set with --hp NAME=VALUE):\n", d.Name, d.Version, d.Summary, path)
	w := tabwriter.NewWriter(os.Stdout, 2, 4, 2, ' ', 0)
	for _, h := range d.Hyperparameters {
		fmt.Fprintf(w, "  %s\t%s\tdefault %s\t%s\n", h.Name, h.Type, h.Default, h.Help)
	}
	if len(d.Hyperparameters) == 0 {
		fmt.Fprintln(w, "  (none)")
	}
	return w.Flush()
}

func listPlugins(dirs []string, jsonOut bool) error {
	log := newLogger("host")
	found, errs := plugins.Discover(dirs, plugins.OpenOptions{Logger: log})
	if jsonOut {
		if err := writeJSON(append([]plugins.Info{}, found...)); err != nil {
			return err
		}
	} else {
		w := tabwriter.NewWriter(os.Stdout, 2, 4, 2, ' ', 0)
		fmt.Fprintln(w, "NAME\tVERSION\tSUMMARY\tPATH")
		for _, p := range found {
			summary := []rune(p.Summary)
			if len(summary) > 70 {
				summary = append(summary[:67], []rune("...")...)
			}
			fmt.Fprintf(w, "%s\t%s\t%s\t%s\n", p.Name, p.Version, string(summary), p.Path)
		}
		if err := w.Flush(); err != nil {
			return err
		}
	}
	for _, e := range errs {
		fmt.Fprintf(os.Stderr, "skipped: %v\n", e)
	}
	if len(found) == 0 {
		return fmt.Errorf("no plugins found in %s (run `make build`)", strings.Join(dirs, ", "))
	}
	return nil
}
