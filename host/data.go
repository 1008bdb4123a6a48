package main

import (
	"context"
	"encoding/hex"
	"fmt"
	"os"
	"os/signal"
	"strconv"
	"strings"
	"text/tabwriter"

	"github.com/kadapt/kadapt/datasets"
)

func init() {
	register("data", "`data list` the ELEVATER registry; `data fetch NAME --root DIR` download a dataset", cmdData)
}

func cmdData(args []string) error {
	if len(args) == 0 {
		return usageErr("want `data list` or `data fetch NAME --root DIR`")
	}
	switch args[0] {
	case "list":
		w := tabwriter.NewWriter(os.Stdout, 2, 4, 2, ' ', 0)
		fmt.Fprintln(w, "NAME\tCLASSES\tTRAIN\tTEST\tMETRIC")
		for _, i := range datasets.Registry() {
			fmt.Fprintf(w, "%s\t%d\t%d\t%d\t%s\n", i.Name, i.NumClasses, i.TrainSize(), i.TestSize(), i.Metric)
		}
		return w.Flush()
	case "fetch":
	default:
		return usageErr("unknown data command %q", args[0])
	}
	fs := newFlags("data fetch", "data fetch NAME --root DIR [--base-url URL] [--files a.zip,b.txt]")
	root := fs.String("root", "", "download root; the dataset goes to ROOT/NAME")
	base := fs.String("base-url", datasets.DefaultBaseURL, "where datasets are served: BASE/NAME/FILE")
	files := fs.String("files", "", "comma-separated files to fetch, each PATH or PATH:SIZE:SHA256 (default: the server's NAME/MANIFEST)")
	insecure := fs.Bool("insecure", false, "allow plain http (without it only https is fetched, redirects included)")
	maxBytes := fs.Int64("max-bytes", datasets.DefaultMaxBytes, "largest download accepted for a file whose size is not given")
	if err := fs.Parse(args[1:]); err != nil {
		return err
	}
	if fs.NArg() != 1 || *root == "" {
		return usageErr("want `data fetch NAME --root DIR`")
	}
	opt := datasets.FetchOptions{BaseURL: *base, Progress: os.Stderr, Insecure: *insecure, MaxBytes: *maxBytes}
	for _, spec := range splitList(*files) {
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
	if err := datasets.Fetch(ctx, fs.Arg(0), *root, opt); err != nil {
		return err
	}
	fmt.Printf("%s is in %s\n", fs.Arg(0), *root)
	return nil
}
