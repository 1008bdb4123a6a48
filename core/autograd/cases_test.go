package autograd_test

import (
	"github.com/kadapt/kadapt/core"
	"github.com/kadapt/kadapt/core/autograd"
)

// Input kinds of a test case.
const (
	trainable = iota // a parameter, values in (-1, 1)
	positive         // a parameter, values in (0.5, 2): for log, sqrt, divisors
	frozen           // a frozen parameter: must get no gradient
	constant         // a Const: no gradient
)

type input struct {
	shape []int
	kind  int
}

func in(kind int, shape ...int) input { return input{shape: shape, kind: kind} }
func p(shape ...int) input            { return in(trainable, shape...) }

// opCase is one op on one set of shapes. f builds the op's output on a tape from the
// inputs; want, when set, is an independent float64 host computation of the forward
// value from the inputs' data (for ops this package composes itself).
type opCase struct {
	name   string
	inputs []input
	train  bool
	f      func(tp *autograd.Tape, x []*autograd.Var) *autograd.Var
	want   func(x [][]float64) []float64
}

func unaryCase(name string, op core.UnaryOp, kind int, shape ...int) opCase {
	return opCase{name: name, inputs: []input{in(kind, shape...)},
		f: func(tp *autograd.Tape, x []*autograd.Var) *autograd.Var { return tp.Unary(op, x[0]) }}
}

// idx uploads index values on the tape's backend.
func idx(tp *autograd.Tape, v ...float32) *core.Tensor { return tp.Input(v, len(v)).Value }

