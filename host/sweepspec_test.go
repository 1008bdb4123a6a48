package main

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

const testSpec = `
name: study
runs_dir: somewhere
seeds: [0, 1]
fixed:
  data.dataset: cifar-10
  train:
    epochs: 3
grid:
  train.lr: [0.01, 0.001]
methods:
  - kadaptation
  - plugin: lora
    grid: {hp.rank: [4, 8]}
  - plugin: kadaptation
    name: kadaptation-bias-only
    fixed: {hp.kronecker: false}
`

func mustPlan(t *testing.T, src string) []sweepPoint {
	t.Helper()
	sp, err := parseSweepSpec("spec.yaml", []byte(src))
	if err != nil {
		t.Fatal(err)
	}
	pts, err := sp.plan()
	if err != nil {
		t.Fatal(err)
	}
	return pts
}

func TestSpecExpandsTheGrid(t *testing.T) {
	pts := mustPlan(t, testSpec)
	// 2 lr × (kadaptation + lora·2 ranks + bias-only) × 2 seeds.
	if len(pts) != 2*4*2 {
		t.Fatalf("%d points, want 16", len(pts))
	}
	seen := map[string]bool{}
	for i, p := range pts {
		if p.Index != i || seen[p.ID] {
			t.Fatalf("point %d: index %d, id %s repeated: %v", i, p.Index, p.ID, seen[p.ID])
		}
		seen[p.ID] = true
		rc := p.Config
		if rc.Data.Dataset != "cifar-10" || rc.Train.Epochs != 3 || rc.RunsDir != "somewhere" || rc.RunID != p.ID {
			t.Fatalf("point %d: fixed settings not applied: %+v", i, rc)
		}
		if rc.Train.Seed != uint64(rc.Data.FewShotSeed) {
			t.Fatalf("point %d: a seed sets both seeds: %d, %d", i, rc.Train.Seed, rc.Data.FewShotSeed)
		}
	}
	// The order: the grid (values in the spec's order), then methods, then the
	// method's grid, then seeds.
	want := []struct {
		id     string
		lr     float64
		plugin string
		rank   string
		seed   uint64
	}{
		{"kadaptation-cifar-10-s0-", 0.01, "kadaptation", "", 0},
		{"kadaptation-cifar-10-s1-", 0.01, "kadaptation", "", 1},
		{"lora-cifar-10-s0-", 0.01, "lora", "4", 0},
		{"lora-cifar-10-s1-", 0.01, "lora", "4", 1},
		{"lora-cifar-10-s0-", 0.01, "lora", "8", 0},
		{"lora-cifar-10-s1-", 0.01, "lora", "8", 1},
		{"kadaptation-bias-only-cifar-10-s0-", 0.01, "kadaptation", "", 0},
		{"kadaptation-bias-only-cifar-10-s1-", 0.01, "kadaptation", "", 1},
		{"kadaptation-cifar-10-s0-", 0.001, "kadaptation", "", 0},
	}
	for i, w := range want {
		p := pts[i]
		if !strings.HasPrefix(p.ID, w.id) || len(p.ID) != len(w.id)+8 || p.Config.Train.LR != w.lr ||
			p.Config.Plugin != w.plugin || p.Config.HP["rank"] != w.rank || p.Config.Train.Seed != w.seed {
			t.Errorf("point %d: %s lr %v %s rank %q seed %d; want %s… lr %v %s rank %q seed %d", i, p.ID, p.Config.Train.LR,
				p.Config.Plugin, p.Config.HP["rank"], p.Config.Train.Seed, w.id, w.lr, w.plugin, w.rank, w.seed)
		}
	}
	if pts[6].Config.HP["kronecker"] != "false" || pts[0].Config.HP["kronecker"] != "" {
		t.Errorf("per-method fixed hp leaked or missing: %v / %v", pts[6].Config.HP, pts[0].Config.HP)
	}
}

