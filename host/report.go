package main

import (
	"bytes"
	"encoding/csv"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"math"
	"os"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"time"

	"github.com/spf13/cobra"
	"gonum.org/v1/gonum/stat"

	"github.com/kadapt/kadapt/host/atomicfile"
)

func init() {
	addCommand(newReportCmd)
}

// How runs are grouped. Two runs are seeds of one experiment when every setting in
// their experiment key is equal. The key is the run's config.json, flattened to dotted
// keys, with final.json's effective plugin hyperparameters (defaults included), plugin
// version and backbone weights digest, minus:
//   - the seeds (train.seed, data.fewshot_seed): they are what a row pools;
//   - bookkeeping that cannot change a result (where runs, data and plugins live, the
//     run id, the checkpoint interval, data-loading workers, the device index);
//   - settings the configuration makes inert (momentum without sgd, warmup without the
//     cosine schedule, step_* without the step schedule; lr, weight_decay and select
//     after --search paper chose them per run);
//   - the model path when the weights digest is recorded (the same weights pool
//     wherever they lie).
//
// Every other key counts, so a setting added to RunConfig later splits groups until
// it is listed here. A field a run did not record reads "(unrecorded)", which differs
// from every recorded value: old runs report, grouped only with runs equally old.
var (
	pooledKeys = []string{"train.seed", "data.fewshot_seed"}
	inertKeys  = map[string]bool{
		"plugin_path": true, "plugin_sha256": true, "plugin_binary": true, "runs_dir": true, "run_id": true,
		"data.root": true, "data.format": true, "data.workers": true, "train.checkpoint_every": true,
		"limits.plan_params": true, "limits.plan_memory_mib": true, // whether a run may start, not what it computes
	}
)

const unrecorded = "(unrecorded)"

// runRecord is one finished run.
type runRecord struct {
	Dir         string
	Summary     Summary
	Key         map[string]string // the experiment key, dataset included
	TrainSeed   string
	FewShotSeed string
	modTime     time.Time
}

// experimentKey is the key described above, from final.json and the run's config.json
// (nil when the run directory has none).
func experimentKey(s Summary, config map[string]any) map[string]string {
	key := map[string]string{}
	if config == nil {
		key[runConfigFile] = "missing"
	}
	flatten("", config, key)
	for k := range key {
		if inertKeys[k] || strings.HasPrefix(k, "hp.") {
			delete(key, k)
		}
	}
	for _, k := range pooledKeys {
		delete(key, k)
	}
	// Settings final.json knows better than config.json.
	key["plugin"] = s.Plugin
	key["dataset"] = s.Dataset
	key["data.shots"] = strconv.Itoa(s.Shots)
	key["backbone"] = s.Backbone
	if s.HeadInit != "" {
		key["head_init"] = s.HeadInit // what was applied, where config.json has what was asked
	}
	key["plugin_version"] = orUnrecorded(s.PluginVersion)
	key["plugin_binary"] = orUnrecorded(shortDigest(s.PluginBinarySHA256))
	key["backbone_sha256"] = orUnrecorded(shortDigest(s.BackboneSHA256))
	delete(key, "data.dataset") // final.json's dataset, above
	if s.HP != nil {
		for k, v := range s.HP {
			key["hp."+k] = canonicalNumber(v)
		}
	} else {
		// Only the values given on the command line were recorded; the plugin's
		// defaults at the time are unknown.
		key["hp"] = unrecorded
		if hp, ok := config["hp"].(map[string]any); ok {
			for k, v := range hp {
				key["hp."+k] = canonicalNumber(scalarString(v))
			}
		}
	}
	if s.BackboneSHA256 != "" {
		delete(key, "model")
		delete(key, "model_config")
	}
	if d, ok := key["device"]; ok {
		key["device"] = deviceKind(d)
	}
	if key["train.optimizer"] != "sgd" {
		delete(key, "train.momentum")
		delete(key, "train.nesterov")
	}
	if key["train.schedule"] != "cosine" {
		delete(key, "train.warmup_epochs")
	}
	if key["train.schedule"] != "step" {
		delete(key, "train.step_every")
		delete(key, "train.step_gamma")
	}
	if strings.HasPrefix(key["search"], "paper") {
		key["search"] = "paper"
		delete(key, "train.lr")
		delete(key, "train.weight_decay")
		delete(key, "train.select")
	}
	return key
}

