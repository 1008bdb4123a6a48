package plan

import "fmt"

// ViTConfig sizes a standard vision transformer for StandardViT.
type ViTConfig struct {
	Name     string
	Layers   int
	Width    int
	Heads    int
	MLPDim   int
	Patch    int // patch side in pixels
	Image    int // image side in pixels
	Channels int // input channels; 0 means 3
	// EmbedDim is CLIP's projection size; 0 means no projection (a plain ViT, with
	// a patch-embedding bias and a final norm.* instead of ln_pre/ln_post/proj).
	EmbedDim int
}

// StandardViT describes a ViT with the sites and parameter names of the package
// documentation, CLIP's layout when EmbedDim > 0. Real backbones describe themselves;
// this is the same description for tests and tools that have no weights at hand.
func StandardViT(c ViTConfig) Backbone {
	ch := c.Channels
	if ch == 0 {
		ch = 3
	}
	w := c.Width
	bb := Backbone{Name: c.Name, Layers: c.Layers, Width: w, Heads: c.Heads, MLPDim: c.MLPDim, EmbedDim: c.EmbedDim}
	add := func(name string, shape ...int) {
		bb.Params = append(bb.Params, ParamInfo{Name: name, Shape: shape})
	}
	clip := c.EmbedDim > 0
	add("embed.patch.weight", w, ch, c.Patch, c.Patch)
	if !clip {
		add("embed.patch.bias", w)
	}
	tokens := 1
	if c.Patch > 0 {
		tokens += (c.Image / c.Patch) * (c.Image / c.Patch)
	}
	add("embed.cls", w)
	add("embed.pos", tokens, w)
	if clip {
		add("ln_pre.weight", w)
		add("ln_pre.bias", w)
	}
	for i := range c.Layers {
		p := fmt.Sprintf("blocks.%d.", i)
		linear := func(name string, in, out int) {
			add(p+name+".weight", out, in)
			add(p+name+".bias", out)
			bb.Sites = append(bb.Sites, Site{Name: p + name, Kind: Linear, Layer: i, In: in, Out: out})
		}
		add(p+"ln1.weight", w)
		add(p+"ln1.bias", w)
		add(p+"ln2.weight", w)
		add(p+"ln2.bias", w)
		for _, n := range []string{"q", "k", "v", "out"} {
			linear("attn."+n, w, w)
		}
		linear("mlp.fc1", w, c.MLPDim)
		linear("mlp.fc2", c.MLPDim, w)
		bb.Sites = append(bb.Sites,
			Site{Name: p + "attn", Kind: Residual, Layer: i, Dim: w},
			Site{Name: p + "mlp", Kind: Residual, Layer: i, Dim: w})
	}
	if clip {
		add("ln_post.weight", w)
		add("ln_post.bias", w)
		add("proj", c.EmbedDim, w)
	} else {
		add("norm.weight", w)
		add("norm.bias", w)
	}
	return bb
}
