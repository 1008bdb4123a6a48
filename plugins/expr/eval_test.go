package expr

import (
	"errors"
	"math"
	"math/rand/v2"
	"strings"
	"testing"

	"gonum.org/v1/gonum/floats"
	"gonum.org/v1/gonum/mat"
)

// tn is a dense float64 tensor, the value type of the reference Ops.
type tn struct {
	shape []int
	data  []float64
}

func size(s []int) int {
	n := 1
	for _, d := range s {
		n *= d
	}
	return n
}

func randTn(r *rand.Rand, shape ...int) tn {
	t := tn{shape: shape, data: make([]float64, size(shape))}
	for i := range t.data {
		t.data[i] = r.NormFloat64()
	}
	return t
}

// mats splits a 2-D or 3-D tensor into gonum matrices, one per batch entry.
func (t tn) mats() []*mat.Dense {
	if len(t.shape) == 2 {
		return []*mat.Dense{mat.NewDense(t.shape[0], t.shape[1], t.data)}
	}
	n, r, c := t.shape[0], t.shape[1], t.shape[2]
	out := make([]*mat.Dense, n)
	for i := range out {
		out[i] = mat.NewDense(r, c, t.data[i*r*c:(i+1)*r*c])
	}
	return out
}

func fromMat(m mat.Matrix) tn {
	r, c := m.Dims()
	return tn{shape: []int{r, c}, data: mat.DenseCopyOf(m).RawMatrix().Data}
}

func stack(ms []*mat.Dense) tn {
	r, c := ms[0].Dims()
	t := tn{shape: []int{len(ms), r, c}}
	for _, m := range ms {
		t.data = append(t.data, mat.DenseCopyOf(m).RawMatrix().Data...)
	}
	return t
}

// dense implements Ops over tn with straightforward loops and gonum.
type dense struct{ scalars int }

func (*dense) Shape(x tn) []int { return x.shape }
func (d *dense) Scalar(v float64) (tn, error) {
	d.scalars++
	return tn{shape: []int{}, data: []float64{v}}, nil
}

func (*dense) binary(a, b tn, f func(x, y float64) float64) (tn, error) {
	s, err := broadcast(a.shape, b.shape)
	if err != nil {
		return tn{}, err
	}
	out := tn{shape: s, data: make([]float64, size(s))}
	idx := make([]int, len(s))
	for i := range out.data {
		// Unravel i into idx, then ravel into each operand honouring size-1 axes.
		rem := i
		for ax := len(s) - 1; ax >= 0; ax-- {
			idx[ax] = rem % s[ax]
			rem /= s[ax]
		}
		at := func(t tn) float64 {
			off, stride := 0, 1
			for ax := len(t.shape) - 1; ax >= 0; ax-- {
				j := idx[ax+len(s)-len(t.shape)]
				if t.shape[ax] == 1 {
					j = 0
				}
				off += j * stride
				stride *= t.shape[ax]
			}
			return t.data[off]
		}
		out.data[i] = f(at(a), at(b))
	}
	return out, nil
}

func (d *dense) Add(a, b tn) (tn, error) {
	return d.binary(a, b, func(x, y float64) float64 { return x + y })
}
func (d *dense) Sub(a, b tn) (tn, error) {
	return d.binary(a, b, func(x, y float64) float64 { return x - y })
}
func (d *dense) Mul(a, b tn) (tn, error) {
	return d.binary(a, b, func(x, y float64) float64 { return x * y })
}
func (d *dense) Div(a, b tn) (tn, error) {
	return d.binary(a, b, func(x, y float64) float64 { return x / y })
}
func (d *dense) Neg(x tn) (tn, error) { return d.unary(x, func(v float64) float64 { return -v }) }

func (*dense) unary(x tn, f func(float64) float64) (tn, error) {
	out := tn{shape: x.shape, data: make([]float64, len(x.data))}
	for i, v := range x.data {
		out.data[i] = f(v)
	}
	return out, nil
}

