// Package methods_test checks the six methods' plans against the paper's counts.
package methods_test

import (
	"testing"

	"github.com/kadapt/kadapt/methods/adapter"
	"github.com/kadapt/kadapt/methods/compacter"
	"github.com/kadapt/kadapt/methods/finetune"
	"github.com/kadapt/kadapt/methods/kadaptation"
	"github.com/kadapt/kadapt/methods/linearprobe"
	"github.com/kadapt/kadapt/methods/lora"
	"github.com/kadapt/kadapt/plugins/plan"
)

func vitB32() plan.Backbone {
	return plan.StandardViT(plan.ViTConfig{Name: "clip-vit-b32", Layers: 12, Width: 768, Heads: 12, MLPDim: 3072, Patch: 32, Image: 224, EmbedDim: 512})
}

// The paper's trainable-parameter counts on CLIP ViT-B/32, head excluded
// (shared/reference/method-notes.md).
func TestTrainableCountsMatchThePaper(t *testing.T) {
	bb := vitB32()
	for _, tc := range []struct {
		name string
		plan func() (plan.Plan, error)
		want int64
	}{
		{"kadaptation", func() (plan.Plan, error) { return kadaptation.Plan(bb, kadaptation.Default()) }, 50176},
		{"adapter", func() (plan.Plan, error) { return adapter.Plan(bb, adapter.Default()) }, 1208064},
		{"lora", func() (plan.Plan, error) { return lora.Plan(bb, lora.Default()) }, 147456},
		{"compacter", func() (plan.Plan, error) { return compacter.Plan(bb, compacter.Default()) }, 48384},
		{"finetune", func() (plan.Plan, error) { return finetune.Plan(bb, finetune.Config{}) }, 87849216},
		{"linearprobe", func() (plan.Plan, error) { return linearprobe.Plan(bb) }, 0},
	} {
		t.Run(tc.name, func(t *testing.T) {
			p, err := tc.plan()
			if err != nil {
				t.Fatal(err)
			}
			got, err := plan.CountTrainable(p, bb)
			if err != nil {
				t.Fatal(err)
			}
			if got != tc.want {
				t.Fatalf("%d trainable parameters, want %d", got, tc.want)
			}
		})
	}
}

func TestBadHyperparametersAreErrors(t *testing.T) {
	bb := vitB32()
	c := kadaptation.Default()
	c.N = 5 // does not divide 768
	if _, err := kadaptation.Plan(bb, c); err == nil {
		t.Error("kadaptation with n=5 on width 768 planned")
	}
	l := lora.Default()
	l.Targets = []string{"qkv"}
	if _, err := lora.Plan(bb, l); err == nil {
		t.Error("lora with an unknown target planned")
	}
}

// KAdaptation's ablation keeps the per-layer bias alone (12·768 on ViT-B/32), and the
// initialisations it offers keep the paper's count.
func TestKAdaptationVariants(t *testing.T) {
	bb := vitB32()
	for _, tc := range []struct {
		name string
		edit func(*kadaptation.Config)
		want int64 // 0: an error
	}{
		{"bias only", func(c *kadaptation.Config) { c.Kronecker = false }, 12 * 768},
		{"paper init", func(c *kadaptation.Config) { c.Init = kadaptation.InitPaper }, 50176},
		{"released init", func(c *kadaptation.Config) { c.Init = kadaptation.InitReleased; c.Scale = 160 }, 50176},
		{"nothing to adapt", func(c *kadaptation.Config) { c.Kronecker, c.Bias = false, false }, 0},
		{"unknown init", func(c *kadaptation.Config) { c.Init = "xavier" }, 0},
		{"balanced init without std", func(c *kadaptation.Config) { c.Std = 0 }, 0},
	} {
		t.Run(tc.name, func(t *testing.T) {
			c := kadaptation.Default()
			tc.edit(&c)
			p, err := kadaptation.Plan(bb, c)
			if tc.want == 0 {
				if err == nil {
					t.Fatal("planned")
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			got, err := plan.CountTrainable(p, bb)
			if err != nil {
				t.Fatal(err)
			}
			if got != tc.want {
				t.Fatalf("%d trainable parameters, want %d", got, tc.want)
			}
		})
	}
}