// deviceKind drops the device index: cuda:0 and cuda:1 compute alike, while the
// backend and its options (precision) change the numbers.
func deviceKind(d string) string {
	name, opts, _ := strings.Cut(d, "?")
	name, _, _ = strings.Cut(name, ":")
	if opts != "" {
		return name + "?" + opts
	}
	return name
}

// shortDigest keeps 12 hex digits of a SHA-256: enough to tell builds and weights
// apart, short enough to read in a row label.
func shortDigest(d string) string {
	if len(d) > 12 {
		return d[:12]
	}
	return d
}

func orUnrecorded(s string) string {
	if s == "" {
		return unrecorded
	}
	return s
}

func flatten(prefix string, v any, out map[string]string) {
	m, ok := v.(map[string]any)
	if !ok {
		if prefix != "" {
			out[prefix] = scalarString(v)
		}
		return
	}
	for k, sub := range m {
		if prefix != "" {
			k = prefix + "." + k
		}
		flatten(k, sub, out)
	}
}

// canonicalNumber writes a number one way, so --hp scale=1.0 and a default of 1 are
// the same setting.
func canonicalNumber(s string) string {
	if f, err := strconv.ParseFloat(s, 64); err == nil {
		return strconv.FormatFloat(f, 'g', -1, 64)
	}
	return s
}

func scalarString(v any) string {
	switch x := v.(type) {
	case float64:
		return strconv.FormatFloat(x, 'g', -1, 64)
	case string:
		return x
	case nil:
		return ""
	}
	return fmt.Sprint(v)
}

// collectRuns reads every final.json under root, with the config.json beside it.
func collectRuns(root string) ([]*runRecord, error) {
	if _, err := os.Stat(root); errors.Is(err, fs.ErrNotExist) {
		return nil, fmt.Errorf("%s does not exist: give the folder host run or host sweep wrote its runs into (--runs-dir, runs/ by default)", root)
	}
	var runs []*runRecord
	err := filepath.WalkDir(root, func(path string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() || d.Name() != runFinalFile {
			return err
		}
		raw, err := os.ReadFile(path)
		if err != nil {
			return err
		}
		var s Summary
		if err := json.Unmarshal(raw, &s); err != nil {
			return fmt.Errorf("%s: %v", path, err)
		}
		dir := filepath.Dir(path)
		var config map[string]any
		if raw, err := os.ReadFile(filepath.Join(dir, runConfigFile)); err == nil {
			if err := json.Unmarshal(raw, &config); err != nil {
				return fmt.Errorf("%s: %v", filepath.Join(dir, runConfigFile), err)
			}
		} else if !errors.Is(err, fs.ErrNotExist) {
			return err
		}
		info, err := d.Info()
		if err != nil {
			return err
		}
		r := &runRecord{Dir: dir, Summary: s, Key: experimentKey(s, config), modTime: info.ModTime(),
			TrainSeed: strconv.FormatUint(s.Seed, 10), FewShotSeed: strconv.Itoa(s.FewShotSeed)}
		runs = append(runs, r)
		return nil
	})
	if err != nil {
		return nil, err
	}
	if len(runs) == 0 {
		return nil, fmt.Errorf("%s: no finished runs (final.json) found", root)
	}
	return runs, nil
}

// reportFilter keeps the runs whose key has one of the given values for every
// filtered key (several --filter with one key are alternatives).
type reportFilter map[string][]string

func parseFilters(raw []string) (reportFilter, error) {
	f := reportFilter{}
	for _, r := range raw {
		k, v, ok := strings.Cut(r, "=")
		if !ok || k == "" {
			return nil, usageErr("--filter %q: want KEY=VALUE (KEY as in the report's settings, e.g. plugin=lora, hp.r=8, train.epochs=50)", r)
		}
		f[k] = append(f[k], v)
	}
	return f, nil
}

// value is the run's value for a filter key: its experiment key, or a seed.
func (r *runRecord) value(k string) (string, bool) {
	switch k {
	case "train.seed":
		return r.TrainSeed, true
	case "data.fewshot_seed":
		return r.FewShotSeed, true
	}
	v, ok := r.Key[k]
	return v, ok
}

