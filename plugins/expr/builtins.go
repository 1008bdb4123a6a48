package expr

import (
	"fmt"
	"math"
	"strconv"
)

// builtin is one function of the language, all of it in one place: the arity Parse
// checks, the shape rule Infer and Eval apply, and the evaluation Eval performs over
// values of type T. Adding a function is adding an entry to builtins, besides the Ops
// method it calls (the compiler then finds every Ops to extend), its line in doc.go
// and its case in builtinCases (the tests fail until both are there).
type builtin[T any] struct {
	name string
	arity
	// shape applies the function's rule to the shapes of its tensor arguments and the
	// values of its constant ones, whose counts arity has checked.
	shape func(args []Shape, consts []float64) (callResult, error)
	// op names the Ops method that eval calls, in Eval's errors.
	op   string
	eval func(o Ops[T], args []T, r callResult) (T, error)
}

// arity is how many arguments a function takes. Arguments at or after constFrom are
// constant expressions (an axis, dimensions, eps), not tensors.
type arity struct {
	min, max  int
	constFrom int
}

// tensors is the arity of a function of exactly n tensors.
func tensors(n int) arity { return arity{n, n, n} }

const maxRank = 8

// builtins is the table of the language's functions, with evaluation over T. The
// order and everything but eval are the same for every T.
func builtins[T any]() []builtin[T] {
	return []builtin[T]{
		{name: "matmul", arity: tensors(2), shape: matmulShape, op: "MatMul", eval: binary(Ops[T].MatMul)},
		{name: "kron", arity: tensors(2), shape: kronShape(false), op: "Kron", eval: binary(Ops[T].Kron)},
		{name: "kron_sum", arity: tensors(2), shape: kronShape(true), op: "KronSum", eval: binary(Ops[T].KronSum)},
		{name: "outer", arity: tensors(2), shape: outerShape, op: "Outer", eval: binary(Ops[T].Outer)},
		{name: "sum", arity: arity{2, 2, 1}, shape: sumShape, op: "Sum",
			eval: func(o Ops[T], x []T, r callResult) (T, error) { return o.Sum(x[0], r.axis) }},
		{name: "transpose", arity: tensors(1), shape: transposeShape, op: "Transpose", eval: unary(Ops[T].Transpose)},
		{name: "reshape", arity: arity{2, 1 + maxRank, 1}, shape: reshapeShape, op: "Reshape",
			eval: func(o Ops[T], x []T, r callResult) (T, error) { return o.Reshape(x[0], r.dims) }},
		{name: "relu", arity: tensors(1), shape: sameShape, op: "ReLU", eval: unary(Ops[T].ReLU)},
		{name: "gelu", arity: tensors(1), shape: sameShape, op: "GELU", eval: unary(Ops[T].GELU)},
		{name: "quick_gelu", arity: tensors(1), shape: sameShape, op: "QuickGELU", eval: unary(Ops[T].QuickGELU)},
		{name: "silu", arity: tensors(1), shape: sameShape, op: "SiLU", eval: unary(Ops[T].SiLU)},
		{name: "tanh", arity: tensors(1), shape: sameShape, op: "Tanh", eval: unary(Ops[T].Tanh)},
		{name: "sigmoid", arity: tensors(1), shape: sameShape, op: "Sigmoid", eval: unary(Ops[T].Sigmoid)},
		{name: "layer_norm", arity: arity{3, 4, 3}, shape: layerNormShape, op: "LayerNorm",
			eval: func(o Ops[T], x []T, r callResult) (T, error) { return o.LayerNorm(x[0], x[1], x[2], r.eps) }},
		{name: "linear", arity: tensors(3), shape: linearShape, op: "Linear",
			eval: func(o Ops[T], x []T, _ callResult) (T, error) { return o.Linear(x[0], x[1], x[2]) }},
	}
}

func unary[T any](f func(Ops[T], T) (T, error)) func(Ops[T], []T, callResult) (T, error) {
	return func(o Ops[T], x []T, _ callResult) (T, error) { return f(o, x[0]) }
}

func binary[T any](f func(Ops[T], T, T) (T, error)) func(Ops[T], []T, callResult) (T, error) {
	return func(o Ops[T], x []T, _ callResult) (T, error) { return f(o, x[0], x[1]) }
}

// language is the table for what does not depend on a value type: Parse's arities
// and Infer's shape rules.
var language = builtins[struct{}]()

// builtinIndex maps a function's name to its entry in the table (at any T).
var builtinIndex = func() map[string]int {
	m := make(map[string]int, len(language))
	for i, b := range language {
		m[b.name] = i
	}
	return m
}()

// IsBuiltin reports whether name is a function of the language.
func IsBuiltin(name string) bool {
	_, ok := builtinIndex[name]
	return ok
}

