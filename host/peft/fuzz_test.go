package peft

import (
	"math"
	"os"
	"path/filepath"
	"testing"
)

// FuzzReadConfig feeds adapter_config.json, which comes with downloaded adapters:
// an error naming the file, or a configuration whose ranks and scales are usable.
func FuzzReadConfig(f *testing.F) {
	f.Add([]byte(okConfig))
	f.Add([]byte(`{"peft_type": "LORA", "r": 4, "lora_alpha": 8, "use_rslora": true, "alpha_pattern": {"fc1": 16}, "rank_pattern": {"layers.1.mlp.fc1": 2}, "target_modules": ["q_proj", "fc1"]}`))
	f.Add([]byte(`{"peft_type": "LORA", "r": 2, "lora_alpha": 2, "target_modules": ["fc2", "k_proj"], "layers_to_transform": [1], "layers_pattern": "layers"}`))
	f.Add([]byte(`{"peft_type": "LORA", "r": 2, "target_modules": ".*\\.layers\\.[02]\\.self_attn\\.(k|out)_proj", "exclude_modules": "x"}`))
	f.Add([]byte(`{"peft_type": "LORA", "r": 2, "lora_alpha": 1e308, "target_modules": "all-linear", "modules_to_save": ["classifier"]}`))
	f.Fuzz(func(t *testing.T, raw []byte) {
		path := filepath.Join(t.TempDir(), ConfigFile)
		if err := os.WriteFile(path, raw, 0o644); err != nil {
			t.Fatal(err)
		}
		a := &Adapter{Dir: filepath.Dir(path)}
		if err := a.readConfig(path); err != nil {
			return
		}
		for layer := range 3 {
			for _, target := range Targets {
				name, err := HFModuleName(layer, target)
				if err != nil {
					t.Fatal(err)
				}
				a.sel.targets(name)
				r, alpha := a.rankAlpha(name)
				if r <= 0 {
					t.Fatalf("%s: rank %d", name, r)
				}
				if s := a.scale(r, alpha); math.IsNaN(s) || math.IsInf(s, 0) || math.Abs(s) > maxAlpha {
					t.Fatalf("%s: scale %v", name, s)
				}
			}
		}
	})
}
