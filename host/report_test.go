package main

import (
	"encoding/json"
	"image/png"
	"math"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/kadapt/kadapt/host/atomicfile"
)

// fakeRun writes a finished run as `host run` does: config.json from the flags
// through the real configuration loader, and final.json. hp is what the plugin
// reports as its effective hyperparameters; nil writes a final.json from before
// they were recorded.
type fakeRun struct {
	name string
	args []string
	hp   map[string]string
	acc  float64
}

func writeRuns(t *testing.T, root string, runs []fakeRun) {
	t.Helper()
	for i, r := range runs {
		fs := newFlags("run", "")
		addRunFlags(fs)
		if err := fs.Parse(r.args); err != nil {
			t.Fatal(err)
		}
		rc, _, err := loadRunConfig(fs)
		if err != nil {
			t.Fatal(err)
		}
		dir := filepath.Join(root, r.name)
		if err := os.MkdirAll(dir, 0o755); err != nil {
			t.Fatal(err)
		}
		s := Summary{Plugin: rc.Plugin, Dataset: rc.Data.Dataset, Backbone: "mnist-vit", Metric: "accuracy",
			Accuracy: r.acc, TrainableParams: 4261, Seed: rc.Train.Seed, FewShotSeed: rc.Data.FewShotSeed, Shots: rc.Data.Shots, RunDir: dir}
		if r.hp != nil {
			s.HP, s.PluginVersion, s.PluginBinarySHA256, s.BackboneSHA256 = r.hp, "1", strings.Repeat("ab", 32), strings.Repeat("cd", 32)
			s.HeadInit = "random" // config.json asks for text; the built-in backbone has no text tower
		}
		if err := atomicfile.WriteJSON(filepath.Join(dir, "config.json"), rc); err != nil {
			t.Fatal(err)
		}
		if err := atomicfile.WriteJSON(filepath.Join(dir, "final.json"), s); err != nil {
			t.Fatal(err)
		}
		// Later runs are newer, as they would be on disk.
		mt := time.Unix(1_700_000_000+int64(i), 0)
		os.Chtimes(filepath.Join(dir, "final.json"), mt, mt)
	}
}

var (
	lora4 = map[string]string{"r": "4", "alpha": "128", "targets": "q,v"}
	lora8 = map[string]string{"r": "8", "alpha": "128", "targets": "q,v"}
	kadHP = map[string]string{"n": "32", "scale": "160"}
)

func seedArgs(plugin, seed string, more ...string) []string {
	return append([]string{"--plugin", plugin, "--seed", seed, "--fewshot-seed", seed}, more...)
}

// mixedRuns is a runs directory as it looks after `make run`, a sweep and a few
// experiments by hand: under "lora" alone there are four different experiments.
func mixedRuns(t *testing.T) string {
	root := t.TempDir()
	writeRuns(t, root, []fakeRun{
		{"make-run", seedArgs("kadaptation", "0"), kadHP, 47.0},
		{"lora-s0", seedArgs("lora", "0"), lora4, 50},
		{"lora-s1", seedArgs("lora", "1"), lora4, 52},
		{"lora-s2", seedArgs("lora", "2"), lora4, 57},
		// --hp r=4 given explicitly: the same experiment as the default r=4.
		{"lora-r4-given", seedArgs("lora", "3", "--hp", "r=4"), lora4, 55},
		// 4.0 is 4: numbers are compared as numbers.
		{"lora-r4-float", seedArgs("lora", "4", "--hp", "r=4.0"), map[string]string{"r": "4.0", "alpha": "128", "targets": "q,v"}, 53.5},
		{"lora-r8", seedArgs("lora", "0", "--hp", "r=8"), lora8, 70},
		{"lora-e10", seedArgs("lora", "0", "--epochs", "10"), lora4, 30},
		{"lora-old", seedArgs("lora", "0"), nil, 40},
		{"kad-s0", seedArgs("kadaptation", "0"), kadHP, 48},
		{"kad-s1", seedArgs("kadaptation", "1"), kadHP, 46},
		// --search paper chose another learning rate per seed: still one experiment.
		{"lp-s0", seedArgs("linearprobe", "0", "--search", "paper (done: lr and weight_decay below were chosen by it)", "--lr", "0.1", "--select", "last"), map[string]string{}, 60},
		{"lp-s1", seedArgs("linearprobe", "1", "--search", "paper (done: lr and weight_decay below were chosen by it)", "--lr", "0.001", "--select", "last"), map[string]string{}, 62},
	})
	return root
}

