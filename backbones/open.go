package backbones

import (
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"

	"github.com/kadapt/kadapt/backbones/safetensors"
	"github.com/kadapt/kadapt/core"
)

// Model is a loaded checkpoint: an image tower and, for CLIP, the text tower and the
// files to tokenise and preprocess for it.
type Model struct {
	Vision  *Vision
	Text    *Text  // nil when the checkpoint has no text tower
	Weights string // the safetensors file read
	Dir     string // the model folder, "" for a bare file
}

// OpenOptions say where a model's architecture comes from when the path alone does
// not tell.
type OpenOptions struct {
	Config   string // a config.json; default: <dir>/config.json, then shapes in the file
	Preset   string // a preset name, used when there is no config
	NoText   bool   // skip the text tower even when the checkpoint has one
	NoStrict bool   // tolerate unexpected keys
}

// WeightsNames are the weights files a model folder may hold, in the order looked for.
var WeightsNames = []string{"model.safetensors", "open_clip_model.safetensors", "weights.safetensors"}

// FolderContents says what Open and the commands around it read from a model folder;
// errors about a missing or incomplete folder quote it, so a newcomer learns the
// layout from the first mistake.
const FolderContents = "a model folder holds its weights as model.safetensors (or open_clip_model.safetensors, weights.safetensors); " +
	"config.json, the architecture (Hugging Face's; optional for OpenAI CLIP weights and kadapt's own exports, whose shapes say it); " +
	"for a CLIP model's text tower, the tokenizer as vocab.json and merges.txt, or tokenizer.json; " +
	"and optionally preprocessor_config.json (image size, crop and normalisation; the architecture's defaults otherwise). " +
	"A Hugging Face CLIP folder such as openai/clip-vit-base-patch32 has all of these"

// lfsPointer starts a Git LFS pointer file: what a clone without `git lfs` leaves in
// place of the weights.
const lfsPointer = "version https://git-lfs.github.com/spec/"

// checkNotPointer refuses a weights file that is a Git LFS pointer, which would
// otherwise fail later as a malformed safetensors header.
func checkNotPointer(path string) error {
	f, err := os.Open(path)
	if err != nil {
		return fmt.Errorf("model %s: %w", path, err)
	}
	defer f.Close()
	head := make([]byte, len(lfsPointer))
	if n, _ := io.ReadFull(f, head); n == len(head) && string(head) == lfsPointer {
		return fmt.Errorf("model %s is a Git LFS pointer, not the weights: run `git lfs pull` in its folder (or download the file itself)", path)
	}
	return nil
}

// incompleteFolder explains a model folder without weights, listing what it holds.
func incompleteFolder(dir string) error {
	entries, _ := os.ReadDir(dir)
	var names []string
	converted := ""
	for _, e := range entries {
		names = append(names, e.Name())
		switch filepath.Ext(e.Name()) {
		case ".bin", ".pt", ".pth", ".ckpt", ".h5", ".msgpack":
			converted = fmt.Sprintf(" (%s is a PyTorch/TF/Flax checkpoint: convert it to safetensors first)", e.Name())
		}
	}
	have := "it is empty"
	if len(names) > 0 {
		have = "it holds " + strings.Join(names, ", ")
	}
	return fmt.Errorf("model folder %s has no weights: %s%s; %s", dir, have, converted, FolderContents)
}

// Open loads a model from a Hugging Face folder or a .safetensors file onto b.
func Open(b core.Backend, path string, opt OpenOptions) (*Model, error) {
	weights, err := ResolveWeightsPath(path)
	if err != nil {
		return nil, err
	}
	m := &Model{Weights: weights}
	if st, err := os.Stat(path); err == nil && st.IsDir() {
		m.Dir = path
	}
	cfgPath := opt.Config
	if cfgPath == "" && m.Dir != "" {
		if _, err := os.Stat(filepath.Join(m.Dir, "config.json")); err == nil {
			cfgPath = filepath.Join(m.Dir, "config.json")
		}
	}
	var vc Config
	var tc *TextConfig
	switch {
	case cfgPath != "":
		vc, tc, err = ReadHFConfig(cfgPath)
	case opt.Preset != "":
		vc, err = Preset(opt.Preset)
		if err == nil && strings.HasPrefix(opt.Preset, "clip-") {
			t := CLIPTextB
			if vc.EmbedDim != t.EmbedDim {
				t.EmbedDim, t.Width, t.MLPDim, t.Heads = vc.EmbedDim, vc.EmbedDim, 4*vc.EmbedDim, vc.EmbedDim/64
			}
			tc = &t
		}
	default:
		vc, tc, err = InferConfig(weights)
	}
	if err != nil {
		return nil, err
	}
	if vc.Width == 0 {
		return nil, fmt.Errorf("%s: the checkpoint describes no image tower", path)
	}
	// Sizes are checked against the weights before anything is allocated.
	if err := CheckVision(vc, weights, LoadOptions{Strict: !opt.NoStrict}); err != nil {
		return nil, err
	}
	if m.Vision, err = NewVision(b, vc); err != nil {
		return nil, err
	}
	if err := LoadVision(m.Vision, weights, LoadOptions{Strict: !opt.NoStrict}); err != nil {
		return nil, err
	}
	if tc != nil && !opt.NoText {
		has, err := HasTextTower(weights)
		if err != nil {
			return nil, err
		}
		if has {
			if err := CheckText(*tc, weights, LoadOptions{Strict: !opt.NoStrict}); err != nil {
				return nil, err
			}
			if m.Text, err = NewText(b, *tc); err != nil {
				return nil, err
			}
			if err := LoadText(m.Text, weights, LoadOptions{Strict: !opt.NoStrict}); err != nil {
				return nil, err
			}
		}
	}
	return m, nil
}

