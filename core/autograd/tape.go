package autograd

import (
	"fmt"

	"github.com/kadapt/kadapt/core"
)

// Tape records one forward pass and owns every tensor its ops allocate. A tape is used
// by one goroutine at a time; Reset after each step lets it be reused indefinitely.
type Tape struct {
	// Training makes Dropout drop and BatchNorm use (and update) batch statistics.
	Training bool

	b      core.Backend
	noGrad bool
	nodes  []*Var         // recorded nodes that require grad, in creation order
	values []*core.Tensor // values and saved tensors released by Reset
	// saved holds the storages some recorded backward closure reads: what
	// ReleaseUnsaved must keep.
	saved       map[core.Storage]struct{}
	seed        uint64
	dropoutCall uint64
	host        []float32 // reusable host buffer for index checks and masks
}

// NewTape returns an empty tape on b with gradients enabled.
func NewTape(b core.Backend) *Tape { return &Tape{b: b, saved: map[core.Storage]struct{}{}} }

// Backend is the backend every op of the tape runs on.
func (tp *Tape) Backend() core.Backend { return tp.b }

// SetGradEnabled turns gradient recording on or off and returns the previous setting.
// With it off (no-grad mode, for evaluation) ops record nothing and never allocate
// gradients.
func (tp *Tape) SetGradEnabled(on bool) (prev bool) {
	prev = !tp.noGrad
	tp.noGrad = !on
	return prev
}

// SetSeed sets the base seed of Dropout and restarts its call counter, so that the
// masks of a run are reproducible.
func (tp *Tape) SetSeed(seed uint64) {
	tp.seed = seed
	tp.dropoutCall = 0
}

// Const wraps a caller-owned tensor. It needs no gradient and the tape never releases it.
func (tp *Tape) Const(t *core.Tensor) *Var {
	return &Var{Value: t, Name: "const"}
}

// Variable wraps a caller-owned tensor as a leaf that requires a gradient (unless in
// no-grad mode). The tape owns the gradient: Reset releases it.
func (tp *Tape) Variable(t *core.Tensor) *Var {
	v := &Var{Value: t, Name: "variable", requiresGrad: !tp.noGrad}
	if v.requiresGrad {
		tp.nodes = append(tp.nodes, v)
	}
	return v
}

// Input uploads data into a pooled tensor of the given shape that Reset releases.
func (tp *Tape) Input(data []float32, shape ...int) *Var {
	s := core.Shape(shape)
	for _, d := range s {
		if d <= 0 {
			panic(fmt.Sprintf("autograd: Input: invalid shape %v", s))
		}
	}
	if len(data) != s.Size() {
		panic(fmt.Sprintf("autograd: Input: %d values do not fill shape %v (%d elements)", len(data), s, s.Size()))
	}
	t := tp.output(s)
	tp.b.Upload(t, data)
	return &Var{Value: t, Name: "input"}
}

// Backward seeds d loss / d loss = 1 and propagates gradients through every recorded
// node, adding into the gradients of trainable parameters. As in PyTorch, an
// intermediate node's gradient is released as soon as it has been propagated, so the
// backward pass holds only the gradients still in flight; afterwards only leaves
// (parameters and Variables) have a Grad. Calling Backward twice on one tape adds the
// parameter gradients twice.
func (tp *Tape) Backward(loss *Var) {
	if loss.Value.Size() != 1 {
		panic(fmt.Sprintf("autograd: Backward: loss %q has shape %v, want one element", loss.Name, loss.Shape()))
	}
	if !loss.RequiresGrad() {
		panic(fmt.Sprintf("autograd: Backward: loss %q does not require grad (no trainable input, or recorded in no-grad mode)", loss.Name))
	}
	tp.dropGrads()
	g, fresh := tp.gradOf(loss)
	if fresh {
		tp.b.Fill(g, 1)
	} else {
		one := allocShape(tp.b, g.Shape())
		tp.b.Fill(one, 1)
		tp.b.Axpby(g, 1, one, 1)
		tp.b.Release(one)
	}
	for i := len(tp.nodes) - 1; i >= 0; i-- {
		n := tp.nodes[i]
		if n.Grad == nil || n.backward == nil {
			continue
		}
		n.backward()
		if n.ownsGrad {
			tp.b.Release(n.Grad)
			n.ownsGrad = false
		}
		n.Grad = nil
	}
	// A view's gradient handle shares storage with its base, which may be gone now.
	for _, n := range tp.nodes {
		if n.view != nil {
			n.Grad = nil
		}
	}
}

// Reset releases every value and gradient the tape allocated since the last Reset.
// Parameters, Consts and Variables' values are untouched. Vars made by the tape must not
// be used afterwards.
func (tp *Tape) Reset() {
	tp.dropGrads()
	for i, t := range tp.values {
		tp.b.Release(t)
		tp.values[i] = nil
	}
	tp.values = tp.values[:0]
	clear(tp.nodes)
	tp.nodes = tp.nodes[:0]
	clear(tp.saved)
}