func rowByLabel(t *testing.T, rep *report, label string) *reportRow {
	t.Helper()
	var labels []string
	for _, r := range rep.Rows {
		if r.Label == label {
			return r
		}
		labels = append(labels, r.Label)
	}
	t.Fatalf("no row %q; rows: %q", label, labels)
	return nil
}

func TestReportNeverPoolsDifferentExperiments(t *testing.T) {
	runs, err := collectRuns(mixedRuns(t))
	if err != nil {
		t.Fatal(err)
	}
	rep := buildReport(runs)
	if len(rep.Rows) != 6 {
		var labels []string
		for _, r := range rep.Rows {
			labels = append(labels, r.Label)
		}
		t.Fatalf("%d rows, want 6 (kadaptation, linearprobe, and lora r=4 e=50, r=8, e=10, unrecorded hp): %q", len(rep.Rows), labels)
	}
	// Pooled: the default r=4, an explicit --hp r=4 and r=4.0, seeds 0 to 4.
	lora := rowByLabel(t, rep, "lora (hp.r=4, plugin_binary=abababababab, plugin_version=1, backbone_sha256=cdcdcdcdcdcd, head_init=random, search=\"\", train.epochs=50)")
	c := lora.Cells["mnist-demo"]
	if len(c.Runs) != 5 {
		t.Fatalf("lora r=4: n=%d, want 5", len(c.Runs))
	}
	// 50, 52, 57, 55, 53.5: mean 53.5, sample variance (12.25+2.25+12.25+2.25+0)/4.
	if math.Abs(c.Mean()-53.5) > 1e-12 || math.Abs(c.Std()-math.Sqrt(29.0/4)) > 1e-12 {
		t.Errorf("lora r=4: %.6f ± %.6f, want 53.5 ± %.6f", c.Mean(), c.Std(), math.Sqrt(29.0/4))
	}
	for label, acc := range map[string]float64{
		"lora (hp.r=8, plugin_binary=abababababab, plugin_version=1, backbone_sha256=cdcdcdcdcdcd, head_init=random, search=\"\", train.epochs=50)":  70,
		"lora (hp.r=4, plugin_binary=abababababab, plugin_version=1, backbone_sha256=cdcdcdcdcdcd, head_init=random, search=\"\", train.epochs=10)":  30,
		"lora (plugin_binary=(unrecorded), plugin_version=(unrecorded), backbone_sha256=(unrecorded), head_init=text, search=\"\", train.epochs=50)": 40,
	} {
		c := rowByLabel(t, rep, label).Cells["mnist-demo"]
		if len(c.Runs) != 1 || c.Mean() != acc || !math.IsNaN(c.Std()) {
			t.Errorf("%s: n=%d mean %v std %v, want the one run %v with no std", label, len(c.Runs), c.Mean(), c.Std(), acc)
		}
	}
	// `make run` repeated the sweep's seed 0: the same run twice, counted once.
	kad := rowByLabel(t, rep, "kadaptation (backbone_sha256=cdcdcdcdcdcd, head_init=random, search=\"\", train.epochs=50)").Cells["mnist-demo"]
	if len(kad.Runs) != 2 || kad.Mean() != 47 {
		t.Errorf("kadaptation: n=%d mean %v, want n=2 (seeds 0, 1; the make-run duplicate of seed 0 replaced) mean 47", len(kad.Runs), kad.Mean())
	}
	lp := rowByLabel(t, rep, "linearprobe (backbone_sha256=cdcdcdcdcdcd, head_init=random, search=paper, train.epochs=50)").Cells["mnist-demo"]
	if len(lp.Runs) != 2 {
		t.Errorf("linearprobe after --search paper: n=%d, want 2 (the searched lr is an outcome, not a setting)", len(lp.Runs))
	}

	md := rep.markdown()
	for _, want := range []string{"| 70.00 (n=1) |", "| 53.50 ± 2.69 (n=5) | 0, 1, 2, 3, 4 |", "different numbers of seeds: n=1 for most, n=2 for kadaptation", "make-run", "Common settings: ", "train.lr=0.01"} {
		if !strings.Contains(md, want) {
			t.Errorf("markdown lacks %q:\n%s", want, md)
		}
	}
	if strings.Contains(md, "± 0.00") {
		t.Errorf("markdown reports a single run as ± 0.00:\n%s", md)
	}
}

