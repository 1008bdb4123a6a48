package main

import (
	"reflect"
	"testing"

	"github.com/kadapt/kadapt/backbones"
	"github.com/kadapt/kadapt/core/backend/cpu"
	"github.com/kadapt/kadapt/host/adapt"
	"github.com/kadapt/kadapt/plugins/plan"
)

// TestDryRunDescribesTheModelARunLoads checks, for every preset and the built-in
// backbone, that the dry run shows a plugin exactly what a real run shows it: the
// loaded tower's parameters (names, shapes, order) and sites.
func TestDryRunDescribesTheModelARunLoads(t *testing.T) {
	b := cpu.New()
	cases := map[string]RunConfig{"built-in": {}}
	for name := range backbones.Presets {
		cases[name] = RunConfig{Backbone: name}
	}
	for name, rc := range cases {
		got, cfg, err := dryRunBackbone(rc)
		if err != nil {
			t.Fatalf("%s: %v", name, err)
		}
		// What runJob describes: a tower as backbones.Open allocates it.
		v, err := backbones.NewVision(b, cfg)
		if err != nil {
			t.Fatalf("%s: %v", name, err)
		}
		want := adapt.Describe(v)
		if !reflect.DeepEqual(got, want) {
			for i := range min(len(got.Params), len(want.Params)) {
				if !reflect.DeepEqual(got.Params[i], want.Params[i]) {
					t.Errorf("%s: parameter %d is %v in the dry run, %v in the model", name, i, got.Params[i], want.Params[i])
					break
				}
			}
			t.Errorf("%s: the dry run's description (%d parameters, %d sites) differs from the model's (%d, %d)",
				name, len(got.Params), len(got.Sites), len(want.Params), len(want.Sites))
		}
		for _, p := range v.Params() {
			b.Release(p.Value)
		}
	}
}

// TestStandardViTIsTheModelsDescription keeps plan.StandardViT, the stand-in plugin
// tests plan against, equal to what the host shows plugins for each preset.
func TestStandardViTIsTheModelsDescription(t *testing.T) {
	for name, cfg := range backbones.Presets {
		want, _, err := dryRunBackbone(RunConfig{Backbone: name})
		if err != nil {
			t.Fatal(err)
		}
		got := plan.StandardViT(plan.ViTConfig{Name: cfg.Name, Layers: cfg.Layers, Width: cfg.Width, Heads: cfg.Heads,
			MLPDim: cfg.MLPDim, Patch: cfg.PatchSize, Image: cfg.ImageSize, Channels: cfg.Channels, EmbedDim: cfg.EmbedDim})
		if !reflect.DeepEqual(got, want) {
			t.Errorf("%s: plan.StandardViT differs from the model's description", name)
		}
	}
}
