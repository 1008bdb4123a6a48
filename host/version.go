package main

import (
	"fmt"
	"runtime"
	"runtime/debug"

	"github.com/kadapt/kadapt/core/backend/cpu"
)

func init() {
	register("version", "print the module version, Go version, build tags and the CPU matrix-product kernel (also --version)", cmdVersion)
}

// cmdVersion prints what a performance report needs to identify the binary: a CPU
// step's speed depends mostly on which GEMM runs (a SIMD kernel, gonum's fallback, or
// OpenBLAS under -tags openblas).
func cmdVersion(args []string) error {
	fs := newFlags("version", "version")
	if err := fs.Parse(args); err != nil {
		return err
	}
	version, tags, revision := "(devel)", "", ""
	if bi, ok := debug.ReadBuildInfo(); ok {
		if bi.Main.Version != "" {
			version = bi.Main.Version
		}
		for _, s := range bi.Settings {
			switch s.Key {
			case "-tags":
				tags = s.Value
			case "vcs.revision":
				revision = s.Value
			}
		}
	}
	fmt.Printf("kadapt host %s", version)
	if revision != "" {
		fmt.Printf(" (%s)", revision[:min(len(revision), 12)])
	}
	fmt.Printf("\n%s %s/%s\n", runtime.Version(), runtime.GOOS, runtime.GOARCH)
	if tags == "" {
		tags = "(none)"
	}
	fmt.Printf("build tags: %s\n", tags)
	fmt.Printf("cpu gemm: %s\n", cpu.GEMM())
	return nil
}