func TestReportFilter(t *testing.T) {
	runs, err := collectRuns(mixedRuns(t))
	if err != nil {
		t.Fatal(err)
	}
	f, err := parseFilters([]string{"plugin=lora", "hp.r=8", "hp.r=4", "train.epochs=5e1", "train.seed=0"})
	if err != nil {
		t.Fatal(err)
	}
	kept, err := f.apply(runs)
	if err != nil {
		t.Fatal(err)
	}
	var dirs []string
	for _, r := range kept {
		dirs = append(dirs, filepath.Base(r.Dir))
	}
	if strings.Join(sortedKeys(map[string]bool{dirs[0]: true, dirs[len(dirs)-1]: true}), ",") != "lora-r8,lora-s0" || len(dirs) != 2 {
		t.Errorf("kept %v, want lora-s0 and lora-r8", dirs)
	}
	f, _ = parseFilters([]string{"hp.rank=8"})
	if _, err := f.apply(runs); err == nil || !strings.Contains(err.Error(), "hp.rank") || !strings.Contains(err.Error(), "hp.r,") {
		t.Errorf("unknown filter key: %v, want an error naming hp.rank and listing hp.r", err)
	}
	if _, err := parseFilters([]string{"plugin"}); err == nil || !strings.Contains(err.Error(), `"plugin"`) {
		t.Errorf("filter without =: %v", err)
	}
}

func TestReportCommandWritesEveryFormat(t *testing.T) {
	defer syscall.Umask(syscall.Umask(0o022))
	root := mixedRuns(t)
	out := filepath.Join(t.TempDir(), "r")
	if code := runMain([]string{"report", root, "--out", out, "--filter", "plugin=lora", "--filter", "plugin=kadaptation"}); code != 0 {
		t.Fatalf("host report exited %d", code)
	}
	raw, err := os.ReadFile(out + ".json")
	if err != nil {
		t.Fatal(err)
	}
	var js struct {
		Rows []struct {
			Label string `json:"label"`
			Cells []struct {
				N    int      `json:"n"`
				Std  *float64 `json:"std"`
				Runs []any    `json:"runs"`
			} `json:"cells"`
		} `json:"rows"`
	}
	if err := json.Unmarshal(raw, &js); err != nil {
		t.Fatal(err)
	}
	if len(js.Rows) != 5 {
		t.Fatalf("%d JSON rows, want 5 (kadaptation and four lora experiments)", len(js.Rows))
	}
	for _, r := range js.Rows {
		c := r.Cells[0]
		if c.N != len(c.Runs) || (c.N == 1) != (c.Std == nil) {
			t.Errorf("%s: n=%d, %d runs, std %v: a single run must have a null std", r.Label, c.N, len(c.Runs), c.Std)
		}
	}
	csv, err := os.ReadFile(out + ".csv")
	if err != nil {
		t.Fatal(err)
	}
	if lines := strings.Count(string(csv), "\n"); lines != 6 || !strings.HasPrefix(string(csv), "method,label,dataset,n,mean,std,seeds,") {
		t.Errorf("CSV: %d lines, want a header and 5 cells:\n%s", lines, csv)
	}
	f, err := os.Open(out + ".png")
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	img, err := png.Decode(f)
	if err != nil {
		t.Fatal(err)
	}
	if b := img.Bounds(); b.Dx() < 1000 || b.Dy() < 600 {
		t.Errorf("figure is %v, want at least 1000×600 pixels", b)
	}
	if svg, err := os.ReadFile(out + ".svg"); err != nil || !strings.Contains(string(svg), "<svg") {
		t.Errorf("svg: %v", err)
	}
	// Reports are for colleagues to read: 0644 less the umask (they were 0600).
	for _, ext := range []string{"md", "json", "csv", "png", "svg"} {
		if fi, err := os.Stat(out + "." + ext); err != nil || fi.Mode().Perm() != 0o644 {
			t.Errorf("%s: mode %v, %v; want -rw-r--r--", ext, fi.Mode().Perm(), err)
		}
	}
}

// TestReportMissingRunsDir names a runs folder that does not exist and what to give
// instead (it said lstat's "no such file or directory").
func TestReportMissingRunsDir(t *testing.T) {
	missing := filepath.Join(t.TempDir(), "runs")
	_, err := collectRuns(missing)
	if err == nil || !strings.Contains(err.Error(), missing+" does not exist") || !strings.Contains(err.Error(), "--runs-dir") {
		t.Fatalf("collectRuns(%s): %v", missing, err)
	}
}