func (f reportFilter) apply(runs []*runRecord) ([]*runRecord, error) {
	for k := range f {
		known := false
		for _, r := range runs {
			if _, ok := r.value(k); ok {
				known = true
				break
			}
		}
		if !known {
			names := map[string]bool{}
			for _, r := range runs {
				for n := range r.Key {
					names[n] = true
				}
			}
			for _, n := range pooledKeys {
				names[n] = true
			}
			return nil, usageErr("--filter %s: no run has this key (keys: %s)", k, strings.Join(sortedKeys(names), ", "))
		}
	}
	var out []*runRecord
	for _, r := range runs {
		keep := true
		for k, want := range f {
			v, ok := r.value(k)
			if !ok || !anyEqual(v, want) {
				keep = false
				break
			}
		}
		if keep {
			out = append(out, r)
		}
	}
	return out, nil
}

// anyEqual compares as numbers where both sides are numbers (lr=0.01 matches 1e-2).
func anyEqual(v string, want []string) bool {
	for _, w := range want {
		if v == w {
			return true
		}
		a, errA := strconv.ParseFloat(v, 64)
		b, errB := strconv.ParseFloat(w, 64)
		if errA == nil && errB == nil && a == b {
			return true
		}
	}
	return false
}

// reportCell is one experiment: a row's runs on one dataset, one per seed pair.
type reportCell struct {
	Dataset string
	Runs    []*runRecord
}

func (c *reportCell) accuracies() []float64 {
	v := make([]float64, len(c.Runs))
	for i, r := range c.Runs {
		v[i] = r.Summary.Accuracy
	}
	return v
}

func (c *reportCell) Mean() float64 { return stat.Mean(c.accuracies(), nil) }

// Std is the sample standard deviation over seeds (stat.StdDev divides by n−1, as
// the paper's ± and numpy's std(ddof=1) do), NaN for a single run.
func (c *reportCell) Std() float64 {
	if len(c.Runs) < 2 {
		return math.NaN()
	}
	return stat.StdDev(c.accuracies(), nil)
}

// reportRow is one experiment setting (the key without the dataset) across datasets.
type reportRow struct {
	Key   map[string]string
	Label string
	Cells map[string]*reportCell
}

// Params is the trainable parameter count averaged over datasets (heads differ).
func (r *reportRow) Params() int64 {
	var total int64
	for _, c := range r.Cells {
		total += c.Runs[0].Summary.TrainableParams
	}
	return total / int64(len(r.Cells))
}

// Overall is the mean over datasets of the mean over seeds, as the paper averages;
// NaN when the row lacks a dataset of the table.
func (r *reportRow) Overall(datasets []string) float64 {
	// A running sum, not stat.Mean: gonum sums with four SIMD accumulators, which
	// changes the last bit of about a third of such means against the reports
	// written so far.
	var s float64
	for _, d := range datasets {
		c, ok := r.Cells[d]
		if !ok {
			return math.NaN()
		}
		s += c.Mean()
	}
	return s / float64(len(datasets))
}

// OverallStd is the standard deviation over seeds of Overall, treating datasets as
// independent draws: √(Σ σ_d²)/D. NaN when a cell has a single run.
func (r *reportRow) OverallStd(datasets []string) float64 {
	var v float64
	for _, d := range datasets {
		c, ok := r.Cells[d]
		if !ok {
			return math.NaN()
		}
		s := c.Std()
		v += s * s
	}
	return math.Sqrt(v) / float64(len(datasets))
}

// seedPairs lists the row's (train seed, few-shot seed) pairs over all its cells.
func (r *reportRow) seedPairs() []string {
	set := map[string]bool{}
	same := true
	for _, c := range r.Cells {
		for _, run := range c.Runs {
			same = same && run.TrainSeed == run.FewShotSeed
		}
	}
	for _, c := range r.Cells {
		for _, run := range c.Runs {
			if same {
				set[run.TrainSeed] = true
			} else {
				set[run.TrainSeed+"/"+run.FewShotSeed] = true
			}
		}
	}
	out := sortedKeys(set)
	sort.SliceStable(out, func(i, j int) bool { return naturalLess(out[i], out[j]) })
	return out
}

