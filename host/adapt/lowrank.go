package adapt

import (
	"github.com/kadapt/kadapt/backbones"
	"github.com/kadapt/kadapt/core/autograd"
	"github.com/kadapt/kadapt/plugins/expr"
)

// A weight delta that is a product of thin factors, ΔW = c·U·Vᵀ with U [out, R] and
// V [in, R], is applied while training as the branch c·(x·V)·Uᵀ beside the frozen
// linear: the same function, but neither ΔW nor its full [out, in] gradient (a product
// over every token) is ever formed, which is what PEFT's LoRA layers do. Merge still
// folds the delta, evaluated from the plan's expression, into the weight.
//
// Recognised, c being a product of numbers (or absent) and the operands parameters:
//
//	c * matmul(P, Q)                                P [out, r], Q [r, in]: U = P, Vᵀ = Q
//	c * kron_sum(matmul(A, B), matmul(C, D))        A [n,p,r1], B [n,r1,q], C [n,s,r2], D [n,r2,t]
//
// The second is Σ_i (A_i·B_i) ⊗ (C_i·D_i) = Σ_i (A_i ⊗ C_i)·(B_i ⊗ D_i) by the
// mixed-product rule, of rank n·r1·r2: KAdaptation's ΔW with rank-one slow and fast
// weights (n = 32 at ViT-B's width) has rank 32.
type lowRank struct {
	c      float64
	kron   bool
	args   []*autograd.Var // P, Q or A, B, C, D
	rank   int
	outDim int
}

// factorLowRank turns the branch form on; tests compare it with the full form.
var factorLowRank = true

// worthFactoring reports whether the branch form does less work than forming ΔW: per
// token the branch costs about 3·R·(in+out) multiply-adds over forward and backward,
// against in·out for the weight gradient of the full form.
func (lr lowRank) worthFactoring(in, out int) bool { return 3*lr.rank*(in+out) < in*out }

// matchLowRank recognises e as a low-rank delta for l over the bound parameters.
func matchLowRank(e expr.Expr, bind map[string]*autograd.Var, l *backbones.Linear) (lowRank, bool) {
	lr := lowRank{c: 1, outDim: l.Out()}
	e = stripScale(e, &lr.c)
	call, ok := e.(*expr.Call)
	if !ok || len(call.Args) != 2 {
		return lr, false
	}
	params := func(es ...expr.Expr) ([]*autograd.Var, bool) {
		var vs []*autograd.Var
		for _, a := range es {
			id, ok := a.(*expr.Ident)
			if !ok || bind[id.Name] == nil {
				return nil, false
			}
			vs = append(vs, bind[id.Name])
		}
		return vs, true
	}
	switch call.Func {
	case "matmul":
		vs, ok := params(call.Args...)
		if !ok {
			return lr, false
		}
		p, q := vs[0].Shape(), vs[1].Shape()
		if len(p) != 2 || len(q) != 2 || p[0] != l.Out() || q[1] != l.In() || p[1] != q[0] {
			return lr, false
		}
		lr.args, lr.rank = vs, p[1]
	case "kron_sum":
		var ops []expr.Expr
		for _, a := range call.Args {
			m, ok := a.(*expr.Call)
			if !ok || m.Func != "matmul" || len(m.Args) != 2 {
				return lr, false
			}
			ops = append(ops, m.Args...)
		}
		vs, ok := params(ops...)
		if !ok {
			return lr, false
		}
		a, b, c, d := vs[0].Shape(), vs[1].Shape(), vs[2].Shape(), vs[3].Shape()
		for _, s := range [][]int{a, b, c, d} {
			if len(s) != 3 || s[0] != a[0] {
				return lr, false
			}
		}
		if a[2] != b[1] || c[2] != d[1] || a[1]*c[1] != l.Out() || b[2]*d[2] != l.In() {
			return lr, false
		}
		lr.kron, lr.args, lr.rank = true, vs, a[0]*a[2]*c[2]
	default:
		return lr, false
	}
	return lr, lr.worthFactoring(l.In(), l.Out())
}

// stripScale peels constant factors off e, multiplying them into c.
func stripScale(e expr.Expr, c *float64) expr.Expr {
	b, ok := e.(*expr.Binary)
	if !ok || b.Op != '*' {
		return e
	}
	if n, ok := b.X.(*expr.Number); ok {
		*c *= n.Value
		return stripScale(b.Y, c)
	}
	if n, ok := b.Y.(*expr.Number); ok {
		*c *= n.Value
		return stripScale(b.X, c)
	}
	return e
}

// factors builds U [out, R] and Vᵀ [R, in] on the tape.
func (lr lowRank) factors(tp *autograd.Tape) (u, vt *autograd.Var) {
	if !lr.kron {
		return lr.args[0], lr.args[1]
	}
	ops := tapeOps{tp}
	kron := func(x, y *autograd.Var) *autograd.Var {
		k, _ := ops.Kron(value{v: x}, value{v: y}) // shapes were checked by matchLowRank
		return k.v
	}
	left := kron(lr.args[0], lr.args[2])  // [n, p·s, r1·r2]: the columns of U, per term
	right := kron(lr.args[1], lr.args[3]) // [n, r1·r2, q·t]: the rows of Vᵀ
	u = tp.Reshape(tp.Permute(left, 1, 0, 2), lr.outDim, lr.rank)
	vt = tp.Reshape(right, lr.rank, -1)
	return u, vt
}

// branch is c·(x·V)·Uᵀ, scaled at rank R where the activations are small.
func (lr lowRank) branch(tp *autograd.Tape, x *autograd.Var) *autograd.Var {
	u, vt := lr.factors(tp)
	h := tp.Linear(x, vt, nil)
	if lr.c != 1 {
		h = tp.Scale(h, float32(lr.c))
	}
	return tp.Linear(h, u, nil)
}
