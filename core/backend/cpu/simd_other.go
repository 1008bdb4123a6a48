//go:build !amd64

package cpu

var hasAVX2 = false

func quickGELUAVX2(d, x *float32, n int) { panic("cpu: no AVX2 off amd64") }

func quickGELUGradAVX2(dx, x, dy *float32, n int, accumulate int) {
	panic("cpu: no AVX2 off amd64")
}

func adamWAVX2(p, grad, m, v *float32, n int, c *adamWConsts) { panic("cpu: no AVX2 off amd64") }

func expShiftedAVX2(dst *float64, x *float32, n int, shift float64) { panic("cpu: no AVX2 off amd64") }