func naturalLess(a, b string) bool {
	x, ex := strconv.Atoi(strings.Split(a, "/")[0])
	y, ey := strconv.Atoi(strings.Split(b, "/")[0])
	if ex == nil && ey == nil && x != y {
		return x < y
	}
	return a < b
}

// report is the grouped table.
type report struct {
	Rows     []*reportRow
	Datasets []string
	Common   map[string]string // settings every row shares
	Notes    []string
}

// buildReport groups runs into experiments. Two runs with the same key and the same
// seeds are one run done twice, not two seeds: the newer is kept and a note names both.
func buildReport(runs []*runRecord) *report {
	rep := &report{Common: map[string]string{}}
	rows := map[string]*reportRow{}
	dsSet := map[string]bool{}
	sort.Slice(runs, func(i, j int) bool { return runs[i].modTime.Before(runs[j].modTime) })
	for _, r := range runs {
		rowKey := map[string]string{}
		for k, v := range r.Key {
			if k != "dataset" {
				rowKey[k] = v
			}
		}
		id := canonicalKey(rowKey)
		row := rows[id]
		if row == nil {
			row = &reportRow{Key: rowKey, Cells: map[string]*reportCell{}}
			rows[id] = row
		}
		ds := r.Summary.Dataset
		dsSet[ds] = true
		c := row.Cells[ds]
		if c == nil {
			c = &reportCell{Dataset: ds}
			row.Cells[ds] = c
		}
		replaced := false
		for i, old := range c.Runs {
			if old.TrainSeed == r.TrainSeed && old.FewShotSeed == r.FewShotSeed {
				rep.Notes = append(rep.Notes, fmt.Sprintf("%s and %s are the same experiment with the same seeds (train %s, few-shot %s); only the newer, %s, is counted.",
					old.Dir, r.Dir, r.TrainSeed, r.FewShotSeed, r.Dir))
				c.Runs[i] = r
				replaced = true
			}
		}
		if !replaced {
			c.Runs = append(c.Runs, r)
		}
	}
	rep.Datasets = sortedKeys(dsSet)
	for _, row := range rows {
		rep.Rows = append(rep.Rows, row)
	}
	rep.label()
	order := map[string]int{}
	for i, m := range allMethods {
		order[m] = i + 1
	}
	rank := func(p string) int {
		if o := order[p]; o > 0 {
			return o
		}
		return len(allMethods) + 1
	}
	sort.Slice(rep.Rows, func(i, j int) bool {
		a, b := rep.Rows[i], rep.Rows[j]
		if ra, rb := rank(a.Key["plugin"]), rank(b.Key["plugin"]); ra != rb {
			return ra < rb
		}
		return a.Label < b.Label
	})
	rep.noteUnequalN()
	return rep
}

func canonicalKey(m map[string]string) string {
	var b strings.Builder
	for _, k := range sortedKeys(m) {
		fmt.Fprintf(&b, "%s=%q;", k, m[k])
	}
	return b.String()
}