func (*dense) MatMul(a, b tn) (tn, error) {
	am, bm := a.mats(), b.mats()
	n := max(len(am), len(bm))
	var out []*mat.Dense
	for i := range n {
		var p mat.Dense
		p.Mul(am[min(i, len(am)-1)], bm[min(i, len(bm)-1)])
		out = append(out, &p)
	}
	if len(a.shape) == 2 && len(b.shape) == 2 {
		return fromMat(out[0]), nil
	}
	return stack(out), nil
}

// kronLoop is the Kronecker product by its index definition (the test checks it
// against gonum's mat.Kronecker).
func kronLoop(a, b *mat.Dense) *mat.Dense {
	ar, ac := a.Dims()
	br, bc := b.Dims()
	out := mat.NewDense(ar*br, ac*bc, nil)
	for i := range ar * br {
		for j := range ac * bc {
			out.Set(i, j, a.At(i/br, j/bc)*b.At(i%br, j%bc))
		}
	}
	return out
}

func (*dense) Kron(a, b tn) (tn, error) {
	am, bm := a.mats(), b.mats()
	var out []*mat.Dense
	for i := range am {
		out = append(out, kronLoop(am[i], bm[i]))
	}
	if len(a.shape) == 2 {
		return fromMat(out[0]), nil
	}
	return stack(out), nil
}

func (*dense) KronSum(a, b tn) (tn, error) {
	am, bm := a.mats(), b.mats()
	sum := kronLoop(am[0], bm[0])
	for i := 1; i < len(am); i++ {
		sum.Add(sum, kronLoop(am[i], bm[i]))
	}
	return fromMat(sum), nil
}

func (*dense) Outer(a, b tn) (tn, error) {
	if len(a.shape) == 1 {
		var m mat.Dense
		m.Outer(1, mat.NewVecDense(len(a.data), a.data), mat.NewVecDense(len(b.data), b.data))
		return fromMat(&m), nil
	}
	n, p, q := a.shape[0], a.shape[1], b.shape[1]
	var out []*mat.Dense
	for i := range n {
		var m mat.Dense
		m.Outer(1, mat.NewVecDense(p, a.data[i*p:(i+1)*p]), mat.NewVecDense(q, b.data[i*q:(i+1)*q]))
		out = append(out, &m)
	}
	return stack(out), nil
}

func (*dense) Sum(x tn, axis int) (tn, error) {
	outer, inner := size(x.shape[:axis]), size(x.shape[axis+1:])
	n := x.shape[axis]
	s := append(append([]int{}, x.shape[:axis]...), x.shape[axis+1:]...)
	out := tn{shape: s, data: make([]float64, outer*inner)}
	for o := range outer {
		for k := range n {
			for i := range inner {
				out.data[o*inner+i] += x.data[(o*n+k)*inner+i]
			}
		}
	}
	return out, nil
}

func (*dense) Transpose(x tn) (tn, error) {
	r := len(x.shape)
	m, n := x.shape[r-2], x.shape[r-1]
	s := append([]int{}, x.shape...)
	s[r-2], s[r-1] = n, m
	out := tn{shape: s, data: make([]float64, len(x.data))}
	for b := range len(x.data) / (m * n) {
		for i := range m {
			for j := range n {
				out.data[b*m*n+j*m+i] = x.data[b*m*n+i*n+j]
			}
		}
	}
	return out, nil
}

func (*dense) Reshape(x tn, dims []int) (tn, error) {
	if size(dims) != len(x.data) {
		return tn{}, errors.New("size mismatch")
	}
	return tn{shape: append([]int{}, dims...), data: x.data}, nil
}

func sigmoid(v float64) float64 { return 1 / (1 + math.Exp(-v)) }