// Mark is a position in the tape's allocations, for ReleaseUnsaved.
type Mark int

// Mark returns the current position: ReleaseUnsaved(m) considers only values allocated
// after it.
func (tp *Tape) Mark() Mark { return Mark(len(tp.values)) }

// ReleaseUnsaved releases the values allocated since m that no recorded backward
// closure reads, except keep's, as PyTorch frees the tensors nothing references any
// more: a forward pass then holds only what Backward needs (in no-grad mode, only keep).
// Models call it where a stretch of work is done, such as the end of a transformer
// block, passing what flows on. The caller must not read a released value again:
// only keep, values saved for backward, and values allocated before m stay valid.
func (tp *Tape) ReleaseUnsaved(m Mark, keep ...*Var) {
	kept := make(map[core.Storage]struct{}, len(keep))
	for _, k := range keep {
		kept[k.Value.Storage()] = struct{}{}
	}
	w := int(m)
	for _, t := range tp.values[m:] {
		_, saved := tp.saved[t.Storage()]
		_, isKept := kept[t.Storage()]
		if saved || isKept {
			tp.values[w] = t
			w++
			continue
		}
		tp.b.Release(t)
	}
	clear(tp.values[w:])
	tp.values = tp.values[:w]
}

// save marks tensors as read by a recorded backward closure.
func (tp *Tape) save(ts ...*core.Tensor) {
	for _, t := range ts {
		if t != nil {
			tp.saved[t.Storage()] = struct{}{}
		}
	}
}

// dropGrads releases the gradients of tape nodes; parameter gradients persist.
func (tp *Tape) dropGrads() {
	for _, n := range tp.nodes {
		if n.ownsGrad {
			tp.b.Release(n.Grad)
			n.ownsGrad = false
		}
		if !n.param {
			n.Grad = nil
		}
	}
}

// alloc returns a zero-filled tensor that Reset releases.
func (tp *Tape) alloc(shape core.Shape) *core.Tensor {
	t := allocShape(tp.b, shape)
	tp.values = append(tp.values, t)
	return t
}

// output is alloc without the zero fill, for an op's result that the op writes in
// full before anything reads it.
func (tp *Tape) output(shape core.Shape) *core.Tensor {
	t := allocUninitShape(tp.b, shape)
	tp.values = append(tp.values, t)
	return t
}

// scratch returns a zero-filled temporary the caller releases with tp.b.Release.
func (tp *Tape) scratch(shape core.Shape) *core.Tensor { return allocShape(tp.b, shape) }

// node wraps an op's output. It requires grad when gradients are enabled and any input
// does; only then is backward kept and the node recorded, and the value and the
// inputs' values are saved for it (see nodeSaving).
func (tp *Tape) node(name string, value *core.Tensor, backward func(), inputs ...*Var) *Var {
	v := tp.record(name, value, backward, inputs)
	if v.backward != nil {
		tp.save(value)
		for _, in := range inputs {
			if in != nil {
				tp.save(in.Value)
			}
		}
	}
	return v
}

// nodeSaving is node for an op that names exactly the tensors its backward closure
// reads (nil entries are skipped), so that ReleaseUnsaved may free the rest.
func (tp *Tape) nodeSaving(name string, value *core.Tensor, saves []*core.Tensor, backward func(), inputs ...*Var) *Var {
	v := tp.record(name, value, backward, inputs)
	if v.backward != nil {
		tp.save(saves...)
	}
	return v
}

func (tp *Tape) record(name string, value *core.Tensor, backward func(), inputs []*Var) *Var {
	v := &Var{Value: value, Name: name}
	if tp.noGrad {
		return v
	}
	for _, in := range inputs {
		if in != nil && in.RequiresGrad() {
			v.requiresGrad = true
			break
		}
	}
	if v.requiresGrad {
		v.backward = backward
		tp.nodes = append(tp.nodes, v)
	}
	return v
}

// crossSaves is what a product's backward reads: each operand's gradient needs the
// other operand.
func crossSaves(a, b *Var) []*core.Tensor {
	var saves []*core.Tensor
	if needs(a) {
		saves = append(saves, b.Value)
	}
	if needs(b) {
		saves = append(saves, a.Value)
	}
	return saves
}

// needs reports whether Backward must compute v's gradient.
func needs(v *Var) bool { return v != nil && v.RequiresGrad() }

// gradOf returns v's gradient, allocating it on first need. fresh reports that nothing
// has been written to it yet: the caller must then overwrite all of it (beta = 0,
// accumulate = false), since a fresh intermediate gradient is not zero-filled. Callers
// that add into it or write only part of it use gradZeroed.
func (tp *Tape) gradOf(v *Var) (g *core.Tensor, fresh bool) {
	return tp.grad(v, false)
}

