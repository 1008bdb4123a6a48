package main

import (
	"os"
	"slices"
	"strings"

	"github.com/spf13/cobra"

	"github.com/kadapt/kadapt/backbones"
	"github.com/kadapt/kadapt/datasets"
	"github.com/kadapt/kadapt/plugins"
)

// Shell completion of flag values and arguments, from the same tables the commands
// check them against. Nothing here starts a plugin: a completion must be instant.

// completeWords offers words as the values of the flag called name.
func completeWords(cmd *cobra.Command, name string, words ...string) {
	words = slices.DeleteFunc(slices.Clone(words), func(w string) bool { return w == "" })
	mustComplete(cmd, name, cobra.FixedCompletions(words, cobra.ShellCompDirectiveNoFileComp))
}

// mustComplete registers a flag's completion; an error is a mistake in this file (no
// such flag, or registered twice), which every test that builds the tree would hit.
func mustComplete(cmd *cobra.Command, name string, f cobra.CompletionFunc) {
	if err := cmd.RegisterFlagCompletionFunc(name, f); err != nil {
		panic(err)
	}
}

// completeRunFlags offers the words of the run flags that take one of a few, and the
// datasets there are.
func completeRunFlags(cmd *cobra.Command) {
	for name, key := range flagKeys {
		if c := keyChoices(key); c != nil {
			completeWords(cmd, name, c...)
		}
	}
	completeWords(cmd, "dataset", datasetNames()...)
}

// completeCommonFlags offers values for the flags that mean the same in every command
// that has them.
func completeCommonFlags(cmd *cobra.Command) {
	if cmd.Flags().Lookup("plugin") != nil {
		mustComplete(cmd, "plugin", completePlugins)
	}
	if cmd.Flags().Lookup("backbone") != nil {
		completeWords(cmd, "backbone", presetList()...)
	}
}

// completePlugins lists the plugins in the search path by file name.
func completePlugins(*cobra.Command, []string, string) ([]cobra.Completion, cobra.ShellCompDirective) {
	var names []cobra.Completion
	for _, dir := range pluginDirs("") {
		entries, _ := os.ReadDir(dir)
		for _, e := range entries {
			if name, ok := strings.CutPrefix(e.Name(), plugins.FilePrefix); ok && !slices.Contains(names, name) {
				names = append(names, name)
			}
		}
	}
	return names, cobra.ShellCompDirectiveNoFileComp
}

// presetNames is the architecture presets, for a flag's help.
func presetNames() string { return strings.Join(presetList(), ", ") }

// presetList is the architecture presets, sorted.
func presetList() []string {
	var names []string
	for n := range backbones.Presets {
		names = append(names, n)
	}
	slices.Sort(names)
	return names
}

// datasetNames is the built-in task and the ELEVATER registry.
func datasetNames() []string {
	names := []string{demoDataset}
	for _, i := range datasets.Registry() {
		names = append(names, i.Name)
	}
	return names
}
