package autograd

import (
	"github.com/kadapt/kadapt/core"
)

func (tp *Tape) binary(op core.BinaryOp, a, b *Var) *Var {
	out, err := core.BroadcastShape(a.Shape(), b.Shape())
	if err != nil {
		shapePanic(op.String(), "%v", err)
	}
	y := tp.output(out)
	tp.b.Binary(op, y, a.Value, b.Value)
	return tp.binaryNode(op, a, b, y)
}

// binaryNode records y = a op b, already computed.
func (tp *Tape) binaryNode(op core.BinaryOp, a, b *Var, y *core.Tensor) *Var {
	var saves []*core.Tensor
	switch op {
	case core.Add, core.Sub: // the gradient passes through: nothing to keep
	case core.Mul:
		saves = crossSaves(a, b)
	default:
		saves = []*core.Tensor{a.Value, b.Value, y}
	}
	var v *Var
	v = tp.nodeSaving(op.String(), y, saves, func() { tp.binaryBackward(op, a, b, v) }, a, b)
	return v
}

func (tp *Tape) binaryBackward(op core.BinaryOp, a, b, y *Var) {
	dy, out := y.Grad, y.Shape()
	bk := tp.b
	switch op {
	case core.Add, core.Sub:
		if needs(a) && !tp.passGrad(y, a) {
			g, fresh := tp.gradOf(a)
			tp.reduceInto(g, fresh, dy, 1)
		}
		if needs(b) && (op == core.Sub || !tp.passGrad(y, b)) {
			g, fresh := tp.gradOf(b)
			alpha := float32(1)
			if op == core.Sub {
				alpha = -1
			}
			tp.reduceInto(g, fresh, dy, alpha)
		}
	case core.Mul:
		if needs(a) {
			tp.accumulate(a, out, 1, func(dst *core.Tensor) { bk.Binary(core.Mul, dst, dy, b.Value) })
		}
		if needs(b) {
			tp.accumulate(b, out, 1, func(dst *core.Tensor) { bk.Binary(core.Mul, dst, dy, a.Value) })
		}
	case core.Div:
		// y = a/b: da = dy/b, db = -dy·a/b² = -(dy·y)/b.
		if needs(a) {
			tp.accumulate(a, out, 1, func(dst *core.Tensor) { bk.Binary(core.Div, dst, dy, b.Value) })
		}
		if needs(b) {
			tmp := tp.scratch(out)
			bk.Binary(core.Mul, tmp, dy, y.Value)
			tp.accumulate(b, out, -1, func(dst *core.Tensor) { bk.Binary(core.Div, dst, tmp, b.Value) })
			bk.Release(tmp)
		}
	case core.Maximum:
		// Like torch.maximum, ties split the gradient equally: each operand's share is
		// its indicator of being the maximum over the number of operands that are.
		ma, mb, cnt, w := tp.scratch(out), tp.scratch(out), tp.scratch(out), tp.scratch(out)
		bk.Binary(core.Equal, ma, y.Value, a.Value)
		bk.Binary(core.Equal, mb, y.Value, b.Value)
		bk.Binary(core.Add, cnt, ma, mb)
		if needs(a) {
			bk.Binary(core.Div, w, ma, cnt)
			tp.accumulate(a, out, 1, func(dst *core.Tensor) { bk.Binary(core.Mul, dst, dy, w) })
		}
		if needs(b) {
			bk.Binary(core.Div, w, mb, cnt)
			tp.accumulate(b, out, 1, func(dst *core.Tensor) { bk.Binary(core.Mul, dst, dy, w) })
		}
		for _, t := range []*core.Tensor{ma, mb, cnt, w} {
			bk.Release(t)
		}
	}
}

// Add returns a + b with NumPy broadcasting; each gradient is summed back to its
// operand's shape.
func (tp *Tape) Add(a, b *Var) *Var { return tp.binary(core.Add, a, b) }

// Sub returns a - b with broadcasting.
func (tp *Tape) Sub(a, b *Var) *Var { return tp.binary(core.Sub, a, b) }

// Mul returns a · b elementwise with broadcasting.
func (tp *Tape) Mul(a, b *Var) *Var { return tp.binary(core.Mul, a, b) }

// Div returns a / b elementwise with broadcasting.
func (tp *Tape) Div(a, b *Var) *Var { return tp.binary(core.Div, a, b) }

// Maximum returns max(a, b) elementwise with broadcasting; at ties each operand gets
// half the gradient, as in PyTorch.
func (tp *Tape) Maximum(a, b *Var) *Var { return tp.binary(core.Maximum, a, b) }

// Scale returns alpha·x.
func (tp *Tape) Scale(x *Var, alpha float32) *Var {
	y := tp.output(x.Shape())
	tp.b.Axpby(y, alpha, x.Value, 0)
	var v *Var
	v = tp.nodeSaving("scale", y, nil, func() {
		g, fresh := tp.gradOf(x)
		tp.b.Axpby(g, alpha, v.Grad, beta(fresh))
	}, x)
	return v
}

// AddScalar returns x + c.
func (tp *Tape) AddScalar(x *Var, c float32) *Var {
	y := tp.output(x.Shape())
	tp.b.Fill(y, c)
	tp.b.Axpby(y, 1, x.Value, 1)
	var v *Var
	v = tp.nodeSaving("add_scalar", y, nil, func() {
		g, fresh := tp.gradOf(x)
		tp.b.Axpby(g, 1, v.Grad, beta(fresh))
	}, x)
	return v
}

// Unary returns op(x) elementwise.
func (tp *Tape) Unary(op core.UnaryOp, x *Var) *Var {
	y := tp.output(x.Shape())
	tp.b.Unary(op, y, x.Value)
	return tp.unaryNode(op, x, y)
}

// unaryNode records y = op(x), already computed.
func (tp *Tape) unaryNode(op core.UnaryOp, x *Var, y *core.Tensor) *Var {
	var v *Var
	v = tp.nodeSaving(op.String(), y, []*core.Tensor{x.Value}, func() {
		g, fresh := tp.gradOf(x)
		tp.b.UnaryGrad(op, g, x.Value, v.Grad, !fresh)
	}, x)
	return v
}

// ReLU returns max(x, 0).
func (tp *Tape) ReLU(x *Var) *Var { return tp.Unary(core.ReLU, x) }

// GELU returns the exact (erf) GELU.
func (tp *Tape) GELU(x *Var) *Var { return tp.Unary(core.GELU, x) }

// QuickGELU returns x·σ(core.QuickGELUCoef·x), CLIP's activation.
func (tp *Tape) QuickGELU(x *Var) *Var { return tp.Unary(core.QuickGELU, x) }

// SiLU returns x·σ(x).
func (tp *Tape) SiLU(x *Var) *Var { return tp.Unary(core.SiLU, x) }

// Sigmoid returns 1/(1+e^-x).
func (tp *Tape) Sigmoid(x *Var) *Var { return tp.Unary(core.Sigmoid, x) }

// Tanh returns tanh x.
func (tp *Tape) Tanh(x *Var) *Var { return tp.Unary(core.Tanh, x) }

// Exp returns e^x.
func (tp *Tape) Exp(x *Var) *Var { return tp.Unary(core.Exp, x) }

// Log returns ln x.
func (tp *Tape) Log(x *Var) *Var { return tp.Unary(core.Log, x) }

// Sqrt returns √x.
func (tp *Tape) Sqrt(x *Var) *Var { return tp.Unary(core.Sqrt, x) }

// Square returns x².
func (tp *Tape) Square(x *Var) *Var { return tp.Unary(core.Square, x) }
