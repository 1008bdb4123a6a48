package expr

// Ops is the arithmetic Eval performs over values of type T: one method per operator
// and builtin. Eval checks every operand shape with the same rules as Infer before it
// calls a method, so an implementation may assume valid shapes; it then checks the
// shape of what the method returns.
//
// Scalars are rank-0 values (Shape returns an empty slice for them). Arithmetic
// broadcasts as NumPy does.
type Ops[T any] interface {
	// Shape returns the dimensions of x.
	Shape(x T) []int
	// Scalar makes a rank-0 value.
	Scalar(v float64) (T, error)

	Add(a, b T) (T, error)
	Sub(a, b T) (T, error)
	Mul(a, b T) (T, error)
	Div(a, b T) (T, error)
	Neg(x T) (T, error)

	// MatMul multiplies [m,k]·[k,n]; a 3-D operand is a stack whose leading axis is a
	// batch, and a 2-D operand beside it is shared by every batch entry. On the host
	// a may also have more leading axes (a site's activations), b being 2-D.
	MatMul(a, b T) (T, error)
	// Kron is the Kronecker product of two matrices, or of each pair of a
	// stack [n,p,q] and [n,r,s] (giving [n, p·r, q·s]).
	Kron(a, b T) (T, error)
	// KronSum is Σ_i a_i ⊗ b_i over stacks [n,p,q] and [n,r,s], a [p·r, q·s] matrix.
	KronSum(a, b T) (T, error)
	// Outer is a bᵀ for vectors, or the stack of a_i b_iᵀ for [n,p] and [n,q].
	Outer(a, b T) (T, error)
	// Sum reduces over axis (0 ≤ axis < rank), removing it.
	Sum(x T, axis int) (T, error)
	// Transpose swaps the last two axes.
	Transpose(x T) (T, error)
	// Reshape reinterprets x's row-major elements with shape dims (no -1 left).
	Reshape(x T, dims []int) (T, error)

	ReLU(x T) (T, error)
	GELU(x T) (T, error)      // exact: x·Φ(x)
	QuickGELU(x T) (T, error) // x·σ(1.702·x)
	SiLU(x T) (T, error)
	Tanh(x T) (T, error)
	Sigmoid(x T) (T, error)

	// LayerNorm normalises over the last axis with the biased variance:
	// (x-μ)/√(var+eps)·gamma + beta.
	LayerNorm(x, gamma, beta T, eps float64) (T, error)
	// Linear is x·wᵀ + b for x [..., in], w [out, in], b [out].
	Linear(x, w, b T) (T, error)
}

// Eval evaluates e with the tensors in env. Named constants are not looked up: bind
// them first with Subst. Subtrees made only of literals are folded into one Scalar.
func Eval[T any](e Expr, env map[string]T, ops Ops[T]) (T, error) {
	ev := evaluator[T]{env: env, ops: ops, builtins: builtins[T]()}
	v, _, err := ev.eval(e)
	return v, err
}

type evaluator[T any] struct {
	env      map[string]T
	ops      Ops[T]
	builtins []builtin[T]
}

func isConst(e Expr) bool {
	switch n := e.(type) {
	case *Number:
		return true
	case *Unary:
		return isConst(n.X)
	case *Binary:
		return isConst(n.X) && isConst(n.Y)
	}
	return false
}

func (ev *evaluator[T]) eval(e Expr) (T, Shape, error) {
	var zero T
	if isConst(e) {
		v, err := constValue(e, nil)
		if err != nil {
			return zero, nil, err
		}
		x, err := ev.ops.Scalar(v)
		if err != nil {
			return zero, nil, errorf(e.Col(), "scalar %g: %v", v, err)
		}
		return x, Shape{}, nil
	}
	switch n := e.(type) {
	case *Ident:
		v, ok := ev.env[n.Name]
		if !ok {
			return zero, nil, errorf(n.Column, "unknown identifier %s", n.Name)
		}
		s := Shape(append([]int{}, ev.ops.Shape(v)...))
		if err := checkSize(s); err != nil {
			return zero, nil, errorf(n.Column, "%s: %v", n.Name, err)
		}
		return v, s, nil
	case *Unary:
		x, s, err := ev.eval(n.X)
		if err != nil {
			return zero, nil, err
		}
		v, err := ev.ops.Neg(x)
		return ev.check(n.Column, "Neg", v, err, s)
	case *Binary:
		x, sx, err := ev.eval(n.X)
		if err != nil {
			return zero, nil, err
		}
		y, sy, err := ev.eval(n.Y)
		if err != nil {
			return zero, nil, err
		}
		s, err := broadcast(sx, sy)
		if err != nil {
			return zero, nil, errorf(n.Column, "%c: %v", n.Op, err)
		}
		var v T
		var name string
		switch n.Op {
		case '+':
			name = "Add"
			v, err = ev.ops.Add(x, y)
		case '-':
			name = "Sub"
			v, err = ev.ops.Sub(x, y)
		case '*':
			name = "Mul"
			v, err = ev.ops.Mul(x, y)
		case '/':
			name = "Div"
			v, err = ev.ops.Div(x, y)
		}
		return ev.check(n.Column, name, v, err, s)
	case *Call:
		return ev.call(n)
	}
	return zero, nil, errorf(e.Col(), "unknown node %T", e)
}

func (ev *evaluator[T]) call(n *Call) (T, Shape, error) {
	var zero T
	i, err := lookup(n)
	if err != nil {
		return zero, nil, err
	}
	b := &ev.builtins[i]
	var args []T
	var shapes []Shape
	var consts []float64
	for j, a := range n.Args {
		if j >= b.constFrom {
			v, err := constValue(a, nil)
			if err != nil {
				return zero, nil, err
			}
			consts = append(consts, v)
			continue
		}
		v, s, err := ev.eval(a)
		if err != nil {
			return zero, nil, err
		}
		args = append(args, v)
		shapes = append(shapes, s)
	}
	r, err := b.applyShape(shapes, consts, n.Column)
	if err != nil {
		return zero, nil, err
	}
	v, err := b.eval(ev.ops, args, r)
	return ev.check(n.Column, b.op, v, err, r.shape)
}

// check wraps an Ops error with its place and verifies the returned shape, so a
// faulty Ops implementation is caught where it went wrong.
func (ev *evaluator[T]) check(col int, op string, v T, err error, want Shape) (T, Shape, error) {
	var zero T
	if err != nil {
		return zero, nil, errorf(col, "%s: %v", op, err)
	}
	if got := Shape(ev.ops.Shape(v)); !got.Equal(want) {
		return zero, nil, errorf(col, "%s returned shape %v, want %v", op, got, want)
	}
	return v, want, nil
}