func (d *dense) ReLU(x tn) (tn, error) {
	return d.unary(x, func(v float64) float64 { return max(v, 0) })
}
func (d *dense) GELU(x tn) (tn, error) {
	return d.unary(x, func(v float64) float64 { return 0.5 * v * (1 + math.Erf(v/math.Sqrt2)) })
}
func (d *dense) QuickGELU(x tn) (tn, error) {
	return d.unary(x, func(v float64) float64 { return v * sigmoid(1.702*v) })
}
func (d *dense) SiLU(x tn) (tn, error) {
	return d.unary(x, func(v float64) float64 { return v * sigmoid(v) })
}
func (d *dense) Tanh(x tn) (tn, error)    { return d.unary(x, math.Tanh) }
func (d *dense) Sigmoid(x tn) (tn, error) { return d.unary(x, sigmoid) }

func (*dense) LayerNorm(x, g, b tn, eps float64) (tn, error) {
	dim := x.shape[len(x.shape)-1]
	out := tn{shape: x.shape, data: make([]float64, len(x.data))}
	for r := 0; r < len(x.data); r += dim {
		row := x.data[r : r+dim]
		mean := floats.Sum(row) / float64(dim)
		v := 0.0
		for _, e := range row {
			v += (e - mean) * (e - mean)
		}
		v /= float64(dim)
		for i, e := range row {
			out.data[r+i] = (e-mean)/math.Sqrt(v+eps)*g.data[i] + b.data[i]
		}
	}
	return out, nil
}

func (*dense) Linear(x, w, b tn) (tn, error) {
	in, outDim := w.shape[1], w.shape[0]
	rows := len(x.data) / in
	xm := mat.NewDense(rows, in, x.data)
	var y mat.Dense
	y.Mul(xm, mat.NewDense(outDim, in, w.data).T())
	for i := range rows {
		for j := range outDim {
			y.Set(i, j, y.At(i, j)+b.data[j])
		}
	}
	s := append(append([]int{}, x.shape[:len(x.shape)-1]...), outDim)
	return tn{shape: s, data: y.RawMatrix().Data}, nil
}

func near(t *testing.T, what string, got tn, want []float64, wantShape []int) {
	t.Helper()
	if !Shape(got.shape).Equal(wantShape) {
		t.Fatalf("%s: shape %v, want %v", what, got.shape, wantShape)
	}
	if len(got.data) != len(want) {
		t.Fatalf("%s: %d values, want %d", what, len(got.data), len(want))
	}
	for i := range want {
		if math.Abs(got.data[i]-want[i]) > 1e-10*(1+math.Abs(want[i])) {
			t.Fatalf("%s[%d] = %.15g, want %.15g", what, i, got.data[i], want[i])
		}
	}
}

func matData(m mat.Matrix) []float64 { return mat.DenseCopyOf(m).RawMatrix().Data }

// TestEvalKronSum checks the KAdaptation update Σ_i (a_i b_iᵀ) ⊗ (u_i v_iᵀ) against
// gonum's mat.Outer and mat.Kronecker.
func TestEvalKronSum(t *testing.T) {
	r := rand.New(rand.NewPCG(1, 2))
	const n, p, q = 4, 3, 2
	env := map[string]tn{
		"s.a": randTn(r, n, p, 1), "s.b": randTn(r, n, 1, p),
		"f.u": randTn(r, n, q, 1), "f.v": randTn(r, n, 1, q),
	}
	ops := &dense{}
	got, err := Eval(MustParse("0.5 * kron_sum(matmul(s.a, s.b), matmul(f.u, f.v))"), env, ops)
	if err != nil {
		t.Fatal(err)
	}
	want := mat.NewDense(p*q, p*q, nil)
	for i := range n {
		var slow, fast, k mat.Dense
		slow.Outer(1, mat.NewVecDense(p, env["s.a"].data[i*p:(i+1)*p]), mat.NewVecDense(p, env["s.b"].data[i*p:(i+1)*p]))
		fast.Outer(1, mat.NewVecDense(q, env["f.u"].data[i*q:(i+1)*q]), mat.NewVecDense(q, env["f.v"].data[i*q:(i+1)*q]))
		k.Kronecker(&slow, &fast)
		want.Add(want, &k)
	}
	want.Scale(0.5, want)
	near(t, "kron_sum", got, matData(want), []int{p * q, p * q})
	if ops.scalars != 1 {
		t.Errorf("Scalar called %d times, want 1", ops.scalars)
	}

	// kron over stacks is the same products before the sum.
	got, err = Eval(MustParse("sum(kron(matmul(s.a, s.b), matmul(f.u, f.v)), 0) / 2"), env, ops)
	if err != nil {
		t.Fatal(err)
	}
	near(t, "sum of stacked kron", got, matData(want), []int{p * q, p * q})
}

