package cpu

import "golang.org/x/sys/cpu"

// hasAVX2 selects the assembly elementwise kernels (simd_amd64.s); tests clear it to
// check the Go loops they replace against the same references.
var hasAVX2 = cpu.X86.HasAVX2 && cpu.X86.HasFMA

//go:noescape
func quickGELUAVX2(d, x *float32, n int)

//go:noescape
func quickGELUGradAVX2(dx, x, dy *float32, n int, accumulate int)

//go:noescape
func adamWAVX2(p, grad, m, v *float32, n int, c *adamWConsts)

//go:noescape
func expShiftedAVX2(dst *float64, x *float32, n int, shift float64)