// The same point maps to the same id however the spec is written, wherever it runs;
// any change to what it computes changes the id. The pinned id guards the hash
// itself: changing it orphans every run directory users already have.
func TestRunIDsAreStable(t *testing.T) {
	base := mustPlan(t, testSpec)
	if got, want := base[0].ID, "kadaptation-cifar-10-s0-5c2db259"; got != want {
		t.Errorf("point 0's id is %s, was %s: the hash changed and orphans existing run directories", got, want)
	}
	nested := strings.Replace(testSpec, "  data.dataset: cifar-10\n", "  data:\n    dataset: cifar-10\n", 1)
	moved := strings.Replace(testSpec, "runs_dir: somewhere", "runs_dir: elsewhere", 1)
	moved = strings.Replace(moved, "  train:\n    epochs: 3\n", "  train:\n    epochs: 3\n    checkpoint_every: 5\n  data.root: /data2\n  data.workers: 8\n  limits.plan_params: 1000000\n", 1)
	for name, src := range map[string]string{"nested keys": nested, "another runs, data and workers": moved} {
		for i, p := range mustPlan(t, src) {
			if p.ID != base[i].ID {
				t.Errorf("%s: point %d is %s, was %s", name, i, p.ID, base[i].ID)
			}
		}
	}
	onDevice := func(d string) []sweepPoint {
		return mustPlan(t, strings.Replace(testSpec, "  train:\n    epochs: 3\n", "  train:\n    epochs: 3\n  device: "+d+"\n", 1))
	}
	gpu0, gpu1, bf16 := onDevice("cuda:0"), onDevice("cuda:1"), onDevice("cuda:0?precision=bf16")
	for i := range base {
		if gpu0[i].ID != gpu1[i].ID || gpu0[i].ID == base[i].ID || bf16[i].ID == gpu0[i].ID {
			t.Errorf("point %d: cuda:0 %s, cuda:1 %s, cpu %s, bf16 %s: want the index ignored, the kind and precision counted",
				i, gpu0[i].ID, gpu1[i].ID, base[i].ID, bf16[i].ID)
		}
	}
	// Setting a key to its default is the same configuration.
	explicit := strings.Replace(testSpec, "    epochs: 3\n", "    epochs: 3\n    momentum: 0.9\n", 1)
	if got := mustPlan(t, explicit)[0].ID; got != base[0].ID {
		t.Errorf("an explicit default changed the id: %s vs %s", got, base[0].ID)
	}
	for name, src := range map[string]string{
		"epochs":  strings.Replace(testSpec, "epochs: 3", "epochs: 4", 1),
		"dataset": strings.Replace(testSpec, "data.dataset: cifar-10", "data.dataset: cifar-100", 1),
		"shots":   strings.Replace(testSpec, "    epochs: 3\n", "    epochs: 3\n  data.shots: 10\n", 1),
	} {
		changed := mustPlan(t, src)
		for i := range changed {
			if changed[i].ID == base[i].ID || changed[i].Hash[8:] == base[i].Hash[8:] {
				t.Errorf("%s changed but point %d kept id %s", name, i, changed[i].ID)
			}
		}
	}
}

// The frozen copy a cluster's workers read plans to the same points.
func TestFrozenSpecPlansTheSamePoints(t *testing.T) {
	sp, err := parseSweepSpec("spec.yaml", []byte(testSpec))
	if err != nil {
		t.Fatal(err)
	}
	data, err := sp.specYAML()
	if err != nil {
		t.Fatal(err)
	}
	again := mustPlan(t, string(data))
	for i, p := range mustPlan(t, testSpec) {
		if again[i].ID != p.ID || again[i].Index != p.Index {
			t.Fatalf("point %d: %s after freezing, %s before\n%s", i, again[i].ID, p.ID, data)
		}
	}
}

