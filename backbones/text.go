package backbones

import (
	"fmt"

	"github.com/kadapt/kadapt/core"
	"github.com/kadapt/kadapt/core/autograd"
)

// Text is CLIP's text tower: token and position embeddings, causal pre-LN blocks, a
// final layer norm, pooling at the end-of-text token and the text projection. kadapt
// uses it to initialise classification heads and for zero-shot prediction; it is never
// adapted, so it always runs without gradients.
type Text struct {
	Cfg     TextConfig
	Token   *autograd.Var // [V, W]
	Pos     *autograd.Var // [Context, W]
	Blocks  []*Block
	LNFinal *LayerNorm
	Proj    *autograd.Var // [E, W] or nil
	params  []*autograd.Var
	byName  map[string]*autograd.Var
	backend core.Backend
}

// NewText allocates a text tower with zero weights.
func NewText(b core.Backend, cfg TextConfig) (*Text, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	t := &Text{Cfg: cfg, byName: map[string]*autograd.Var{}, backend: b}
	t.build(t)
	return t, nil
}

// build creates the tower's parameters through ps (see Vision.build).
func (t *Text) build(ps paramSet) {
	cfg := t.Cfg
	t.Token = ps.param("text.token", cfg.Vocab, cfg.Width)
	t.Pos = ps.param("text.pos", cfg.Context, cfg.Width)
	for i := 0; i < cfg.Layers; i++ {
		t.Blocks = append(t.Blocks, newBlock(ps, fmt.Sprintf("text.blocks.%d", i), cfg.Width, cfg.MLPDim, cfg.Heads, cfg.Act, cfg.Eps, true))
	}
	t.LNFinal = newLayerNorm(ps, "text.ln_final", cfg.Width, cfg.Eps)
	if cfg.EmbedDim > 0 {
		t.Proj = ps.param("text.proj", cfg.EmbedDim, cfg.Width)
	}
}

func (t *Text) param(name string, shape ...int) *autograd.Var {
	p := autograd.NewParam(t.backend, name, core.Shape(shape))
	p.SetTrainable(false)
	t.params = append(t.params, p)
	t.byName[name] = p
	return p
}

// Params lists the tower's parameters in a fixed order.
func (t *Text) Params() []*autograd.Var { return t.params }

// Param finds a parameter by its kadapt name.
func (t *Text) Param(name string) (*autograd.Var, bool) {
	p, ok := t.byName[name]
	return p, ok
}

// TextOutput is what the text tower yields.
type TextOutput struct {
	Tokens *autograd.Var // [N, L, W] after the final layer norm
	Pooled *autograd.Var // [N, W] at the end-of-text position
	Embeds *autograd.Var // [N, E] after the projection (Pooled when there is none)
}

// Forward encodes token ids [N][L] (every row the same length L <= Context).
func (t *Text) Forward(tp *autograd.Tape, ids [][]int) (TextOutput, error) {
	n := len(ids)
	if n == 0 {
		return TextOutput{}, fmt.Errorf("text tower: no sequences")
	}
	l := len(ids[0])
	if l > t.Cfg.Context {
		return TextOutput{}, fmt.Errorf("text tower: sequence length %d exceeds the context of %d", l, t.Cfg.Context)
	}
	flat := make([]float32, 0, n*l)
	pool := make([]float32, n)
	for r, row := range ids {
		if len(row) != l {
			return TextOutput{}, fmt.Errorf("text tower: sequence %d has length %d, want %d", r, len(row), l)
		}
		best := 0
		found := false
		for j, id := range row {
			if id < 0 || id >= t.Cfg.Vocab {
				return TextOutput{}, fmt.Errorf("text tower: token id %d at [%d,%d] outside the vocabulary of %d", id, r, j, t.Cfg.Vocab)
			}
			flat = append(flat, float32(id))
			switch {
			case t.Cfg.PoolArgmax:
				if id > row[best] {
					best = j
				}
			case !found && id == t.Cfg.EOSID:
				best, found = j, true
			}
		}
		// Pooling picks row r's token from the flattened [N·L, W] activations.
		pool[r] = float32(r*l + best)
	}
	// The index tensors belong to the tape: IndexSelect's backward pass reads them,
	// so they must live until Reset, not just until Forward returns.
	idx := tp.Input(flat, n*l).Value
	poolIdx := tp.Input(pool, n).Value

	mark := tp.Mark()
	x := tp.Reshape(tp.IndexSelect(t.Token, 0, idx), n, l, t.Cfg.Width)
	x = tp.Add(x, tp.Slice(t.Pos, 0, 0, l))
	for _, blk := range t.Blocks {
		x = blk.Forward(tp, x)
		tp.ReleaseUnsaved(mark, x)
	}
	x = t.LNFinal.Forward(tp, x)
	out := TextOutput{Tokens: x}
	out.Pooled = tp.IndexSelect(tp.Reshape(x, n*l, t.Cfg.Width), 0, poolIdx)
	out.Embeds = out.Pooled
	if t.Proj != nil {
		out.Embeds = tp.Linear(out.Pooled, t.Proj, nil)
	}
	return out, nil
}

// InitRandom fills the tower with a seeded initialisation (tests and benchmarks).
func (t *Text) InitRandom(seed uint64) { initParams(t.backend, t.params, seed) }