// label names each row by its plugin and the settings that tell it apart: settings
// that vary over the table, and hyperparameters (and plugin version) that vary among
// the rows of the same plugin. What every row shares goes into Common.
func (rep *report) label() {
	perPlugin := func(k string) bool {
		return strings.HasPrefix(k, "hp") || k == "plugin_version" || k == "plugin_binary"
	}
	// A setting varies when the rows holding it disagree. One that only some rows hold
	// (a plugin's hyperparameters, lr under --search paper) is told apart by others.
	varies := func(rows []*reportRow, k string) bool {
		values := map[string]bool{}
		for _, r := range rows {
			if v, ok := r.Key[k]; ok {
				values[v] = true
			}
		}
		return len(values) > 1
	}
	holders := func(k string) []*reportRow {
		var out []*reportRow
		for _, r := range rep.Rows {
			if _, ok := r.Key[k]; ok {
				out = append(out, r)
			}
		}
		return out
	}
	all := map[string]bool{}
	byPlugin := map[string][]*reportRow{}
	for _, r := range rep.Rows {
		for k := range r.Key {
			all[k] = true
		}
		byPlugin[r.Key["plugin"]] = append(byPlugin[r.Key["plugin"]], r)
	}
	var tableVarying []string
	for _, k := range sortedKeys(all) {
		if k == "plugin" || perPlugin(k) {
			continue
		}
		if varies(rep.Rows, k) {
			tableVarying = append(tableVarying, k)
			continue
		}
		for _, r := range rep.Rows {
			if v, ok := r.Key[k]; ok {
				if len(holders(k)) < len(rep.Rows) {
					v = quoteEmpty(v) + " (where it applies)"
				}
				rep.Common[k] = v
				break
			}
		}
	}
	for _, rows := range byPlugin {
		var pluginVarying []string
		for _, k := range sortedKeys(all) {
			if perPlugin(k) && varies(rows, k) {
				pluginVarying = append(pluginVarying, k)
			}
		}
		for _, r := range rows {
			var parts []string
			for _, k := range append(pluginVarying, tableVarying...) {
				if v, ok := r.Key[k]; ok {
					parts = append(parts, k+"="+quoteEmpty(v))
				}
			}
			r.Label = r.Key["plugin"]
			if len(parts) > 0 {
				r.Label += " (" + strings.Join(parts, ", ") + ")"
			}
		}
	}
}

func quoteEmpty(v string) string {
	if v == "" {
		return `""`
	}
	return v
}

// noteUnequalN says when cells of the table average different numbers of seeds,
// naming the cells that differ from the most common n.
func (rep *report) noteUnequalN() {
	counts := map[int][]string{}
	for _, r := range rep.Rows {
		for _, d := range rep.Datasets {
			if c, ok := r.Cells[d]; ok {
				name := r.Label
				if rep.multiDataset() {
					name += " on " + d
				}
				counts[len(c.Runs)] = append(counts[len(c.Runs)], name)
			}
		}
	}
	if len(counts) < 2 {
		return
	}
	common := 0
	var ns []int
	for n, cells := range counts {
		ns = append(ns, n)
		if len(cells) > len(counts[common]) || (len(cells) == len(counts[common]) && n > common) {
			common = n
		}
	}
	sort.Ints(ns)
	var parts []string
	for _, n := range ns {
		if n != common {
			parts = append(parts, fmt.Sprintf("n=%d for %s", n, strings.Join(counts[n], ", ")))
		}
	}
	rep.Notes = append(rep.Notes, fmt.Sprintf("Rows average different numbers of seeds: n=%d for most, %s. Compare their spreads with care.", common, strings.Join(parts, "; ")))
}

func (rep *report) multiDataset() bool { return len(rep.Datasets) > 1 }

// cellText is "mean ± std (n=k)", or "mean (n=1)": one run has no spread to show.
func cellText(c *reportCell) string {
	if c == nil {
		return "–"
	}
	if len(c.Runs) == 1 {
		return fmt.Sprintf("%.2f (n=1)", c.Mean())
	}
	return fmt.Sprintf("%.2f ± %.2f (n=%d)", c.Mean(), c.Std(), len(c.Runs))
}

func fmtOrDash(v float64, format string) string {
	if math.IsNaN(v) {
		return "–"
	}
	return fmt.Sprintf(format, v)
}

