// Package backbones defines the vision transformers kadapt adapts — CLIP image towers,
// timm and Hugging Face ViTs — and CLIP's text tower, as one ViT definition on
// core/autograd, together with their presets, weight name maps and loaders.
//
// Every model exposes named sites where adaptation methods attach (see Site): each
// linear of each block, and each block's attention and MLP branch outputs. The host
// compiles a method plugin's plan into the hooks on those sites.
package backbones

import (
	"fmt"
	"math"
	"math/rand/v2"

	"github.com/kadapt/kadapt/core"
	"github.com/kadapt/kadapt/core/autograd"
)

// Linear is y = x·Wᵀ + b with hooks for adaptation: the effective weight and bias
// are W + WeightDelta() and b + BiasDelta(), and Branch(x) is added to the output.
type Linear struct {
	Site        string
	W, B        *autograd.Var // B may be nil
	WeightDelta func(tp *autograd.Tape) *autograd.Var
	BiasDelta   func(tp *autograd.Tape) *autograd.Var
	Branch      func(tp *autograd.Tape, x *autograd.Var) *autograd.Var
}

// Forward applies the linear with its hooks.
func (l *Linear) Forward(tp *autograd.Tape, x *autograd.Var) *autograd.Var {
	w, b := l.effective(tp)
	y := tp.Linear(x, w, b)
	if l.Branch != nil {
		y = tp.Add(y, l.Branch(tp, x))
	}
	return y
}

// ForwardAct is act(Forward(x)); without a Branch the bias and the activation are one
// epilogue (autograd's LinearAct).
func (l *Linear) ForwardAct(tp *autograd.Tape, x *autograd.Var, act core.UnaryOp) *autograd.Var {
	if l.Branch != nil {
		return tp.Unary(act, l.Forward(tp, x))
	}
	w, b := l.effective(tp)
	return tp.LinearAct(x, w, b, act)
}

// effective is the weight and bias with their deltas.
func (l *Linear) effective(tp *autograd.Tape) (w, b *autograd.Var) {
	w, b = l.W, l.B
	if l.WeightDelta != nil {
		w = tp.Add(w, l.WeightDelta(tp))
	}
	if l.BiasDelta != nil {
		if b == nil {
			b = l.BiasDelta(tp)
		} else {
			b = tp.Add(b, l.BiasDelta(tp))
		}
	}
	return w, b
}

// In and Out are the linear's input and output widths.
func (l *Linear) In() int  { return l.W.Shape()[1] }
func (l *Linear) Out() int { return l.W.Shape()[0] }

// Residual is a residual-branch site: After, when set, replaces the branch output h
// (before it joins the residual stream) by After(h). Adapter and Compacter live here,
// as h + up(act(down(LN(h)))).
type Residual struct {
	Site  string
	Dim   int
	After func(tp *autograd.Tape, h *autograd.Var) *autograd.Var
}

func (r *Residual) apply(tp *autograd.Tape, h *autograd.Var) *autograd.Var {
	if r.After == nil {
		return h
	}
	return r.After(tp, h)
}

// LayerNorm holds an affine layer norm's parameters.
type LayerNorm struct {
	W, B *autograd.Var
	Eps  float32
}

func (n *LayerNorm) Forward(tp *autograd.Tape, x *autograd.Var) *autograd.Var {
	return tp.LayerNorm(x, n.W, n.B, n.Eps)
}

// Block is a pre-LN transformer block.
type Block struct {
	LN1, LN2   LayerNorm
	Q, K, V, O Linear
	FC1, FC2   Linear
	Attn, MLP  Residual
	heads      int
	act        core.UnaryOp
	causal     bool
}

// Forward runs x [N, L, W] through the block.
func (b *Block) Forward(tp *autograd.Tape, x *autograd.Var) *autograd.Var {
	w := x.Shape()[2]
	h := b.LN1.Forward(tp, x)
	q, k, v := b.Q.Forward(tp, h), b.K.Forward(tp, h), b.V.Forward(tp, h)
	a := tp.MultiHeadAttention(q, k, v, b.heads, b.causal, float32(1/math.Sqrt(float64(w/b.heads))))
	x, h = tp.AddLayerNorm(x, b.Attn.apply(tp, b.O.Forward(tp, a)), b.LN2.W, b.LN2.B, b.LN2.Eps)
	h = b.FC2.Forward(tp, b.FC1.ForwardAct(tp, h, b.act))
	return tp.Add(x, b.MLP.apply(tp, h))
}

