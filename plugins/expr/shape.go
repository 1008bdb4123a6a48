package expr

import (
	"fmt"
	"maps"
	"math"
	"slices"
	"strconv"
	"strings"
)

// Any is the dimension of unknown size in an inferred shape: the rows of a site's
// activations x or h, whose count (and, on the host, number of leading axes) is only
// known at run time. The shape rules never move, merge or sum away such a dimension.
const Any = -1

// MaxElements bounds the element count of any shape an expression may produce, so
// that an untrusted expression cannot make its evaluator allocate without limit.
const MaxElements = 1 << 31

// Shape is a list of dimensions, outermost first; a scalar has rank 0.
type Shape []int

func (s Shape) String() string {
	parts := make([]string, len(s))
	for i, d := range s {
		if d == Any {
			parts[i] = "*"
		} else {
			parts[i] = strconv.Itoa(d)
		}
	}
	return "[" + strings.Join(parts, ", ") + "]"
}

// Equal reports whether s and t have the same dimensions.
func (s Shape) Equal(t Shape) bool {
	if len(s) != len(t) {
		return false
	}
	for i := range s {
		if s[i] != t[i] {
			return false
		}
	}
	return true
}

func (s Shape) hasAny() bool {
	for _, d := range s {
		if d == Any {
			return true
		}
	}
	return false
}

// checkSize rejects shapes whose element count (Any counting as one) exceeds
// MaxElements, and ranks beyond what reshape can produce.
func checkSize(s Shape) error {
	if len(s) > maxRank {
		return fmt.Errorf("shape %v has rank %d, more than %d", s, len(s), maxRank)
	}
	n := 1
	for _, d := range s {
		if d == Any {
			continue
		}
		if d <= 0 {
			return fmt.Errorf("shape %v has a non-positive dimension", s)
		}
		if n > MaxElements/d {
			return fmt.Errorf("shape %v has more than %d elements", s, MaxElements)
		}
		n *= d
	}
	return nil
}

// broadcast applies NumPy's rule, extended to Any: Any meets only Any or 1.
func broadcast(a, b Shape) (Shape, error) {
	n := max(len(a), len(b))
	out := make(Shape, n)
	for i := range n {
		da, db := 1, 1
		if j := len(a) - n + i; j >= 0 {
			da = a[j]
		}
		if j := len(b) - n + i; j >= 0 {
			db = b[j]
		}
		switch {
		case da == db:
			out[i] = da
		case da == 1:
			out[i] = db
		case db == 1:
			out[i] = da
		default:
			return nil, fmt.Errorf("shapes %v and %v do not broadcast", a, b)
		}
	}
	return out, nil
}

// callResult is what the shape rule of a call resolves: its shape and its constant
// arguments in the form the Ops method takes.
type callResult struct {
	shape Shape
	axis  int     // sum
	dims  []int   // reshape, with -1 resolved
	eps   float64 // layer_norm
}

// DefaultEps is layer_norm's epsilon when the expression gives none (CLIP's value).
const DefaultEps = 1e-5

// callShape applies the shape rule of builtin fn to the shapes of its tensor
// arguments and the values of its constant ones.
func callShape(fn string, args []Shape, consts []float64) (callResult, error) {
	var r callResult
	switch fn {
	case "matmul":
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
	case "kron", "kron_sum":
		a, b := args[0], args[1]
		if a.hasAny() || b.hasAny() {
			return r, fmt.Errorf("operands %v and %v cannot involve activations", a, b)
		}
		switch {
		case fn == "kron" && len(a) == 2 && len(b) == 2:
			r.shape = Shape{a[0] * b[0], a[1] * b[1]}
		case len(a) == 3 && len(b) == 3:
			if a[0] != b[0] {
				return r, fmt.Errorf("stack sizes differ: %v and %v", a, b)
			}
			if a[1] > MaxElements/b[1] || a[2] > MaxElements/b[2] {
				return r, fmt.Errorf("result of %v and %v is too large", a, b)
			}
			if fn == "kron" {
				r.shape = Shape{a[0], a[1] * b[1], a[2] * b[2]}
			} else {
				r.shape = Shape{a[1] * b[1], a[2] * b[2]}
			}
		case fn == "kron":
			return r, fmt.Errorf("operands must both be 2-D or both 3-D, got %v and %v", a, b)
		default:
			return r, fmt.Errorf("operands must be stacks [n, p, q] and [n, r, s], got %v and %v", a, b)
		}
	case "outer":
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
	case "sum":
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
	case "transpose":
		x := args[0]
		if len(x) < 2 {
			return r, fmt.Errorf("needs at least 2 axes, got %v", x)
		}
		if x[len(x)-1] == Any || x[len(x)-2] == Any {
			return r, fmt.Errorf("cannot move the batch dimension of %v", x)
		}
		r.shape = append(Shape{}, x...)
		r.shape[len(x)-1], r.shape[len(x)-2] = x[len(x)-2], x[len(x)-1]
	case "reshape":
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
	case "relu", "gelu", "quick_gelu", "silu", "tanh", "sigmoid":
		r.shape = args[0]
	case "layer_norm":
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
	case "linear":
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
	default:
		return r, fmt.Errorf("unknown function %s", fn)
	}
	if err := checkSize(r.shape); err != nil {
		return r, err
	}
	return r, nil
}