func (rep *report) markdown() string {
	var b strings.Builder
	b.WriteString("| method |")
	for _, d := range rep.Datasets {
		fmt.Fprintf(&b, " %s |", d)
	}
	if rep.multiDataset() {
		b.WriteString(" mean |")
	}
	b.WriteString(" seeds | trainable params | PE |\n|---|")
	for range rep.Datasets {
		b.WriteString("---|")
	}
	if rep.multiDataset() {
		b.WriteString("---|")
	}
	b.WriteString("---|---|---|\n")
	pairs := false
	for _, r := range rep.Rows {
		fmt.Fprintf(&b, "| %s |", r.Label)
		for _, d := range rep.Datasets {
			fmt.Fprintf(&b, " %s |", cellText(r.Cells[d]))
		}
		acc := r.Overall(rep.Datasets)
		if rep.multiDataset() {
			fmt.Fprintf(&b, " %s |", fmtOrDash(acc, "%.2f"))
		}
		seeds := r.seedPairs()
		pairs = pairs || strings.Contains(strings.Join(seeds, ","), "/")
		fmt.Fprintf(&b, " %s | %s | %s |\n", strings.Join(seeds, ", "), groupDigits(r.Params()), fmtOrDash(PE(acc, r.Params()), "%.2f"))
	}
	b.WriteString("\nAccuracy in %: mean ± standard deviation over seeds (n runs; a single run has no spread). ")
	if pairs {
		b.WriteString("Seeds are training/few-shot pairs. ")
	} else {
		b.WriteString("Seeds: each run used one seed for training and few-shot sampling. ")
	}
	if rep.multiDataset() {
		b.WriteString("Mean: over datasets, for rows with every dataset. ")
	}
	b.WriteString("PE = acc·exp(−log10(M/10⁸+1)). Runs are pooled only when every setting below and in the row label is equal.\n")
	if len(rep.Common) > 0 {
		var parts []string
		for _, k := range sortedKeys(rep.Common) {
			parts = append(parts, k+"="+quoteEmpty(rep.Common[k]))
		}
		fmt.Fprintf(&b, "\nCommon settings: %s.\n", strings.Join(parts, ", "))
	}
	for _, n := range rep.Notes {
		fmt.Fprintf(&b, "\nNote: %s\n", n)
	}
	return b.String()
}

// csv is one line per cell (row × dataset), every setting a column.
func (rep *report) csv() ([]byte, error) {
	keys := map[string]bool{}
	for _, r := range rep.Rows {
		for k := range r.Key {
			keys[k] = true
		}
	}
	settings := sortedKeys(keys)
	var buf bytes.Buffer
	cw := csv.NewWriter(&buf)
	header := append([]string{"method", "label", "dataset", "n", "mean", "std", "seeds", "trainable_params", "pe"}, settings...)
	if err := cw.Write(header); err != nil {
		return nil, err
	}
	for _, r := range rep.Rows {
		for _, d := range rep.Datasets {
			c, ok := r.Cells[d]
			if !ok {
				continue
			}
			std := ""
			if len(c.Runs) > 1 {
				std = strconv.FormatFloat(c.Std(), 'f', 4, 64)
			}
			var seeds []string
			for _, run := range c.Runs {
				seeds = append(seeds, run.TrainSeed+"/"+run.FewShotSeed)
			}
			p := c.Runs[0].Summary.TrainableParams
			rec := []string{r.Key["plugin"], r.Label, d, strconv.Itoa(len(c.Runs)), strconv.FormatFloat(c.Mean(), 'f', 4, 64), std,
				strings.Join(seeds, " "), strconv.FormatInt(p, 10), strconv.FormatFloat(PE(c.Mean(), p), 'f', 4, 64)}
			for _, k := range settings {
				rec = append(rec, r.Key[k])
			}
			if err := cw.Write(rec); err != nil {
				return nil, err
			}
		}
	}
	cw.Flush()
	return buf.Bytes(), cw.Error()
}

type jsonSeedRun struct {
	TrainSeed   string  `json:"train_seed"`
	FewShotSeed string  `json:"fewshot_seed"`
	Accuracy    float64 `json:"accuracy"`
	RunDir      string  `json:"run_dir"`
}

type jsonCell struct {
	Dataset         string        `json:"dataset"`
	N               int           `json:"n"`
	Mean            float64       `json:"mean"`
	Std             *float64      `json:"std"` // null for a single run
	TrainableParams int64         `json:"trainable_params"`
	Runs            []jsonSeedRun `json:"runs"`
}

type jsonRow struct {
	Method          string            `json:"method"`
	Label           string            `json:"label"`
	Settings        map[string]string `json:"settings"`
	Cells           []jsonCell        `json:"cells"`
	Mean            *float64          `json:"mean"` // over datasets; null when one is missing
	TrainableParams int64             `json:"trainable_params"`
	PE              *float64          `json:"pe"`
}

func nullable(v float64) *float64 {
	if math.IsNaN(v) {
		return nil
	}
	return &v
}