var opCases = []opCase{
	// Matrix products, every transpose combination and batch layout.
	{name: "matmul/2d", inputs: []input{p(3, 4), p(4, 5)},
		f:    func(tp *autograd.Tape, x []*autograd.Var) *autograd.Var { return tp.MatMul(x[0], x[1], false, false) },
		want: func(x [][]float64) []float64 { return hostMatMul(x[0], x[1], 1, 3, 4, 5, false, false, true, true) }},
	{name: "matmul/transA", inputs: []input{p(4, 3), p(4, 5)},
		f:    func(tp *autograd.Tape, x []*autograd.Var) *autograd.Var { return tp.MatMul(x[0], x[1], true, false) },
		want: func(x [][]float64) []float64 { return hostMatMul(x[0], x[1], 1, 3, 4, 5, true, false, true, true) }},
	{name: "matmul/transB", inputs: []input{p(3, 4), p(5, 4)},
		f:    func(tp *autograd.Tape, x []*autograd.Var) *autograd.Var { return tp.MatMul(x[0], x[1], false, true) },
		want: func(x [][]float64) []float64 { return hostMatMul(x[0], x[1], 1, 3, 4, 5, false, true, true, true) }},
	{name: "matmul/transAB", inputs: []input{p(4, 3), p(5, 4)},
		f:    func(tp *autograd.Tape, x []*autograd.Var) *autograd.Var { return tp.MatMul(x[0], x[1], true, true) },
		want: func(x [][]float64) []float64 { return hostMatMul(x[0], x[1], 1, 3, 4, 5, true, true, true, true) }},
	{name: "matmul/batched", inputs: []input{p(2, 3, 4), p(2, 4, 5)},
		f:    func(tp *autograd.Tape, x []*autograd.Var) *autograd.Var { return tp.MatMul(x[0], x[1], false, false) },
		want: func(x [][]float64) []float64 { return hostMatMul(x[0], x[1], 2, 3, 4, 5, false, false, false, false) }},
	{name: "matmul/shared-b", inputs: []input{p(2, 3, 4), p(4, 5)},
		f:    func(tp *autograd.Tape, x []*autograd.Var) *autograd.Var { return tp.MatMul(x[0], x[1], false, false) },
		want: func(x [][]float64) []float64 { return hostMatMul(x[0], x[1], 2, 3, 4, 5, false, false, false, true) }},
	{name: "matmul/shared-b-transB", inputs: []input{p(2, 3, 4), p(5, 4)},
		f:    func(tp *autograd.Tape, x []*autograd.Var) *autograd.Var { return tp.MatMul(x[0], x[1], false, true) },
		want: func(x [][]float64) []float64 { return hostMatMul(x[0], x[1], 2, 3, 4, 5, false, true, false, true) }},
	{name: "matmul/shared-b-transA", inputs: []input{p(2, 4, 3), p(4, 5)},
		f:    func(tp *autograd.Tape, x []*autograd.Var) *autograd.Var { return tp.MatMul(x[0], x[1], true, false) },
		want: func(x [][]float64) []float64 { return hostMatMul(x[0], x[1], 2, 3, 4, 5, true, false, false, true) }},
	{name: "matmul/shared-a", inputs: []input{p(3, 4), p(2, 4, 5)},
		f:    func(tp *autograd.Tape, x []*autograd.Var) *autograd.Var { return tp.MatMul(x[0], x[1], false, false) },
		want: func(x [][]float64) []float64 { return hostMatMul(x[0], x[1], 2, 3, 4, 5, false, false, true, false) }},
	{name: "matmul/shared-a-transAB", inputs: []input{p(4, 3), p(2, 5, 4)},
		f:    func(tp *autograd.Tape, x []*autograd.Var) *autograd.Var { return tp.MatMul(x[0], x[1], true, true) },
		want: func(x [][]float64) []float64 { return hostMatMul(x[0], x[1], 2, 3, 4, 5, true, true, true, false) }},
	{name: "matmul/two-batch-axes-size1", inputs: []input{p(2, 1, 1, 3), p(3, 1)},
		f: func(tp *autograd.Tape, x []*autograd.Var) *autograd.Var { return tp.MatMul(x[0], x[1], false, false) }},
	{name: "matmul/frozen-b", inputs: []input{p(2, 3, 4), in(frozen, 4, 5)},
		f: func(tp *autograd.Tape, x []*autograd.Var) *autograd.Var { return tp.MatMul(x[0], x[1], false, false) }},

	{name: "linear/bias", inputs: []input{p(2, 3, 5), p(4, 5), p(4)},
		f:    func(tp *autograd.Tape, x []*autograd.Var) *autograd.Var { return tp.Linear(x[0], x[1], x[2]) },
		want: func(x [][]float64) []float64 { return hostLinear(x[0], x[1], x[2], 6, 5, 4) }},
	{name: "linear/vector-nobias", inputs: []input{p(5), p(3, 5)},
		f:    func(tp *autograd.Tape, x []*autograd.Var) *autograd.Var { return tp.Linear(x[0], x[1], nil) },
		want: func(x [][]float64) []float64 { return hostLinear(x[0], x[1], nil, 1, 5, 3) }},
	{name: "linear/frozen-weight", inputs: []input{p(3, 5), in(frozen, 4, 5), p(4)},
		f: func(tp *autograd.Tape, x []*autograd.Var) *autograd.Var { return tp.Linear(x[0], x[1], x[2]) }},
	{name: "linear/frozen-weight-and-bias", inputs: []input{p(1, 5), in(frozen, 4, 5), in(frozen, 4)},
		f: func(tp *autograd.Tape, x []*autograd.Var) *autograd.Var { return tp.Linear(x[0], x[1], x[2]) }},
	{name: "linear/frozen-input", inputs: []input{in(constant, 3, 5), p(4, 5), p(4)},
		f: func(tp *autograd.Tape, x []*autograd.Var) *autograd.Var { return tp.Linear(x[0], x[1], x[2]) }},

	// Broadcasting arithmetic.
	{name: "add/same", inputs: []input{p(3, 4), p(3, 4)},
		f: func(tp *autograd.Tape, x []*autograd.Var) *autograd.Var { return tp.Add(x[0], x[1]) }},
	{name: "add/broadcast-row", inputs: []input{p(2, 3, 4), p(4)},
		f: func(tp *autograd.Tape, x []*autograd.Var) *autograd.Var { return tp.Add(x[0], x[1]) }},
	{name: "add/broadcast-both", inputs: []input{p(2, 1, 4), p(3, 1)},
		f: func(tp *autograd.Tape, x []*autograd.Var) *autograd.Var { return tp.Add(x[0], x[1]) }},
	{name: "add/same-var", inputs: []input{p(3, 2)},
		f: func(tp *autograd.Tape, x []*autograd.Var) *autograd.Var { return tp.Add(x[0], x[0]) }},
	{name: "add/scalars", inputs: []input{p(2, 3)},
		f: func(tp *autograd.Tape, x []*autograd.Var) *autograd.Var {
			return tp.Mul(tp.Sum(x[0], nil, false), tp.Mean(tp.Square(x[0]), nil, false))
		}},
	{name: "sub/broadcast", inputs: []input{p(1), p(2, 3)},
		f: func(tp *autograd.Tape, x []*autograd.Var) *autograd.Var { return tp.Sub(x[0], x[1]) }},
	{name: "sub/same", inputs: []input{p(5), p(5)},
		f: func(tp *autograd.Tape, x []*autograd.Var) *autograd.Var { return tp.Sub(x[0], x[1]) }},
	{name: "mul/broadcast", inputs: []input{p(2, 3, 1), p(1, 5)},
		f: func(tp *autograd.Tape, x []*autograd.Var) *autograd.Var { return tp.Mul(x[0], x[1]) }},
	{name: "mul/same-var", inputs: []input{p(7)},
		f: func(tp *autograd.Tape, x []*autograd.Var) *autograd.Var { return tp.Mul(x[0], x[0]) }},
	{name: "mul/const", inputs: []input{p(3, 3), in(constant, 3)},
		f: func(tp *autograd.Tape, x []*autograd.Var) *autograd.Var { return tp.Mul(x[0], x[1]) }},
	{name: "div/broadcast", inputs: []input{p(2, 3), in(positive, 3)},
		f: func(tp *autograd.Tape, x []*autograd.Var) *autograd.Var { return tp.Div(x[0], x[1]) }},
	{name: "div/broadcast-numerator", inputs: []input{p(1, 3), in(positive, 2, 3)},
		f: func(tp *autograd.Tape, x []*autograd.Var) *autograd.Var { return tp.Div(x[0], x[1]) }},
	{name: "maximum/broadcast", inputs: []input{p(3, 4), p(4)},
		f: func(tp *autograd.Tape, x []*autograd.Var) *autograd.Var { return tp.Maximum(x[0], x[1]) }},
	{name: "scale", inputs: []input{p(2, 5)},
		f: func(tp *autograd.Tape, x []*autograd.Var) *autograd.Var { return tp.Scale(x[0], -1.75) },
		want: func(x [][]float64) []float64 {
			return mapHost(x[0], func(v float64) float64 { return -1.75 * v })
		}},
	{name: "add_scalar", inputs: []input{p(3, 1, 2)},
		f: func(tp *autograd.Tape, x []*autograd.Var) *autograd.Var { return tp.AddScalar(x[0], 0.5) },
		want: func(x [][]float64) []float64 {
			return mapHost(x[0], func(v float64) float64 { return v + 0.5 })
		}},

	// Elementwise functions.
	unaryCase("relu", core.ReLU, trainable, 3, 5),
	unaryCase("gelu", core.GELU, trainable, 3, 5),
	unaryCase("quick_gelu", core.QuickGELU, trainable, 2, 7),
	unaryCase("silu", core.SiLU, trainable, 11),
	unaryCase("sigmoid", core.Sigmoid, trainable, 2, 1, 3),
	unaryCase("tanh", core.Tanh, trainable, 4, 3),
	unaryCase("exp", core.Exp, trainable, 5),
	unaryCase("log", core.Log, positive, 2, 3),
	unaryCase("sqrt", core.Sqrt, positive, 3, 2),
	unaryCase("square", core.Square, trainable, 9),
	unaryCase("neg", core.Neg, trainable, 4),
	unaryCase("rsqrt", core.Rsqrt, positive, 4),
	unaryCase("abs", core.Abs, trainable, 6),
	{name: "named-wrappers", inputs: []input{p(2, 3), in(positive, 2, 3)},
		f: func(tp *autograd.Tape, x []*autograd.Var) *autograd.Var {
			a := tp.Add(tp.ReLU(x[0]), tp.GELU(x[0]))
			a = tp.Add(a, tp.QuickGELU(x[0]))
			a = tp.Add(a, tp.SiLU(x[0]))
			a = tp.Add(a, tp.Sigmoid(x[0]))
			a = tp.Add(a, tp.Tanh(x[0]))
			a = tp.Add(a, tp.Exp(x[0]))
			a = tp.Add(a, tp.Square(x[0]))
			a = tp.Add(a, tp.Log(x[1]))
			return tp.Add(a, tp.Sqrt(x[1]))
		}},

	// Reductions: every axis layout (contiguous inner, leading, trailing, split, all).
	{name: "sum/all", inputs: []input{p(2, 3, 4)},
		f:    func(tp *autograd.Tape, x []*autograd.Var) *autograd.Var { return tp.Sum(x[0], nil, false) },
		want: func(x [][]float64) []float64 { return hostReduce(x[0], []int{2, 3, 4}, []int{0, 1, 2}, false) }},
	{name: "sum/all-keep", inputs: []input{p(3, 5)},
		f:    func(tp *autograd.Tape, x []*autograd.Var) *autograd.Var { return tp.Sum(x[0], nil, true) },
		want: func(x [][]float64) []float64 { return hostReduce(x[0], []int{3, 5}, []int{0, 1}, false) }},
	{name: "sum/leading", inputs: []input{p(3, 4)},
		f:    func(tp *autograd.Tape, x []*autograd.Var) *autograd.Var { return tp.Sum(x[0], []int{0}, false) },
		want: func(x [][]float64) []float64 { return hostReduce(x[0], []int{3, 4}, []int{0}, false) }},
	{name: "sum/trailing-neg", inputs: []input{p(3, 4)},
		f:    func(tp *autograd.Tape, x []*autograd.Var) *autograd.Var { return tp.Sum(x[0], []int{-1}, true) },
		want: func(x [][]float64) []float64 { return hostReduce(x[0], []int{3, 4}, []int{1}, false) }},
	{name: "sum/middle-block", inputs: []input{p(2, 3, 1, 2, 3)},
		f:    func(tp *autograd.Tape, x []*autograd.Var) *autograd.Var { return tp.Sum(x[0], []int{1, 3}, false) },
		want: func(x [][]float64) []float64 { return hostReduce(x[0], []int{2, 3, 1, 2, 3}, []int{1, 3}, false) }},
	{name: "sum/split-axes", inputs: []input{p(2, 3, 4)},
		f:    func(tp *autograd.Tape, x []*autograd.Var) *autograd.Var { return tp.Sum(x[0], []int{0, 2}, true) },
		want: func(x [][]float64) []float64 { return hostReduce(x[0], []int{2, 3, 4}, []int{0, 2}, false) }},
	{name: "sum/all-accumulate", inputs: []input{p(2, 3)},
		f: func(tp *autograd.Tape, x []*autograd.Var) *autograd.Var { return tp.Add(tp.Sum(x[0], nil, true), x[0]) }},
	{name: "mean/leading-accumulate", inputs: []input{p(3, 4)},
		f: func(tp *autograd.Tape, x []*autograd.Var) *autograd.Var {
			return tp.Mul(tp.Mean(x[0], []int{0}, true), x[0])
		}},
	{name: "sum/size1-axis", inputs: []input{p(3, 1)},
		f: func(tp *autograd.Tape, x []*autograd.Var) *autograd.Var { return tp.Sum(x[0], []int{1}, false) }},
	{name: "mean/middle", inputs: []input{p(2, 5, 3)},
		f:    func(tp *autograd.Tape, x []*autograd.Var) *autograd.Var { return tp.Mean(x[0], []int{1}, false) },
		want: func(x [][]float64) []float64 { return hostReduce(x[0], []int{2, 5, 3}, []int{1}, true) }},
	{name: "mean/all", inputs: []input{p(7, 3)},
		f:    func(tp *autograd.Tape, x []*autograd.Var) *autograd.Var { return tp.Mean(x[0], nil, false) },
		want: func(x [][]float64) []float64 { return hostReduce(x[0], []int{7, 3}, []int{0, 1}, true) }},
	{name: "mean/split-axes", inputs: []input{p(3, 2, 3)},
		f:    func(tp *autograd.Tape, x []*autograd.Var) *autograd.Var { return tp.Mean(x[0], []int{2, 0}, true) },
		want: func(x [][]float64) []float64 { return hostReduce(x[0], []int{3, 2, 3}, []int{0, 2}, true) }},
	{name: "max/last", inputs: []input{p(4, 5)},
		f: func(tp *autograd.Tape, x []*autograd.Var) *autograd.Var { return tp.Max(x[0], []int{1}, false) }},
	{name: "max/split-axes", inputs: []input{p(3, 2, 3)},
		f: func(tp *autograd.Tape, x []*autograd.Var) *autograd.Var { return tp.Max(x[0], []int{0, 2}, true) }},
	{name: "max/all", inputs: []input{p(2, 3)},
		f: func(tp *autograd.Tape, x []*autograd.Var) *autograd.Var { return tp.Max(x[0], nil, false) }},

	// Layout ops.
	{name: "reshape/infer", inputs: []input{p(2, 3, 4)},
		f: func(tp *autograd.Tape, x []*autograd.Var) *autograd.Var {
			return tp.Square(tp.Reshape(x[0], 4, -1))
		}},
	{name: "reshape/param-view-twice", inputs: []input{p(6)},
		f: func(tp *autograd.Tape, x []*autograd.Var) *autograd.Var {
			a := tp.Reshape(x[0], 2, 3)
			return tp.Mul(a, tp.Reshape(tp.Reshape(x[0], 3, 2), 2, 3))
		}},
	{name: "permute", inputs: []input{p(2, 3, 4)},
		f:    func(tp *autograd.Tape, x []*autograd.Var) *autograd.Var { return tp.Permute(x[0], 2, 0, 1) },
		want: func(x [][]float64) []float64 { return hostPermute(x[0], []int{2, 3, 4}, []int{2, 0, 1}) }},
	{name: "permute/accumulate", inputs: []input{p(3, 3)},
		f: func(tp *autograd.Tape, x []*autograd.Var) *autograd.Var {
			return tp.Mul(tp.Permute(x[0], 1, 0), x[0])
		}},
	{name: "transpose", inputs: []input{p(2, 1, 3)},
		f:    func(tp *autograd.Tape, x []*autograd.Var) *autograd.Var { return tp.Transpose(x[0], 0, -1) },
		want: func(x [][]float64) []float64 { return hostPermute(x[0], []int{2, 1, 3}, []int{2, 1, 0}) }},
	{name: "concat/middle", inputs: []input{p(2, 1, 3), p(2, 3, 3), in(constant, 2, 2, 3)},
		f: func(tp *autograd.Tape, x []*autograd.Var) *autograd.Var { return tp.Concat(1, x[0], x[1], x[2]) },
		want: func(x [][]float64) []float64 {
			return hostConcat1([][]float64{x[0], x[1], x[2]}, 2, []int{1, 3, 2}, 3)
		}},
	{name: "concat/repeated", inputs: []input{p(2, 2)},
		f: func(tp *autograd.Tape, x []*autograd.Var) *autograd.Var { return tp.Concat(-1, x[0], x[0]) }},
	{name: "slice", inputs: []input{p(3, 5, 2)},
		f: func(tp *autograd.Tape, x []*autograd.Var) *autograd.Var { return tp.Slice(x[0], 1, 1, 4) },
		want: func(x [][]float64) []float64 {
			var out []float64
			for i := range 3 {
				out = append(out, x[0][i*10+2:i*10+8]...)
			}
			return out
		}},
	{name: "index_select/repeated", inputs: []input{p(4, 3)},
		f: func(tp *autograd.Tape, x []*autograd.Var) *autograd.Var {
			return tp.IndexSelect(x[0], 0, idx(tp, 2, 0, 2, 3, 2))
		},
		want: func(x [][]float64) []float64 {
			var out []float64
			for _, r := range []int{2, 0, 2, 3, 2} {
				out = append(out, x[0][r*3:r*3+3]...)
			}
			return out
		}},
	{name: "index_select/last-axis", inputs: []input{p(2, 3, 4)},
		f: func(tp *autograd.Tape, x []*autograd.Var) *autograd.Var {
			return tp.IndexSelect(x[0], -1, idx(tp, 3, 1))
		}},

	// Normalisation and probabilities.
	{name: "layer_norm/affine", inputs: []input{p(2, 3, 7), p(7), p(7)},
		f: func(tp *autograd.Tape, x []*autograd.Var) *autograd.Var { return tp.LayerNorm(x[0], x[1], x[2], 1e-5) }},
	{name: "layer_norm/plain", inputs: []input{p(5, 4)},
		f: func(tp *autograd.Tape, x []*autograd.Var) *autograd.Var { return tp.LayerNorm(x[0], nil, nil, 1e-5) }},
	{name: "layer_norm/frozen-input", inputs: []input{in(constant, 3, 5), p(5), in(frozen, 5)},
		f: func(tp *autograd.Tape, x []*autograd.Var) *autograd.Var { return tp.LayerNorm(x[0], x[1], x[2], 1e-6) }},
	{name: "softmax", inputs: []input{p(2, 3, 5)},
		f: func(tp *autograd.Tape, x []*autograd.Var) *autograd.Var { return tp.Softmax(x[0]) }},
	{name: "softmax/size1", inputs: []input{p(3, 1)},
		f: func(tp *autograd.Tape, x []*autograd.Var) *autograd.Var { return tp.Softmax(x[0]) }},
	{name: "log_softmax", inputs: []input{p(4, 3)},
		f: func(tp *autograd.Tape, x []*autograd.Var) *autograd.Var { return tp.LogSoftmax(x[0]) }},
	{name: "cross_entropy", inputs: []input{p(4, 5)},
		f: func(tp *autograd.Tape, x []*autograd.Var) *autograd.Var {
			return tp.CrossEntropy(x[0], idx(tp, 1, 4, 0, 1), 0)
		},
		want: func(x [][]float64) []float64 { return []float64{hostCrossEntropy(x[0], []int{1, 4, 0, 1}, 5, 0)} }},
	{name: "cross_entropy/smoothing", inputs: []input{p(3, 7)},
		f: func(tp *autograd.Tape, x []*autograd.Var) *autograd.Var {
			return tp.CrossEntropy(x[0], idx(tp, 6, 0, 3), 0.1)
		},
		want: func(x [][]float64) []float64 { return []float64{hostCrossEntropy(x[0], []int{6, 0, 3}, 7, 0.1)} }},
	{name: "cross_entropy/accumulate", inputs: []input{p(2, 3)},
		f: func(tp *autograd.Tape, x []*autograd.Var) *autograd.Var {
			return tp.Add(tp.Scale(x[0], 0.5), tp.CrossEntropy(x[0], idx(tp, 2, 0), 0))
		}},
	{name: "bce_with_logits", inputs: []input{p(3, 4)},
		f: func(tp *autograd.Tape, x []*autograd.Var) *autograd.Var {
			t := tp.Input([]float32{0, 1, 0.25, 1, 0, 0.5, 1, 1, 0, 0, 0.75, 1}, 3, 4).Value
			return tp.BCEWithLogits(x[0], t)
		}},
	{name: "bce_with_logits/vector", inputs: []input{p(3)},
		f: func(tp *autograd.Tape, x []*autograd.Var) *autograd.Var {
			return tp.BCEWithLogits(x[0], tp.Input([]float32{1, 0, 1}, 3).Value)
		}},
	{name: "dropout/train", inputs: []input{p(4, 6)}, train: true,
		f: func(tp *autograd.Tape, x []*autograd.Var) *autograd.Var { return tp.Dropout(x[0], 0.3) }},
	{name: "dropout/two-calls", inputs: []input{p(5, 2)}, train: true,
		f: func(tp *autograd.Tape, x []*autograd.Var) *autograd.Var {
			return tp.Add(tp.Dropout(x[0], 0.5), tp.Dropout(x[0], 0.5))
		}},
	{name: "dropout/eval", inputs: []input{p(3, 2)},
		f:    func(tp *autograd.Tape, x []*autograd.Var) *autograd.Var { return tp.Dropout(x[0], 0.3) },
		want: func(x [][]float64) []float64 { return x[0] }},

	// Structured products.
	{name: "outer", inputs: []input{p(3), p(4)},
		f: func(tp *autograd.Tape, x []*autograd.Var) *autograd.Var { return tp.Outer(x[0], x[1]) },
		want: func(x [][]float64) []float64 {
			return hostKronSum(x[0], x[1], 1, 3, 1, 1, 4)
		}},
	{name: "kron/odd", inputs: []input{p(2, 3), p(3, 1)},
		f:    func(tp *autograd.Tape, x []*autograd.Var) *autograd.Var { return tp.Kron(x[0], x[1]) },
		want: func(x [][]float64) []float64 { return hostKronSum(x[0], x[1], 1, 2, 3, 3, 1) }},
	{name: "kron/square", inputs: []input{p(3, 3), p(2, 2)},
		f:    func(tp *autograd.Tape, x []*autograd.Var) *autograd.Var { return tp.Kron(x[0], x[1]) },
		want: func(x [][]float64) []float64 { return hostKronSum(x[0], x[1], 1, 3, 3, 2, 2) }},
	{name: "kron_sum/odd", inputs: []input{p(3, 2, 3), p(3, 3, 2)},
		f:    func(tp *autograd.Tape, x []*autograd.Var) *autograd.Var { return tp.KronSum(x[0], x[1]) },
		want: func(x [][]float64) []float64 { return hostKronSum(x[0], x[1], 3, 2, 3, 3, 2) }},
	{name: "kron_sum/rank1-factors", inputs: []input{p(2, 3, 1), p(2, 1, 3), p(2, 2, 1), p(2, 1, 2)},
		f: func(tp *autograd.Tape, x []*autograd.Var) *autograd.Var {
			// KAdaptation's shape: slow and fast weights are rank-1 products.
			return tp.KronSum(tp.MatMul(x[0], x[1], false, false), tp.MatMul(x[2], x[3], false, false))
		}},
	{name: "kron_sum/frozen-slow", inputs: []input{in(frozen, 2, 2, 2), p(2, 3, 2)},
		f: func(tp *autograd.Tape, x []*autograd.Var) *autograd.Var { return tp.KronSum(x[0], x[1]) }},

	// Vision-transformer blocks.
	{name: "patch_embed/bias", inputs: []input{p(2, 3, 4, 6), p(5, 3, 2, 2), p(5)},
		f: func(tp *autograd.Tape, x []*autograd.Var) *autograd.Var { return tp.PatchEmbed(x[0], x[1], x[2], 2) },
		want: func(x [][]float64) []float64 {
			return hostPatchEmbed(x[0], x[1], x[2], 2, 3, 4, 6, 5, 2)
		}},
	{name: "patch_embed/frozen-image", inputs: []input{in(constant, 1, 2, 3, 3), p(2, 2, 3, 3)},
		f: func(tp *autograd.Tape, x []*autograd.Var) *autograd.Var { return tp.PatchEmbed(x[0], x[1], nil, 3) },
		want: func(x [][]float64) []float64 {
			return hostPatchEmbed(x[0], x[1], nil, 1, 2, 3, 3, 2, 3)
		}},
	{name: "attention", inputs: []input{p(2, 2, 3, 4), p(2, 2, 3, 4), p(2, 2, 3, 4)},
		f: func(tp *autograd.Tape, x []*autograd.Var) *autograd.Var {
			return tp.Attention(x[0], x[1], x[2], false, 0.5)
		},
		want: func(x [][]float64) []float64 { return hostAttention(x[0], x[1], x[2], 4, 3, 3, 4, 4, false, 0.5) }},
	{name: "attention/causal", inputs: []input{p(1, 2, 4, 3), p(1, 2, 4, 3), p(1, 2, 4, 2)},
		f: func(tp *autograd.Tape, x []*autograd.Var) *autograd.Var {
			return tp.Attention(x[0], x[1], x[2], true, 0.7)
		},
		want: func(x [][]float64) []float64 { return hostAttention(x[0], x[1], x[2], 2, 4, 4, 3, 2, true, 0.7) }},
	{name: "attention/cross-length", inputs: []input{p(1, 1, 2, 3), p(1, 1, 5, 3), p(1, 1, 5, 4)},
		f: func(tp *autograd.Tape, x []*autograd.Var) *autograd.Var {
			return tp.Attention(x[0], x[1], x[2], false, 1)
		},
		want: func(x [][]float64) []float64 { return hostAttention(x[0], x[1], x[2], 1, 2, 5, 3, 4, false, 1) }},
	{name: "attention/frozen-kv", inputs: []input{p(1, 2, 3, 2), in(frozen, 1, 2, 3, 2), in(constant, 1, 2, 3, 2)},
		f: func(tp *autograd.Tape, x []*autograd.Var) *autograd.Var {
			return tp.Attention(x[0], x[1], x[2], true, 1)
		}},
	{name: "attention/only-v", inputs: []input{in(constant, 1, 1, 3, 2), in(constant, 1, 1, 3, 2), p(1, 1, 3, 2)},
		f: func(tp *autograd.Tape, x []*autograd.Var) *autograd.Var {
			return tp.Attention(x[0], x[1], x[2], false, 1)
		}},

	{name: "multi_head_attention", inputs: []input{p(2, 3, 4), p(2, 3, 4), p(2, 3, 4)},
		f: func(tp *autograd.Tape, x []*autograd.Var) *autograd.Var {
			return tp.MultiHeadAttention(x[0], x[1], x[2], 2, false, 0.6)
		},
		want: func(x [][]float64) []float64 { return hostMultiHead(x[0], x[1], x[2], 2, 3, 2, 2, false, 0.6) }},
	{name: "multi_head_attention/causal-frozen-k", inputs: []input{p(1, 4, 6), in(frozen, 1, 4, 6), p(1, 4, 6)},
		f: func(tp *autograd.Tape, x []*autograd.Var) *autograd.Var {
			return tp.MultiHeadAttention(x[0], x[1], x[2], 3, true, 0.9)
		},
		want: func(x [][]float64) []float64 { return hostMultiHead(x[0], x[1], x[2], 1, 4, 3, 2, true, 0.9) }},

	{name: "linear_act", inputs: []input{p(2, 3, 4), p(5, 4), p(5)},
		f: func(tp *autograd.Tape, x []*autograd.Var) *autograd.Var {
			return tp.LinearAct(x[0], x[1], x[2], core.GELU)
		}},
	{name: "add_layer_norm", inputs: []input{p(3, 6), p(3, 6), p(6), p(6)},
		f: func(tp *autograd.Tape, x []*autograd.Var) *autograd.Var {
			sum, normed := tp.AddLayerNorm(x[0], x[1], x[2], x[3], 1e-5)
			return tp.Add(tp.Scale(sum, 0.5), normed)
		}},

	// Batch norm, both modes, with and without affine.
	{name: "batch_norm/train-affine", inputs: []input{p(5, 3), p(3), p(3)}, train: true,
		f: func(tp *autograd.Tape, x []*autograd.Var) *autograd.Var { return batchNorm(tp, x, 3, true) },
		want: func(x [][]float64) []float64 {
			return hostBatchNorm(x[0], x[1], x[2], 5, 3, true, nil, nil)
		}},
	{name: "batch_norm/train-plain", inputs: []input{p(2, 4)}, train: true,
		f: func(tp *autograd.Tape, x []*autograd.Var) *autograd.Var { return batchNorm(tp, x, 4, false) },
		want: func(x [][]float64) []float64 {
			return hostBatchNorm(x[0], nil, nil, 2, 4, true, nil, nil)
		}},
	{name: "batch_norm/eval-affine", inputs: []input{p(3, 3), p(3), p(3)},
		f: func(tp *autograd.Tape, x []*autograd.Var) *autograd.Var { return batchNorm(tp, x, 3, true) },
		want: func(x [][]float64) []float64 {
			return hostBatchNorm(x[0], x[1], x[2], 3, 3, false, bnMean[:3], bnVar[:3])
		}},
	{name: "batch_norm/eval-plain", inputs: []input{p(1, 4)},
		f: func(tp *autograd.Tape, x []*autograd.Var) *autograd.Var { return batchNorm(tp, x, 4, false) },
		want: func(x [][]float64) []float64 {
			return hostBatchNorm(x[0], nil, nil, 1, 4, false, bnMean[:4], bnVar[:4])
		}},
}

// Running statistics the batch-norm cases start from.
var (
	bnMean = []float32{0.3, -0.2, 0.1, 0.05}
	bnVar  = []float32{0.5, 1.5, 0.8, 2}
)

func batchNorm(tp *autograd.Tape, x []*autograd.Var, f int, affine bool) *autograd.Var {
	bn := &autograd.BatchNorm{
		RunningMean: tp.Input(bnMean[:f], f).Value,
		RunningVar:  tp.Input(bnVar[:f], f).Value,
		Momentum:    0.1,
		Eps:         1e-5,
	}
	if affine {
		bn.Gamma, bn.Beta = x[1], x[2]
	}
	return bn.Forward(tp, x[0])
}