// InferConfig reads the architecture from tensor shapes, for bare checkpoints that
// come without a config.json (OpenAI's CLIP weights converted to safetensors, kadapt's
// own exports). Head counts follow CLIP's convention of 64-wide heads.
func InferConfig(path string) (Config, *TextConfig, error) {
	f, err := safetensors.Open(path)
	if err != nil {
		return Config{}, nil, err
	}
	defer f.Close()
	if meta := f.Metadata(); meta["kadapt.config"] != "" {
		tmp, err := os.CreateTemp("", "kadapt-config-*.json")
		if err != nil {
			return Config{}, nil, err
		}
		defer os.Remove(tmp.Name())
		if _, err := tmp.WriteString(meta["kadapt.config"]); err != nil {
			return Config{}, nil, err
		}
		tmp.Close()
		vc, _, err := ReadHFConfig(tmp.Name())
		if err != nil {
			return Config{}, nil, fmt.Errorf("%s: metadata kadapt.config: %v", path, err)
		}
		return vc, nil, nil
	}
	naming, _, err := DetectNaming(f.Names())
	if err != nil {
		return Config{}, nil, fmt.Errorf("%s: %v", path, err)
	}
	shape := func(key string) []int {
		info, ok := f.Info(key)
		if !ok {
			return nil
		}
		return info.Shape
	}
	count := func(prefix string) int {
		n := 0
		for {
			if shape(fmt.Sprintf(prefix, n)) == nil {
				return n
			}
			n++
		}
	}
	switch naming {
	case NamingOpenAI:
		conv := shape("visual.conv1.weight")
		pos := shape("visual.positional_embedding")
		proj := shape("visual.proj")
		fc := shape("visual.transformer.resblocks.0.mlp.c_fc.weight")
		if len(conv) != 4 || len(pos) != 2 || len(proj) != 2 || len(fc) != 2 {
			return Config{}, nil, fmt.Errorf("%s: cannot infer the architecture: missing or odd visual.conv1/positional_embedding/proj", path)
		}
		grid := 1
		for grid*grid < pos[0]-1 {
			grid++
		}
		vc := clipVision("openai-clip", conv[2], conv[0], count("visual.transformer.resblocks.%d.ln_1.weight"), conv[0]/64, proj[1], grid*conv[2])
		vc.MLPDim = fc[0]
		vc, err = vc.resolved()
		if err != nil {
			return Config{}, nil, fmt.Errorf("%s: %v", path, err)
		}
		var tc *TextConfig
		if tok := shape("token_embedding.weight"); len(tok) == 2 {
			tpos, tproj, tfc := shape("positional_embedding"), shape("text_projection"), shape("transformer.resblocks.0.mlp.c_fc.weight")
			if len(tpos) == 2 && len(tproj) == 2 && len(tfc) == 2 {
				tc = &TextConfig{Vocab: tok[0], Context: tpos[0], Width: tok[1], Layers: count("transformer.resblocks.%d.ln_1.weight"),
					Heads: tok[1] / 64, MLPDim: tfc[0], EmbedDim: tproj[1], Act: core.QuickGELU, Eps: CLIPLayerNormEps, EOSID: tok[0] - 1, PoolArgmax: true}
			}
		}
		return vc, tc, nil
	}
	return Config{}, nil, fmt.Errorf("%s: a %s checkpoint does not say its architecture: put its config.json beside it, or name one (--model-config; --config in embed, preprocess and zeroshot) or a --backbone preset; %s", path, naming, FolderContents)
}