// check reports a call of name with n arguments that a does not allow.
func (a arity) check(name string, n, col int) error {
	if n >= a.min && n <= a.max {
		return nil
	}
	want := strconv.Itoa(a.min)
	if a.max != a.min {
		want += " to " + strconv.Itoa(a.max)
	}
	return errorf(col, "%s takes %s arguments, got %d", name, want, n)
}

// lookup returns the table index of n's function. Parse has checked the name and
// argument count of every call it builds; a tree built by hand is checked here.
func lookup(n *Call) (int, error) {
	i, ok := builtinIndex[n.Func]
	if !ok {
		return 0, errorf(n.Column, "unknown function %s", n.Func)
	}
	if err := language[i].check(n.Func, len(n.Args), n.Column); err != nil {
		return 0, err
	}
	return i, nil
}

// callResult is what the shape rule of a call resolves: its shape and its constant
// arguments in the form the Ops method takes.
type callResult struct {
	shape Shape
	axis  int     // sum
	dims  []int   // reshape, with -1 resolved
	eps   float64 // layer_norm
}

// applyShape applies b's shape rule and bounds the result's size, naming b in an
// error at column col.
func (b *builtin[T]) applyShape(args []Shape, consts []float64, col int) (callResult, error) {
	r, err := b.shape(args, consts)
	if err == nil {
		err = checkSize(r.shape)
	}
	if err != nil {
		return r, errorf(col, "%s: %v", b.name, err)
	}
	return r, nil
}

// DefaultEps is layer_norm's epsilon when the expression gives none (CLIP's value).
const DefaultEps = 1e-5

func matmulShape(args []Shape, _ []float64) (callResult, error) {
	var r callResult
	a, b := args[0], args[1]
	if len(a) < 2 || len(a) > 3 || len(b) < 2 || len(b) > 3 {
		return r, fmt.Errorf("operands must be 2-D or 3-D, got %v and %v", a, b)
	}
	if b.hasAny() {
		return r, fmt.Errorf("the right operand %v has the batch dimension *; put the activation on the left", b)
	}
	if a.hasAny() && (len(a) != 2 || a[1] == Any || len(b) != 2) {
		return r, fmt.Errorf("an activation operand must be [*, k] with a 2-D right operand, got %v and %v", a, b)
	}
	if a[len(a)-1] != b[len(b)-2] {
		return r, fmt.Errorf("inner dimensions differ: %v · %v", a, b)
	}
	m, n := a[len(a)-2], b[len(b)-1]
	switch {
	case len(a) == 3 && len(b) == 3:
		if a[0] != b[0] {
			return r, fmt.Errorf("batch dimensions differ: %v · %v", a, b)
		}
		r.shape = Shape{a[0], m, n}
	case len(a) == 3:
		r.shape = Shape{a[0], m, n}
	case len(b) == 3:
		r.shape = Shape{b[0], m, n}
	default:
		r.shape = Shape{m, n}
	}
	return r, nil
}

// kronShape is the rule of kron, or with sum of kron_sum: both pair up stacks, and
// kron also takes two matrices.
func kronShape(sum bool) func([]Shape, []float64) (callResult, error) {
	return func(args []Shape, _ []float64) (callResult, error) {
		var r callResult
		a, b := args[0], args[1]
		if a.hasAny() || b.hasAny() {
			return r, fmt.Errorf("operands %v and %v cannot involve activations", a, b)
		}
		switch {
		case !sum && len(a) == 2 && len(b) == 2:
			r.shape = Shape{a[0] * b[0], a[1] * b[1]}
		case len(a) == 3 && len(b) == 3:
			if a[0] != b[0] {
				return r, fmt.Errorf("stack sizes differ: %v and %v", a, b)
			}
			if a[1] > MaxElements/b[1] || a[2] > MaxElements/b[2] {
				return r, fmt.Errorf("result of %v and %v is too large", a, b)
			}
			if sum {
				r.shape = Shape{a[1] * b[1], a[2] * b[2]}
			} else {
				r.shape = Shape{a[0], a[1] * b[1], a[2] * b[2]}
			}
		case !sum:
			return r, fmt.Errorf("operands must both be 2-D or both 3-D, got %v and %v", a, b)
		default:
			return r, fmt.Errorf("operands must be stacks [n, p, q] and [n, r, s], got %v and %v", a, b)
		}
		return r, nil
	}
}

func outerShape(args []Shape, _ []float64) (callResult, error) {
	var r callResult
	a, b := args[0], args[1]
	if a.hasAny() || b.hasAny() {
		return r, fmt.Errorf("operands %v and %v cannot involve activations", a, b)
	}
	switch {
	case len(a) == 1 && len(b) == 1:
		r.shape = Shape{a[0], b[0]}
	case len(a) == 2 && len(b) == 2 && a[0] == b[0]:
		r.shape = Shape{a[0], a[1], b[1]}
	default:
		return r, fmt.Errorf("operands must be vectors, or stacks [n, p] and [n, q], got %v and %v", a, b)
	}
	return r, nil
}