func (rep *report) json() ([]byte, error) {
	out := struct {
		Datasets []string          `json:"datasets"`
		Rows     []jsonRow         `json:"rows"`
		Common   map[string]string `json:"common_settings"`
		Notes    []string          `json:"notes"`
	}{Datasets: rep.Datasets, Common: rep.Common, Notes: rep.Notes}
	for _, r := range rep.Rows {
		acc := r.Overall(rep.Datasets)
		jr := jsonRow{Method: r.Key["plugin"], Label: r.Label, Settings: r.Key, Mean: nullable(acc),
			TrainableParams: r.Params(), PE: nullable(PE(acc, r.Params()))}
		for _, d := range rep.Datasets {
			c, ok := r.Cells[d]
			if !ok {
				continue
			}
			jc := jsonCell{Dataset: d, N: len(c.Runs), Mean: c.Mean(), Std: nullable(c.Std()), TrainableParams: c.Runs[0].Summary.TrainableParams}
			for _, run := range c.Runs {
				jc.Runs = append(jc.Runs, jsonSeedRun{TrainSeed: run.TrainSeed, FewShotSeed: run.FewShotSeed, Accuracy: run.Summary.Accuracy, RunDir: run.Dir})
			}
			jr.Cells = append(jr.Cells, jc)
		}
		out.Rows = append(out.Rows, jr)
	}
	raw, err := json.MarshalIndent(out, "", "  ")
	return append(raw, '\n'), err
}

func groupDigits(n int64) string {
	s := fmt.Sprint(n)
	var out []byte
	for i := range s {
		if i > 0 && (len(s)-i)%3 == 0 {
			out = append(out, ',')
		}
		out = append(out, s[i])
	}
	return string(out)
}

func newReportCmd() *cobra.Command {
	cmd := &cobra.Command{
		Use:   "report RUNS_DIR [--filter KEY=VALUE]... [--json] [--out PREFIX]",
		Short: "the paper's table (Markdown, CSV, JSON) and accuracy-vs-parameters figure (PNG + SVG) from run directories; runs are pooled over seeds only",
		Args:  cobra.ExactArgs(1),
	}
	fs := cmd.Flags()
	out := fs.String("out", "", "output prefix for .md, .csv, .json, .png and .svg (default RUNS_DIR/report)")
	filters := fs.StringArray("filter", nil, "keep runs whose setting KEY equals VALUE (repeatable; the same KEY twice means either value), e.g. plugin=lora, hp.r=8, train.epochs=50, dataset=mnist-demo")
	jsonOut := fs.Bool("json", false, "print the report as one JSON document instead of Markdown")
	cmd.RunE = func(_ *cobra.Command, args []string) error {
		return writeReport(args[0], *out, *filters, *jsonOut)
	}
	return cmd
}

func writeReport(root, out string, filters []string, jsonOut bool) error {
	if out == "" {
		out = filepath.Join(root, "report")
	}
	f, err := parseFilters(filters)
	if err != nil {
		return err
	}
	runs, err := collectRuns(root)
	if err != nil {
		return err
	}
	if runs, err = f.apply(runs); err != nil {
		return err
	}
	if len(runs) == 0 {
		return fmt.Errorf("%s: no run matches %s", root, strings.Join(filters, " and "))
	}
	rep := buildReport(runs)
	md := rep.markdown()
	js, err := rep.json()
	if err != nil {
		return err
	}
	cs, err := rep.csv()
	if err != nil {
		return err
	}
	for ext, data := range map[string][]byte{"md": []byte(md), "json": js, "csv": cs} {
		if err := atomicfile.Write(out+"."+ext, data); err != nil {
			return err
		}
	}
	figure := "png,svg"
	if err := drawFigure(rep, out); errors.Is(err, errNoFigure) {
		fmt.Fprintf(os.Stderr, "no figure: %v\n", err)
		figure = ""
	} else if err != nil {
		return err
	}
	if jsonOut {
		_, err := os.Stdout.Write(js)
		fmt.Fprintf(os.Stderr, "wrote %s.{md,csv,json%s}\n", out, strings.TrimSuffix(","+figure, ","))
		return err
	}
	fmt.Print(md)
	fmt.Printf("\nwrote %s.{md,csv,json%s}\n", out, strings.TrimSuffix(","+figure, ","))
	return nil
}