// Vision is an image tower.
type Vision struct {
	Cfg      Config
	Patch    *autograd.Var // [W, C, P, P]
	PatchB   *autograd.Var // [W] (timm, HF ViT) or nil (CLIP)
	Cls      *autograd.Var // [W]
	Pos      *autograd.Var // [L, W]
	LNPre    *LayerNorm    // CLIP only
	Blocks   []*Block
	LNPost   *LayerNorm    // CLIP: on the class token; timm/HF: over all tokens
	Proj     *autograd.Var // [E, W] (HF layout) or nil
	Head     *Linear       // a checkpoint's classifier (timm/HF ViT) or nil
	params   []*autograd.Var
	byName   map[string]*autograd.Var
	backend  core.Backend
	clsZeros map[int]*core.Tensor
}

// Output is what a forward pass yields.
type Output struct {
	Tokens *autograd.Var // [N, L, W] last hidden state (timm/HF: after the final norm)
	Pooled *autograd.Var // [N, W] pooled token before any projection
	Embeds *autograd.Var // [N, E] after the visual projection, or Pooled when there is none
	Logits *autograd.Var // [N, classes] when the checkpoint has a classifier head
}

// NewVision allocates a tower with zero weights; use InitRandom or a loader to fill it.
func NewVision(b core.Backend, cfg Config) (*Vision, error) {
	cfg, err := cfg.resolved()
	if err != nil {
		return nil, err
	}
	m := &Vision{Cfg: cfg, byName: map[string]*autograd.Var{}, backend: b}
	m.build(m)
	return m, nil
}

// Structure is the tower cfg describes, every parameter named and shaped as NewVision
// makes it but without storage (autograd.ParamShape): the model's own description,
// for a dry run, at no memory cost even for ViT-L. It cannot run.
func Structure(cfg Config) (*Vision, error) {
	cfg, err := cfg.resolved()
	if err != nil {
		return nil, err
	}
	m := &Vision{Cfg: cfg, byName: map[string]*autograd.Var{}}
	m.build(shapesOf{m})
	return m, nil
}

// shapesOf builds a Structure: m's parameters, registered as m.param registers them.
type shapesOf struct{ m *Vision }

func (s shapesOf) param(name string, shape ...int) *autograd.Var {
	p := autograd.ParamShape(name, core.Shape(shape))
	s.m.params = append(s.m.params, p)
	s.m.byName[name] = p
	return p
}

// build creates the tower's parameters through ps: m itself allocates them, a
// shapeList only records their shapes so they can be checked before any allocation.
func (m *Vision) build(ps paramSet) {
	cfg := m.Cfg
	w := cfg.Width
	m.Patch = ps.param("embed.patch.weight", w, cfg.Channels, cfg.PatchSize, cfg.PatchSize)
	if cfg.Family != CLIP {
		m.PatchB = ps.param("embed.patch.bias", w)
	}
	m.Cls = ps.param("embed.cls", w)
	m.Pos = ps.param("embed.pos", cfg.Tokens(), w)
	if cfg.Family == CLIP {
		m.LNPre = newLayerNorm(ps, "ln_pre", w, cfg.Eps)
	}
	for i := 0; i < cfg.Layers; i++ {
		m.Blocks = append(m.Blocks, newBlock(ps, fmt.Sprintf("blocks.%d", i), w, cfg.MLPDim, cfg.Heads, cfg.Act, cfg.Eps, false))
	}
	if cfg.Family == CLIP {
		m.LNPost = newLayerNorm(ps, "ln_post", w, cfg.Eps)
	} else {
		m.LNPost = newLayerNorm(ps, "norm", w, cfg.Eps)
	}
	if cfg.EmbedDim > 0 {
		m.Proj = ps.param("proj", cfg.EmbedDim, w)
	}
	if cfg.NumLabels > 0 {
		m.Head = &Linear{Site: "head", W: ps.param("head.weight", cfg.NumLabels, w), B: ps.param("head.bias", cfg.NumLabels)}
	}
}

// paramSet is what the vision and text towers share to build their common parts.
type paramSet interface {
	param(name string, shape ...int) *autograd.Var
}

func (m *Vision) param(name string, shape ...int) *autograd.Var {
	p := autograd.NewParam(m.backend, name, core.Shape(shape))
	m.params = append(m.params, p)
	m.byName[name] = p
	return p
}

func newLayerNorm(ps paramSet, name string, w int, eps float32) *LayerNorm {
	return &LayerNorm{W: ps.param(name+".weight", w), B: ps.param(name+".bias", w), Eps: eps}
}

func newBlock(ps paramSet, prefix string, w, mlp, heads int, act core.UnaryOp, eps float32, causal bool) *Block {
	lin := func(site string, out, in int) Linear {
		name := prefix + "." + site
		return Linear{Site: name, W: ps.param(name+".weight", out, in), B: ps.param(name+".bias", out)}
	}
	return &Block{
		LN1: *newLayerNorm(ps, prefix+".ln1", w, eps), LN2: *newLayerNorm(ps, prefix+".ln2", w, eps),
		Q: lin("attn.q", w, w), K: lin("attn.k", w, w), V: lin("attn.v", w, w), O: lin("attn.out", w, w),
		FC1: lin("mlp.fc1", mlp, w), FC2: lin("mlp.fc2", w, mlp),
		Attn: Residual{Site: prefix + ".attn", Dim: w}, MLP: Residual{Site: prefix + ".mlp", Dim: w},
		heads: heads, act: act, causal: causal,
	}
}