func sumShape(args []Shape, consts []float64) (callResult, error) {
	var r callResult
	x := args[0]
	ax, err := toInt(consts[0])
	if err != nil {
		return r, fmt.Errorf("axis: %v", err)
	}
	if ax < -len(x) || ax >= len(x) {
		return r, fmt.Errorf("axis %d is out of range for %v", ax, x)
	}
	if ax < 0 {
		ax += len(x)
	}
	if x[ax] == Any {
		return r, fmt.Errorf("cannot sum over the batch dimension of %v", x)
	}
	r.axis = ax
	r.shape = append(append(Shape{}, x[:ax]...), x[ax+1:]...)
	return r, nil
}

func transposeShape(args []Shape, _ []float64) (callResult, error) {
	var r callResult
	x := args[0]
	if len(x) < 2 {
		return r, fmt.Errorf("needs at least 2 axes, got %v", x)
	}
	if x[len(x)-1] == Any || x[len(x)-2] == Any {
		return r, fmt.Errorf("cannot move the batch dimension of %v", x)
	}
	r.shape = append(Shape{}, x...)
	r.shape[len(x)-1], r.shape[len(x)-2] = x[len(x)-2], x[len(x)-1]
	return r, nil
}

func reshapeShape(args []Shape, consts []float64) (callResult, error) {
	var r callResult
	x := args[0]
	if x.hasAny() {
		return r, fmt.Errorf("cannot reshape %v: it has the batch dimension *", x)
	}
	size := 1
	for _, d := range x {
		size *= d
	}
	dims := make([]int, len(consts))
	free, known := -1, 1
	for i, c := range consts {
		d, err := toInt(c)
		if err != nil {
			return r, fmt.Errorf("dimension %d: %v", i+1, err)
		}
		switch {
		case d == -1 && free < 0:
			free = i
		case d == -1:
			return r, fmt.Errorf("more than one dimension is -1")
		case d <= 0:
			return r, fmt.Errorf("dimension %d is %d; dimensions must be positive or -1", i+1, d)
		case known > MaxElements/d:
			return r, fmt.Errorf("dimensions are too large")
		default:
			known *= d
		}
		dims[i] = d
	}
	if free >= 0 {
		if size%known != 0 {
			return r, fmt.Errorf("cannot reshape %v (%d elements) to %v", x, size, dims)
		}
		dims[free] = size / known
	} else if known != size {
		return r, fmt.Errorf("cannot reshape %v (%d elements) to %v (%d elements)", x, size, dims, known)
	}
	r.dims = dims
	r.shape = Shape(dims)
	return r, nil
}

// sameShape is the rule of elementwise functions.
func sameShape(args []Shape, _ []float64) (callResult, error) {
	return callResult{shape: args[0]}, nil
}

func layerNormShape(args []Shape, consts []float64) (callResult, error) {
	var r callResult
	x, g, b := args[0], args[1], args[2]
	if len(x) == 0 || x[len(x)-1] == Any {
		return r, fmt.Errorf("input %v needs a known last axis", x)
	}
	d := x[len(x)-1]
	if !g.Equal(Shape{d}) || !b.Equal(Shape{d}) {
		return r, fmt.Errorf("gamma %v and beta %v must both be [%d] for input %v", g, b, d, x)
	}
	r.eps = DefaultEps
	if len(consts) > 0 {
		r.eps = consts[0]
		if !(r.eps > 0) || math.IsInf(r.eps, 0) {
			return r, fmt.Errorf("eps must be positive and finite, got %g", r.eps)
		}
	}
	r.shape = x
	return r, nil
}

func linearShape(args []Shape, _ []float64) (callResult, error) {
	var r callResult
	x, w, b := args[0], args[1], args[2]
	if len(w) != 2 || w.hasAny() {
		return r, fmt.Errorf("weight must be a matrix [out, in], got %v", w)
	}
	if len(x) == 0 || x[len(x)-1] != w[1] {
		return r, fmt.Errorf("input %v does not end in the weight's in dimension %d", x, w[1])
	}
	if !b.Equal(Shape{w[0]}) {
		return r, fmt.Errorf("bias %v must be [%d] for weight %v", b, w[0], w)
	}
	r.shape = append(append(Shape{}, x[:len(x)-1]...), w[0])
	return r, nil
}

func toInt(v float64) (int, error) {
	if v != math.Trunc(v) || math.Abs(v) > 1<<31 {
		return 0, fmt.Errorf("%g is not an integer", v)
	}
	return int(v), nil
}
