// Package methods_test checks the six methods' plans against the paper's counts and
// their plugins' descriptions against the ones they had before the typed SDK.
package methods_test

import (
	"encoding/json"
	"go/parser"
	"go/token"
	"os"
	"path/filepath"
	"reflect"
	"strconv"
	"strings"
	"testing"

	"github.com/kadapt/kadapt/methods/adapter"
	"github.com/kadapt/kadapt/methods/compacter"
	"github.com/kadapt/kadapt/methods/finetune"
	"github.com/kadapt/kadapt/methods/kadaptation"
	"github.com/kadapt/kadapt/methods/linearprobe"
	"github.com/kadapt/kadapt/methods/lora"
	"github.com/kadapt/kadapt/plugins"
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
		{"kadaptation", func() (plan.Plan, error) { return kadaptation.Method.Build(bb, kadaptation.Default()) }, 50176},
		{"adapter", func() (plan.Plan, error) { return adapter.Method.Build(bb, adapter.Default()) }, 1208064},
		{"lora", func() (plan.Plan, error) { return lora.Method.Build(bb, lora.Default()) }, 147456},
		{"compacter", func() (plan.Plan, error) { return compacter.Method.Build(bb, compacter.Default()) }, 48384},
		{"finetune", func() (plan.Plan, error) { return finetune.Method.Build(bb, finetune.Config{}) }, 87849216},
		{"linearprobe", func() (plan.Plan, error) { return linearprobe.Method.Build(bb, linearprobe.Config{}) }, 0},
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
	c.N = 0
	if _, err := kadaptation.Method.Build(bb, c); err == nil {
		t.Error("kadaptation with n=0 planned")
	}
	l := lora.Default()
	l.Targets = []string{"qkv"}
	if _, err := lora.Method.Build(bb, l); err == nil {
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
			p, err := kadaptation.Method.Build(bb, c)
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

// served is each method as its plugin serves it.
func served(t *testing.T) []plugins.Method {
	t.Helper()
	var out []plugins.Method
	for _, m := range []func() (plugins.Method, error){
		func() (plugins.Method, error) { return plugins.NewMethod(adapter.Method) },
		func() (plugins.Method, error) { return plugins.NewMethod(compacter.Method) },
		func() (plugins.Method, error) { return plugins.NewMethod(finetune.Method) },
		func() (plugins.Method, error) { return plugins.NewMethod(kadaptation.Method) },
		func() (plugins.Method, error) { return plugins.NewMethod(linearprobe.Method) },
		func() (plugins.Method, error) { return plugins.NewMethod(lora.Method) },
	} {
		s, err := m()
		if err != nil {
			t.Fatal(err)
		}
		out = append(out, s)
	}
	return out
}

// testdata/describe.json is what the six plugins described before their
// hyperparameters came from Config tags; `host plugins show`, the host's checks of
// --hp values and sweep files read it, so it must not change by accident.
func TestDescriptionsAreUnchanged(t *testing.T) {
	raw, err := os.ReadFile("testdata/describe.json")
	if err != nil {
		t.Fatal(err)
	}
	var want []plugins.Description
	if err := json.Unmarshal(raw, &want); err != nil {
		t.Fatal(err)
	}
	var got []plugins.Description
	for _, m := range served(t) {
		got = append(got, m.Describe())
	}
	if !reflect.DeepEqual(got, want) {
		g, _ := json.MarshalIndent(got, "", "  ")
		t.Fatalf("descriptions changed; got\n%s", g)
	}
}

// A plugin run that sets no hyperparameter plans what the method's defaults plan.
func TestServedDefaultsPlanAsTheDefaultConfig(t *testing.T) {
	bb := vitB32()
	direct := map[string]func() (plan.Plan, error){
		"adapter":     func() (plan.Plan, error) { return adapter.Method.Build(bb, adapter.Default()) },
		"compacter":   func() (plan.Plan, error) { return compacter.Method.Build(bb, compacter.Default()) },
		"finetune":    func() (plan.Plan, error) { return finetune.Method.Build(bb, finetune.Config{}) },
		"kadaptation": func() (plan.Plan, error) { return kadaptation.Method.Build(bb, kadaptation.Default()) },
		"linearprobe": func() (plan.Plan, error) { return linearprobe.Method.Build(bb, linearprobe.Config{}) },
		"lora":        func() (plan.Plan, error) { return lora.Method.Build(bb, lora.Default()) },
	}
	for _, m := range served(t) {
		name := m.Describe().Name
		hp, err := plugins.ParseValues(m.Describe(), nil)
		if err != nil {
			t.Fatal(err)
		}
		got, err := m.Plan(bb, hp)
		if err != nil {
			t.Fatalf("%s: %v", name, err)
		}
		want, err := direct[name]()
		if err != nil {
			t.Fatalf("%s: %v", name, err)
		}
		if !reflect.DeepEqual(got, want) {
			t.Errorf("%s: served plan %+v, want %+v", name, got, want)
		}
	}
}

// A method is one file, methods/<m>/<m>.go, importing the standard library and
// plugins/plan alone: no transport, no host.
func TestAMethodIsOneFileImportingOnlyPlan(t *testing.T) {
	files, err := filepath.Glob("*/*.go")
	if err != nil {
		t.Fatal(err)
	}
	methods := 0
	for _, f := range files {
		if strings.HasSuffix(f, "_test.go") {
			continue
		}
		if dir, base := filepath.Split(f); base != filepath.Base(dir)+".go" {
			t.Errorf("%s: a method's package is its one file %s.go", f, filepath.Base(dir))
			continue
		}
		methods++
		src, err := parser.ParseFile(token.NewFileSet(), f, nil, parser.ImportsOnly)
		if err != nil {
			t.Fatal(err)
		}
		for _, imp := range src.Imports {
			path, _ := strconv.Unquote(imp.Path.Value)
			if path != "github.com/kadapt/kadapt/plugins/plan" && strings.Contains(strings.Split(path, "/")[0], ".") {
				t.Errorf("%s imports %s; a method imports plugins/plan and the standard library only", f, path)
			}
		}
	}
	if methods != 6 {
		t.Errorf("%d method files, want the six", methods)
	}
}
