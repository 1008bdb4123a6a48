package main

import (
	"context"
	"encoding/hex"
	"fmt"
	"os"
	"os/signal"
	"path/filepath"
	"strconv"
	"strings"
	"text/tabwriter"

	"github.com/spf13/cobra"

	"github.com/kadapt/kadapt/datasets"
)

func init() {
	addCommand(func() *cobra.Command {
		return newGroupCmd("data", "`data list` the ELEVATER registry; `data fetch NAME --root DIR` download a dataset",
			newDataListCmd(), newDataFetchCmd())
	})
}

func newDataListCmd() *cobra.Command {
	var jsonOut bool
	cmd := &cobra.Command{
		Use:   "list",
		Short: "list the ELEVATER datasets kadapt knows (classes, split sizes, metric)",
		Args:  noArgs,
		RunE: func(*cobra.Command, []string) error {
			if jsonOut {
				type row struct {
					Name       string `json:"name"`
					Classes    int    `json:"classes"`
					Train      int    `json:"train"`
					Test       int    `json:"test"`
					Metric     string `json:"metric"`
					MultiLabel bool   `json:"multi_label"`
				}
				var rows []row
				for _, i := range datasets.Registry() {
					rows = append(rows, row{i.Name, i.NumClasses, i.TrainSize(), i.TestSize(), i.Metric, i.MultiLabel})
				}
				return writeJSON(rows)
			}
			w := tabwriter.NewWriter(os.Stdout, 2, 4, 2, ' ', 0)
			fmt.Fprintln(w, "NAME\tCLASSES\tTRAIN\tTEST\tMETRIC")
			for _, i := range datasets.Registry() {
				fmt.Fprintf(w, "%s\t%d\t%d\t%d\t%s\n", i.Name, i.NumClasses, i.TrainSize(), i.TestSize(), i.Metric)
			}
			return w.Flush()
		},
	}
	cmd.Flags().BoolVar(&jsonOut, "json", false, "print the registry as one JSON array")
	return cmd
}

func newDataFetchCmd() *cobra.Command {
	cmd := &cobra.Command{
		Use: "fetch NAME --root DIR [--base-url URL] [--files a.zip,b.txt]",
		ValidArgsFunction: func(_ *cobra.Command, args []string, _ string) ([]cobra.Completion, cobra.ShellCompDirective) {
			if len(args) > 0 {
				return nil, cobra.ShellCompDirectiveNoFileComp
			}
			return datasetNames()[1:], cobra.ShellCompDirectiveNoFileComp // the registry's; mnist-demo is built in
		},
		Short: "download a dataset to ROOT/NAME, checking sizes and SHA-256 sums",
		Args:  cobra.ExactArgs(1),
	}
	fs := cmd.Flags()
	root := fs.String("root", "", "download root (required); the dataset goes to ROOT/NAME")
	base := fs.String("base-url", datasets.DefaultBaseURL, "where datasets are served: BASE/NAME/FILE")
	files := fs.String("files", "", "comma-separated files to fetch, each PATH or PATH:SIZE:SHA256 (default: the server's NAME/MANIFEST)")
	insecure := fs.Bool("insecure", false, "allow plain http (without it only https is fetched, redirects included)")
	maxBytes := fs.Int64("max-bytes", datasets.DefaultMaxBytes, "largest download accepted for a file whose size is not given")
	jsonOut := fs.Bool("json", false, "print the dataset and where it is as one JSON object")
	cmd.RunE = func(_ *cobra.Command, args []string) error {
		return fetchData(args[0], *root, *base, *files, *insecure, *maxBytes, *jsonOut)
	}
	return cmd
}

func fetchData(name, root, base, files string, insecure bool, maxBytes int64, jsonOut bool) error {
	if root == "" {
		return usageErr("--root is required: the dataset goes to ROOT/NAME")
	}
	downloads := &downloadProgress{d: display(false)}
	defer downloads.End(nil)
	opt := datasets.FetchOptions{BaseURL: base, Progress: downloads, Insecure: insecure, MaxBytes: maxBytes}
	for _, spec := range splitList(files) {
		parts := strings.Split(spec, ":")
		f := datasets.File{Path: parts[0]}
		if len(parts) > 1 {
			n, err := strconv.ParseInt(parts[1], 10, 64)
			if err != nil {
				return usageErr("--files %q: size %q is not a number", spec, parts[1])
			}
			f.Size = n
		}
		if len(parts) > 2 {
			if _, err := hex.DecodeString(parts[2]); err != nil || len(parts[2]) != 64 {
				return usageErr("--files %q: SHA-256 %q is not 64 hex digits", spec, parts[2])
			}
			f.SHA256 = parts[2]
		}
		opt.Files = append(opt.Files, f)
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt)
	defer stop()
	if err := datasets.Fetch(ctx, name, root, opt); err != nil {
		return err
	}
	if jsonOut {
		return writeJSON(map[string]string{"dataset": name, "root": root, "dir": filepath.Join(root, name)})
	}
	fmt.Printf("%s is in %s\n", name, root)
	return nil
}