func toInt(v float64) (int, error) {
	if v != math.Trunc(v) || math.Abs(v) > 1<<31 {
		return 0, fmt.Errorf("%g is not an integer", v)
	}
	return int(v), nil
}

// constIn reports whether e is arithmetic over literals and the named constants.
func constIn(e Expr, consts map[string]float64) bool {
	switch n := e.(type) {
	case *Number:
		return true
	case *Ident:
		_, ok := consts[n.Name]
		return ok
	case *Unary:
		return constIn(n.X, consts)
	case *Binary:
		return constIn(n.X, consts) && constIn(n.Y, consts)
	}
	return false
}

// constValue evaluates a constant expression: literals and the named constants.
func constValue(e Expr, consts map[string]float64) (float64, error) {
	switch n := e.(type) {
	case *Number:
		return n.Value, nil
	case *Ident:
		if v, ok := consts[n.Name]; ok {
			return v, nil
		}
		return 0, errorf(n.Column, "%s is not a constant here; only literals and site constants may appear", n.Name)
	case *Unary:
		v, err := constValue(n.X, consts)
		return -v, err
	case *Binary:
		x, err := constValue(n.X, consts)
		if err != nil {
			return 0, err
		}
		y, err := constValue(n.Y, consts)
		if err != nil {
			return 0, err
		}
		var v float64
		switch n.Op {
		case '+':
			v = x + y
		case '-':
			v = x - y
		case '*':
			v = x * y
		case '/':
			if y == 0 {
				return 0, errorf(n.Column, "division by zero")
			}
			v = x / y
		}
		if math.IsInf(v, 0) || math.IsNaN(v) {
			return 0, errorf(n.Column, "constant overflows")
		}
		return v, nil
	case *Call:
		return 0, errorf(n.Column, "%s(...) is not a constant here", n.Func)
	}
	return 0, errorf(e.Col(), "unknown node %T", e)
}

// Infer returns the shape of e without evaluating it. vars gives the shapes of the
// tensors e may refer to (Any marks a run-time row count); consts gives the named
// constants, which act as scalars in arithmetic and as values in constant positions.
func Infer(e Expr, vars map[string]Shape, consts map[string]float64) (Shape, error) {
	// In name order, so that of several bad variables the error names the same one
	// on every run.
	for _, name := range slices.Sorted(maps.Keys(vars)) {
		if err := checkSize(vars[name]); err != nil {
			return nil, errorf(0, "variable %s: %v", name, err)
		}
	}
	return infer(e, vars, consts)
}

func infer(e Expr, vars map[string]Shape, consts map[string]float64) (Shape, error) {
	switch n := e.(type) {
	case *Number:
		return Shape{}, nil
	case *Ident:
		if s, ok := vars[n.Name]; ok {
			return append(Shape{}, s...), nil
		}
		if _, ok := consts[n.Name]; ok {
			return Shape{}, nil
		}
		return nil, errorf(n.Column, "unknown identifier %s", n.Name)
	case *Unary:
		return infer(n.X, vars, consts)
	case *Binary:
		// Evaluation folds constant arithmetic: its failures (0/0, 1e300*1e300) must
		// surface here, when the plan is validated, not when it is compiled.
		if constIn(n, consts) {
			if _, err := constValue(n, consts); err != nil {
				return nil, err
			}
		}
		x, err := infer(n.X, vars, consts)
		if err != nil {
			return nil, err
		}
		y, err := infer(n.Y, vars, consts)
		if err != nil {
			return nil, err
		}
		s, err := broadcast(x, y)
		if err != nil {
			return nil, errorf(n.Column, "%c: %v", n.Op, err)
		}
		if err := checkSize(s); err != nil {
			return nil, errorf(n.Column, "%c: %v", n.Op, err)
		}
		return s, nil
	case *Call:
		b := builtins[n.Func]
		var args []Shape
		var cs []float64
		for i, a := range n.Args {
			if i >= b.constFrom {
				v, err := constValue(a, consts)
				if err != nil {
					return nil, err
				}
				cs = append(cs, v)
				continue
			}
			s, err := infer(a, vars, consts)
			if err != nil {
				return nil, err
			}
			args = append(args, s)
		}
		r, err := callShape(n.Func, args, cs)
		if err != nil {
			return nil, errorf(n.Column, "%s: %v", n.Func, err)
		}
		return r.shape, nil
	}
	return nil, errorf(e.Col(), "unknown node %T", e)
}
