package main

import (
	"io"

	"github.com/spf13/pflag"
)

// newFlags is a bare flag set, for tests that parse run flags outside a command.
func newFlags(name, _ string) *pflag.FlagSet {
	fs := pflag.NewFlagSet(name, pflag.ContinueOnError)
	fs.SetOutput(io.Discard)
	return fs
}
