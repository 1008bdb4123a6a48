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
		i, err := lookup(n)
		if err != nil {
			return nil, err
		}
		b := &language[i]
		var args []Shape
		var cs []float64
		for j, a := range n.Args {
			if j >= b.constFrom {
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
		r, err := b.applyShape(args, cs, n.Column)
		if err != nil {
			return nil, err
		}
		return r.shape, nil
	}
	return nil, errorf(e.Col(), "unknown node %T", e)
}