// Params lists every parameter in a fixed order (the order of the checkpoint format).
func (m *Vision) Params() []*autograd.Var { return m.params }

// Param finds a parameter by its kadapt name.
func (m *Vision) Param(name string) (*autograd.Var, bool) {
	p, ok := m.byName[name]
	return p, ok
}

// NumParams counts the tower's parameters, the classifier head excluded.
func (m *Vision) NumParams() int64 {
	var n int64
	for _, p := range m.params {
		if m.Head != nil && (p == m.Head.W || p == m.Head.B) {
			continue
		}
		n += int64(p.Shape().Size())
	}
	return n
}

// Forward runs pixels [N, C, H, W] (already preprocessed) through the tower.
func (m *Vision) Forward(tp *autograd.Tape, pixels *autograd.Var) Output {
	n := pixels.Shape()[0]
	w := m.Cfg.Width
	mark := tp.Mark()
	x := tp.PatchEmbed(pixels, m.Patch, m.PatchB, m.Cfg.PatchSize) // [N, L-1, W]
	cls := tp.Add(tp.Reshape(m.Cls, 1, 1, w), tp.Const(m.zeros(n, 1, w)))
	x = tp.Add(tp.Concat(1, cls, x), m.Pos)
	if m.LNPre != nil {
		x = m.LNPre.Forward(tp, x)
	}
	for _, blk := range m.Blocks {
		x = blk.Forward(tp, x)
		// Only what Backward reads and the residual stream outlive a block.
		tp.ReleaseUnsaved(mark, x)
	}
	var out Output
	if m.Cfg.Family == CLIP {
		out.Tokens = x
		out.Pooled = m.LNPost.Forward(tp, tp.Reshape(tp.Slice(x, 1, 0, 1), n, w))
	} else {
		out.Tokens = m.LNPost.Forward(tp, x)
		out.Pooled = tp.Reshape(tp.Slice(out.Tokens, 1, 0, 1), n, w)
	}
	out.Embeds = out.Pooled
	if m.Proj != nil {
		out.Embeds = tp.Linear(out.Pooled, m.Proj, nil)
	}
	if m.Head != nil {
		out.Logits = m.Head.Forward(tp, out.Pooled)
	}
	return out
}

// zeros returns an all-zero [n, 1, W] tensor, cached per batch size, that broadcasts
// the class token over the batch (Concat needs equal leading sizes).
func (m *Vision) zeros(n, one, w int) *core.Tensor {
	if t, ok := m.clsZeros[n]; ok {
		return t
	}
	if m.clsZeros == nil {
		m.clsZeros = map[int]*core.Tensor{}
	}
	t := m.backend.Alloc(core.Shape{n, one, w})
	m.clsZeros[n] = t
	return t
}

// Linears lists every adaptable linear in block order.
func (m *Vision) Linears() []*Linear {
	var ls []*Linear
	for _, b := range m.Blocks {
		ls = append(ls, &b.Q, &b.K, &b.V, &b.O, &b.FC1, &b.FC2)
	}
	return ls
}

// Residuals lists every residual-branch site in block order.
func (m *Vision) Residuals() []*Residual {
	var rs []*Residual
	for _, b := range m.Blocks {
		rs = append(rs, &b.Attn, &b.MLP)
	}
	return rs
}

// InitRandom fills the tower with a seeded initialisation close to the ones the
// original models were trained from (truncated-free normal, std 0.02; layer norms 1, 0).
// Benchmarks, dry runs and `host pretrain` start from it.
func (m *Vision) InitRandom(seed uint64) {
	initParams(m.backend, m.params, seed)
}

func initParams(b core.Backend, params []*autograd.Var, seed uint64) {
	rng := rand.New(rand.NewPCG(seed, 0x6b61646170742d31))
	for _, p := range params {
		data := make([]float32, p.Shape().Size())
		name := p.Name
		switch {
		case hasSuffix(name, ".bias"):
			// zeros
		case isNormWeight(name):
			for i := range data {
				data[i] = 1
			}
		default:
			for i := range data {
				data[i] = float32(rng.NormFloat64() * 0.02)
			}
		}
		b.Upload(p.Value, data)
	}
}

func hasSuffix(s, suf string) bool { return len(s) >= len(suf) && s[len(s)-len(suf):] == suf }

func isNormWeight(name string) bool {
	for _, suf := range []string{"ln1.weight", "ln2.weight", "ln_pre.weight", "ln_post.weight", "norm.weight", "ln_final.weight"} {
		if hasSuffix(name, suf) {
			return true
		}
	}
	return false
}
