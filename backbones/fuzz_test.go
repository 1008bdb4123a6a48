package backbones

import (
	"os"
	"path/filepath"
	"testing"
)

// FuzzReadHFConfig feeds config.json, which comes with downloaded models: a
// config is an error or an architecture within the bounds (nothing is allocated
// here; the bounds are what keep NewVision from being asked for terabytes), and
// matching it against a real weights file never panics.
func FuzzReadHFConfig(f *testing.F) {
	for _, p := range []string{"testdata/clip_vision_small.config.json", "testdata/timm_vit_small.config.json", "testdata/clip_text_small/config.json"} {
		raw, err := os.ReadFile(p)
		if err != nil {
			f.Fatal(err)
		}
		f.Add(raw)
	}
	f.Add([]byte(`{"model_type": "clip", "projection_dim": 24, "vision_config": {"hidden_size": 48, "num_attention_heads": 4, "intermediate_size": 96, "image_size": 64, "patch_size": 16, "num_hidden_layers": 3}, "text_config": {"vocab_size": 102, "eos_token_id": 101}}`))
	f.Add([]byte(`{"model_type": "vit", "num_hidden_layers": 1e9, "layer_norm_eps": 0}`))
	f.Add([]byte(`{"embed_dim": 64, "depth": 2, "num_heads": 4, "mlp_ratio": 1e300, "img_size": 32, "patch_size": 8}`))
	f.Add([]byte(`{"family": "clip", "image_size": 32, "patch_size": 8, "channels": 3, "width": 16, "layers": 1, "heads": 2, "mlp_dim": 32, "act": "gelu", "eps": 1e-5}`))
	f.Fuzz(func(t *testing.T, raw []byte) {
		p := filepath.Join(t.TempDir(), "config.json")
		if err := os.WriteFile(p, raw, 0o644); err != nil {
			t.Fatal(err)
		}
		vc, tc, err := ReadHFConfig(p)
		if err != nil {
			return
		}
		if tc != nil {
			if err := tc.Validate(); err != nil {
				t.Fatalf("accepted a text config that does not validate: %v", err)
			}
			_ = CheckText(*tc, "testdata/clip_text_small/model.safetensors", LoadOptions{Strict: true})
		}
		if vc.Width == 0 {
			return
		}
		if err := vc.Validate(); err != nil {
			t.Fatalf("accepted a config that does not validate: %v", err)
		}
		var shapes shapeList
		(&Vision{Cfg: vc}).build(&shapes)
		if n := shapes.count(); n > MaxParams {
			t.Fatalf("accepted %d parameters", n)
		}
		_ = CheckVision(vc, "testdata/clip_vision_small.safetensors", LoadOptions{Strict: true})
	})
}
