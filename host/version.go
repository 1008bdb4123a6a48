package main

import (
	"fmt"
	"runtime"
	"runtime/debug"

	"github.com/spf13/cobra"

	"github.com/kadapt/kadapt/core/backend/cpu"
)

func init() {
	addCommand(func() *cobra.Command {
		var jsonOut bool
		cmd := &cobra.Command{
			Use:   "version",
			Short: "print the module version, Go version, build tags and the CPU matrix-product kernel (also --version)",
			Args:  noArgs,
			RunE: func(cmd *cobra.Command, _ []string) error {
				return printVersion(jsonOut)
			},
		}
		cmd.Flags().BoolVar(&jsonOut, "json", false, "print it as one JSON object")
		return cmd
	})
}

// buildVersion is what a performance report needs to identify the binary: a CPU
// step's speed depends mostly on which GEMM runs (a SIMD kernel, gonum's fallback, or
// OpenBLAS under -tags openblas).
type buildVersion struct {
	Version   string `json:"version"`
	Revision  string `json:"revision,omitempty"`
	Go        string `json:"go"`
	Platform  string `json:"platform"`
	BuildTags string `json:"build_tags"`
	CPUGEMM   string `json:"cpu_gemm"`
}

func readBuildVersion() buildVersion {
	v := buildVersion{Version: "(devel)", Go: runtime.Version(), Platform: runtime.GOOS + "/" + runtime.GOARCH, CPUGEMM: cpu.GEMM()}
	if bi, ok := debug.ReadBuildInfo(); ok {
		if bi.Main.Version != "" {
			v.Version = bi.Main.Version
		}
		for _, s := range bi.Settings {
			switch s.Key {
			case "-tags":
				v.BuildTags = s.Value
			case "vcs.revision":
				v.Revision = s.Value[:min(len(s.Value), 12)]
			}
		}
	}
	return v
}

func printVersion(jsonOut bool) error {
	v := readBuildVersion()
	if jsonOut {
		return writeJSON(v)
	}
	fmt.Printf("kadapt host %s", v.Version)
	if v.Revision != "" {
		fmt.Printf(" (%s)", v.Revision)
	}
	tags := v.BuildTags
	if tags == "" {
		tags = "(none)"
	}
	_, err := fmt.Printf("\n%s %s\nbuild tags: %s\ncpu gemm: %s\n", v.Go, v.Platform, tags, v.CPUGEMM)
	return err
}