// gradZeroed is gradOf for callers that only add into the gradient or write part of
// it: a fresh gradient is zero-filled.
func (tp *Tape) gradZeroed(v *Var) *core.Tensor {
	g, _ := tp.grad(v, true)
	return g
}

func (tp *Tape) grad(v *Var, zero bool) (g *core.Tensor, fresh bool) {
	if v.Grad != nil {
		return v.Grad, false
	}
	switch {
	case v.view != nil:
		pg, f := tp.grad(v.view, zero)
		v.Grad = pg.Reshape(v.Value.Shape()...)
		return v.Grad, f
	case v.param:
		// Persistent: allocated once, outside the tape's lists, so Reset keeps it.
		v.Grad = allocShape(tp.b, v.Value.Shape())
	case zero:
		v.Grad = allocShape(tp.b, v.Value.Shape())
		v.ownsGrad = true
	default:
		v.Grad = allocUninitShape(tp.b, v.Value.Shape())
		v.ownsGrad = true
	}
	return v.Grad, true
}

// passGrad hands y's gradient to x as x's own when x has none yet and would receive it
// unchanged (an input of an addition with y's shape): the copy PyTorch avoids by
// passing the same tensor. y's gradient is dead once y's backward has run, so x may
// accumulate into it. Parameters and views keep their own gradient buffers.
func (tp *Tape) passGrad(y, x *Var) bool {
	if x.Grad != nil || x.param || x.view != nil || !y.ownsGrad || !x.Shape().Equal(y.Shape()) {
		return false
	}
	x.Grad, x.ownsGrad = y.Grad, true
	y.ownsGrad = false
	return true
}

func beta(fresh bool) float32 {
	if fresh {
		return 0
	}
	return 1
}

// padTo views t with leading size-1 axes up to rank.
func padTo(t *core.Tensor, rank int) *core.Tensor {
	if t.Rank() == rank {
		return t
	}
	s := make([]int, rank)
	for i := range s {
		s[i] = 1
	}
	copy(s[rank-t.Rank():], t.Shape())
	return t.Reshape(s...)
}

// reduceInto adds alpha·src into g (overwriting when fresh), summing over the axes
// along which g's shape was broadcast to src's: how broadcasting is undone.
func (tp *Tape) reduceInto(g *core.Tensor, fresh bool, src *core.Tensor, alpha float32) {
	if g.Size() == src.Size() {
		tp.b.Axpby(g, alpha, src, beta(fresh))
		return
	}
	gv := padTo(g, src.Rank())
	if alpha == 1 {
		tp.b.Reduce(core.ReduceSum, gv, src, !fresh)
		return
	}
	tmp := tp.scratch(gv.Shape())
	tp.b.Reduce(core.ReduceSum, tmp, src, false)
	tp.b.Axpby(gv, alpha, tmp, beta(fresh))
	tp.b.Release(tmp)
}

// accumulate adds alpha times the tensor that fill writes (of shape out) into v's
// gradient, reducing broadcast axes. When the gradient is fresh and the same size, fill
// writes into it directly and no temporary is needed.
func (tp *Tape) accumulate(v *Var, out core.Shape, alpha float32, fill func(dst *core.Tensor)) {
	g, fresh := tp.gradOf(v)
	if fresh && alpha == 1 && g.Size() == out.Size() {
		if !g.Shape().Equal(out) {
			g = g.Reshape(out...)
		}
		fill(g)
		return
	}
	tmp := tp.scratch(out)
	fill(tmp)
	tp.reduceInto(g, fresh, tmp, alpha)
	tp.b.Release(tmp)
}

// ones returns a temporary of the given shape filled with 1, for broadcasting through
// a matrix product.
func (tp *Tape) ones(shape ...int) *core.Tensor {
	t := tp.b.Alloc(core.Shape(shape))
	tp.b.Fill(t, 1)
	return t
}

// hostBuf returns a reusable host slice of n elements.
func (tp *Tape) hostBuf(n int) []float32 {
	if cap(tp.host) < n {
		tp.host = make([]float32, n)
	}
	return tp.host[:n]
}

// checkIndices downloads idx and verifies that it holds integers in [0, n), unless the
// backend checks them on the device (core.DeferredIndexChecks).
func (tp *Tape) checkIndices(op, what string, idx *core.Tensor, n int) {
	if _, deferred := tp.b.(core.DeferredIndexChecks); deferred {
		return
	}
	buf := tp.hostBuf(idx.Size())
	tp.b.Download(buf, idx)
	for i, x := range buf {
		if x != x || x < 0 || x >= float32(n) || x != float32(int(x)) {
			panic(fmt.Sprintf("autograd: %s: %s[%d] = %v is not an integer in [0, %d)", op, what, i, x, n))
		}
	}
}

func shapePanic(op string, format string, args ...any) {
	panic(fmt.Sprintf("autograd: %s: ", op) + fmt.Sprintf(format, args...))
}