func TestEvalAgainstGonum(t *testing.T) {
	r := rand.New(rand.NewPCG(3, 4))
	const rows, in, out, rank, hidden = 5, 6, 8, 2, 3
	x := randTn(r, rows, in)
	W, b := randTn(r, out, in), randTn(r, out)
	A, B := randTn(r, rank, in), randTn(r, out, rank)
	g, beta := randTn(r, in), randTn(r, in)
	wd, bd := randTn(r, hidden, in), randTn(r, hidden)
	wu, bu := randTn(r, in, hidden), randTn(r, in)
	vec := randTn(r, 4)
	env := map[string]tn{"x": x, "h": x, "W": W, "b": b, "A": A, "B": B, "g": g, "beta": beta,
		"wd": wd, "bd": bd, "wu": wu, "bu": bu, "vec": vec}

	xm, Wm := mat.NewDense(rows, in, x.data), mat.NewDense(out, in, W.data)
	Am, Bm := mat.NewDense(rank, in, A.data), mat.NewDense(out, rank, B.data)

	var lora mat.Dense
	lora.Mul(Bm, Am)
	lora.Scale(4.0/rank, &lora)

	var xa, branch mat.Dense // x Aᵀ Bᵀ · 4/r
	xa.Mul(xm, Am.T())
	branch.Mul(&xa, Bm.T())
	branch.Scale(4.0/rank, &branch)

	var lin mat.Dense
	lin.Mul(xm, Wm.T())
	for i := range rows {
		for j := range out {
			lin.Set(i, j, lin.At(i, j)+b.data[j])
		}
	}

	// The adapter, computed step by step.
	ln := mat.NewDense(rows, in, nil)
	for i := range rows {
		row := mat.Row(nil, i, xm)
		mean := floats.Sum(row) / in
		v := 0.0
		for _, e := range row {
			v += (e - mean) * (e - mean)
		}
		v /= in
		for j := range in {
			ln.Set(i, j, (row[j]-mean)/math.Sqrt(v+1e-6)*g.data[j]+beta.data[j])
		}
	}
	var down, up mat.Dense
	down.Mul(ln, mat.NewDense(hidden, in, wd.data).T())
	for i := range rows {
		for j := range hidden {
			down.Set(i, j, max(0, down.At(i, j)+bd.data[j]))
		}
	}
	up.Mul(&down, mat.NewDense(in, hidden, wu.data).T())
	for i := range rows {
		for j := range in {
			up.Set(i, j, up.At(i, j)+bu.data[j]+xm.At(i, j))
		}
	}

	colSums := make([]float64, in)
	rowSums := make([]float64, rows)
	for i := range rows {
		for j := range in {
			colSums[j] += xm.At(i, j)
			rowSums[i] += xm.At(i, j)
		}
	}

	var outer mat.Dense
	outer.Outer(1, mat.NewVecDense(4, vec.data), mat.NewVecDense(in, g.data))

	neg := make([]float64, len(b.data))
	for i, v := range b.data {
		neg[i] = -v*2 - 1
	}

	tests := []struct {
		src   string
		want  []float64
		shape []int
	}{
		{"(8 / 2) / rank * matmul(B, A)", matData(&lora), []int{out, in}},
		{"matmul(matmul(x, transpose(A)), transpose(B)) * 4 / rank", matData(&branch), []int{rows, out}},
		{"linear(x, W, b)", matData(&lin), []int{rows, out}},
		{"h + linear(relu(linear(layer_norm(h, g, beta, 1e-6), wd, bd)), wu, bu)", matData(&up), []int{rows, in}},
		{"sum(x, 0)", colSums, []int{in}},
		{"sum(x, -1)", rowSums, []int{rows}},
		{"reshape(transpose(transpose(x)), -1)", x.data, []int{rows * in}},
		{"outer(vec, g)", matData(&outer), []int{4, in}},
		{"-b * 2 - 1", neg, []int{out}},
	}
	for _, tt := range tests {
		e := Subst(MustParse(tt.src), map[string]float64{"rank": rank})
		got, err := Eval(e, env, &dense{})
		if err != nil {
			t.Errorf("Eval(%q): %v", tt.src, err)
			continue
		}
		near(t, tt.src, got, tt.want, tt.shape)
	}
}