func TestBadSpecsNameTheCulprit(t *testing.T) {
	for _, tc := range []struct{ spec, want string }{
		{"methods: [lora]\nfixed: {train.lrr: 1}", `"train.lrr"`},
		{"methods: [lora]\ngrid: {data.shots: []}", "grid.data.shots"},
		{"methods: [lora]\nfixed: {run_id: x}", "run_id"},
		{"methods: [lora]\nfixed: {plugin: lora}", "methods list"},
		{"methods: []", "methods"},
		{"method: [lora]", `unknown key "method"`},
		{"methods: [{plugin: lora, grid: {train.lr: [1]}}]\ngrid: {train.lr: [2]}", "also in the spec's grid"},
		{"methods: [lora]\nseeds: [1]\ngrid: {train.seed: [1, 2]}", "seeds both set it"},
		{"methods: [lora, lora]", "same run configuration"},
		{"methods: [{plugin: lora, name: a/b}]", `name "a/b"`},
		{"methods: [lora]\nfixed: {train.epochs: -1}", "epochs"},
	} {
		sp, err := parseSweepSpec("bad.yaml", []byte(tc.spec))
		if err == nil {
			_, err = sp.plan()
		}
		if err == nil || !strings.Contains(err.Error(), tc.want) || !strings.Contains(err.Error(), "bad.yaml") {
			t.Errorf("%q: %v, want an error naming bad.yaml and %s", tc.spec, err, tc.want)
		}
	}
}

// The flags of the old `host sweep` build the spec it used to run, and adjust a file's.
func TestSweepFlagsBuildAndAdjustSpecs(t *testing.T) {
	resolve := func(args ...string) *sweepSpec {
		t.Helper()
		fs := newFlags("sweep", "")
		src := addSpecFlags(fs)
		if err := fs.Parse(args); err != nil {
			t.Fatal(err)
		}
		sp, err := src.resolve(fs, true)
		if err != nil {
			t.Fatal(err)
		}
		return sp
	}
	sp := resolve("--plugins", "lora,adapter", "--datasets", "dtd,cifar-10", "--seeds", "3", "--", "--epochs", "7", "--hp", "rank=2")
	pts, err := sp.plan()
	if err != nil {
		t.Fatal(err)
	}
	if len(pts) != 4 || pts[0].Config.Plugin != "lora" || pts[0].Config.Data.Dataset != "dtd" || pts[0].Config.Train.Seed != 3 ||
		pts[0].Config.Train.Epochs != 7 || pts[0].Config.HP["rank"] != "2" {
		t.Fatalf("flags built %d points, the first %+v", len(pts), pts[0].Config)
	}
	path := filepath.Join(t.TempDir(), "s.yaml")
	if err := os.WriteFile(path, []byte(testSpec), 0o644); err != nil {
		t.Fatal(err)
	}
	sp = resolve(path, "--plugins", "kadaptation-bias-only", "--seeds", "5,6", "--runs-dir", "/tmp/r")
	if pts, err = sp.plan(); err != nil {
		t.Fatal(err)
	}
	if len(pts) != 4 || pts[0].Method != "kadaptation-bias-only" || pts[1].Config.Train.Seed != 6 || pts[0].Config.RunsDir != "/tmp/r" {
		t.Fatalf("adjusted spec: %d points, first %+v", len(pts), pts[0])
	}
	demo := resolve("--demo")
	if pts, err = demo.plan(); err != nil || len(pts) == 0 {
		t.Fatalf("the bundled demo spec: %d points, %v", len(pts), err)
	}
}

func TestIndexRanges(t *testing.T) {
	for _, tc := range []struct {
		in   []int
		want string
	}{{[]int{0, 1, 2, 3}, "0-3"}, {[]int{0, 2, 3, 4, 7, 9, 10}, "0,2-4,7,9-10"}, {[]int{5}, "5"}} {
		if got := indexRanges(tc.in); got != tc.want {
			t.Errorf("indexRanges(%v) = %s, want %s", tc.in, got, tc.want)
		}
	}
}
