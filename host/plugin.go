package main

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"text/tabwriter"

	"github.com/hashicorp/go-hclog"

	"github.com/kadapt/kadapt/plugins"
)

func init() {
	register("plugins", "list method plugins (name, version, summary, path); `plugins show NAME` documents one", cmdPlugins)
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

func cmdPlugins(args []string) error {
	fs := newFlags("plugins", "plugins [show NAME] [--plugin-path DIRS]")
	dirsFlag := fs.String("plugin-path", "", "extra plugin directories, colon-separated")
	if err := fs.Parse(args); err != nil {
		return err
	}
	dirs := pluginDirs(*dirsFlag)
	log := hclog.New(&hclog.LoggerOptions{Name: "host", Output: os.Stderr, Level: hclog.Warn})
	if fs.NArg() >= 1 && fs.Arg(0) == "show" {
		if fs.NArg() != 2 {
			return usageErr("want `plugins show NAME`")
		}
		path, err := plugins.Find(fs.Arg(1), dirs)
		if err != nil {
			return err
		}
		d, _, err := plugins.DescribeFile(path, plugins.OpenOptions{Logger: log})
		if err != nil {
			return err
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
	found, errs := plugins.Discover(dirs, plugins.OpenOptions{Logger: log})
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
	for _, e := range errs {
		fmt.Fprintf(os.Stderr, "skipped: %v\n", e)
	}
	if len(found) == 0 {
		return fmt.Errorf("no plugins found in %s (run `make build`)", strings.Join(dirs, ", "))
	}
	return nil
}