func TestEvalActivations(t *testing.T) {
	// Closed forms at 1 and -2: Φ(1) = 0.841344746068543, σ(1.702) = 0.845881175...
	x := tn{shape: []int{2}, data: []float64{1, -2}}
	tests := []struct {
		fn   string
		want []float64
	}{
		{"relu", []float64{1, 0}},
		{"gelu", []float64{0.8413447460685429, -2 * 0.022750131948179195}},
		{"quick_gelu", []float64{1 / (1 + math.Exp(-1.702)), -2 / (1 + math.Exp(3.404))}},
		{"silu", []float64{0.7310585786300049, -2 * 0.11920292202211755}},
		{"tanh", []float64{0.7615941559557649, -0.9640275800758169}},
		{"sigmoid", []float64{0.7310585786300049, 0.11920292202211755}},
	}
	for _, tt := range tests {
		got, err := Eval(MustParse(tt.fn+"(x)"), map[string]tn{"x": x}, &dense{})
		if err != nil {
			t.Fatalf("%s: %v", tt.fn, err)
		}
		near(t, tt.fn, got, tt.want, []int{2})
	}
}

// wrongShape returns a transposed result from MatMul, as a buggy backend might.
type wrongShape struct{ dense }

func (w *wrongShape) MatMul(a, b tn) (tn, error) {
	m, err := w.dense.MatMul(a, b)
	if err != nil {
		return m, err
	}
	return w.Transpose(m)
}

// failing fails every Sigmoid.
type failing struct{ dense }

func (*failing) Sigmoid(tn) (tn, error) { return tn{}, errors.New("out of memory") }

func TestEvalErrors(t *testing.T) {
	r := rand.New(rand.NewPCG(5, 6))
	env := map[string]tn{"A": randTn(r, 2, 3), "B": randTn(r, 3, 4), "v": randTn(r, 3)}
	tests := []struct {
		src  string
		ops  Ops[tn]
		want string
	}{
		{"A + C", &dense{}, "column 5: unknown identifier C"},
		{"matmul(B, A)", &dense{}, "column 1: matmul: inner dimensions differ"},
		{"reshape(A, in, 2)", &dense{}, "in is not a constant"},
		{"B * v", &dense{}, "do not broadcast"},
		{"2 * matmul(A, B)", &wrongShape{}, "column 5: MatMul returned shape [4, 2], want [2, 4]"},
		{"1 + sigmoid(v)", &failing{}, "column 5: Sigmoid: out of memory"},
	}
	for _, tt := range tests {
		_, err := Eval(MustParse(tt.src), env, tt.ops)
		if err == nil || !strings.Contains(err.Error(), tt.want) {
			t.Errorf("Eval(%q) error %v, want %q", tt.src, err, tt.want)
		}
	}
}

// TestKronLoop makes sure the reference Kronecker product agrees with gonum's.
func TestKronLoop(t *testing.T) {
	r := rand.New(rand.NewPCG(7, 8))
	a, b := randTn(r, 2, 3).mats()[0], randTn(r, 4, 5).mats()[0]
	var want mat.Dense
	want.Kronecker(a, b)
	if !mat.EqualApprox(kronLoop(a, b), &want, 1e-14) {
		t.Fatal("kronLoop disagrees with mat.Kronecker")
	}
}
