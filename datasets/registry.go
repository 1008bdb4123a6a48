package datasets

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"sort"
	"strings"
)

// Metric names, as the ELEVATER toolkit spells them (TEST.METRIC) and as
// metrics.Evaluate accepts them.
const (
	MetricAccuracy     = "accuracy"
	MetricMeanPerClass = "mean-per-class"
	MetricROCAUC       = "roc_auc"
	MetricMAP11        = "11point_mAP"
)

// Split names.
const (
	TrainSplit = "train"
	ValSplit   = "val"
	TestSplit  = "test"
)

// DefaultTemplates is kadapt's own generic prompt set, used for every dataset unless
// a templates file (LoadTemplates) gives one. ELEVATER's per-dataset sets are not
// bundled: they are the toolkit's resources, not this project's.
var DefaultTemplates = []string{
	"a photo of a {}.",
	"a bad photo of a {}.",
	"a photo of the {}.",
	"itap of a {}.",
	"a good photo of the {}.",
	"a close-up photo of a {}.",
	"a blurry photo of the {}.",
	"a picture showing a {}.",
}

// Info describes one ELEVATER dataset: the facts the protocol needs. Class names come
// from the dataset's labelmap when it is loaded; files are found on disk.
type Info struct {
	Name       string
	NumClasses int
	Metric     string // one of the Metric constants
	MultiLabel bool
	// ResizeOnly marks datasets resized to a square without a centre crop
	// (kitti-distance, whose label depends on the whole frame).
	ResizeOnly  bool
	TrainImages int
	TestImages  int
}

// TrainSize returns the number of training images.
func (i Info) TrainSize() int { return i.TrainImages }

// TestSize returns the number of test images.
func (i Info) TestSize() int { return i.TestImages }

// Prompts fills each template with the class name: prompts[c][t].
func Prompts(classes, templates []string) [][]string {
	out := make([][]string, len(classes))
	for c, name := range classes {
		out[c] = make([]string, len(templates))
		for t, tmpl := range templates {
			out[c][t] = strings.ReplaceAll(tmpl, "{}", name)
		}
	}
	return out
}

// Registry returns the 20 ELEVATER datasets sorted by name. The result is a copy.
func Registry() []Info {
	return slices.Clone(elevater)
}

// Names returns the registered dataset names, sorted.
func Names() []string {
	names := make([]string, len(elevater))
	for k, i := range elevater {
		names[k] = i.Name
	}
	return names
}

// Lookup returns the dataset called name (exact ELEVATER spelling). The error for
// an unknown name lists the registered names closest to it.
func Lookup(name string) (Info, error) {
	for _, i := range elevater {
		if i.Name == name {
			return i, nil
		}
	}
	near := closeNames(name, Names())
	if len(near) == 0 {
		return Info{}, fmt.Errorf("datasets: unknown dataset %q; known: %s", name, strings.Join(Names(), ", "))
	}
	return Info{}, fmt.Errorf("datasets: unknown dataset %q; did you mean %s?", name, strings.Join(near, ", "))
}

// canonical folds case and the separators the ELEVATER names mix ("eurosat_clip",
// "oxford-iiit-pets") so "EuroSAT-CLIP" and "eurosat_clip" meet.
func canonical(s string) string {
	return strings.NewReplacer("-", "", "_", "", " ", "", ".", "").Replace(strings.ToLower(s))
}

// closeNames ranks candidates by edit distance of their canonical forms; prefix
// and substring matches count as close ("cifar" → cifar-10, cifar-100).
func closeNames(name string, candidates []string) []string {
	q := canonical(name)
	type scored struct {
		name string
		d    int
	}
	var hits []scored
	for _, c := range candidates {
		cc := canonical(c)
		d := editDistance(q, cc)
		if q != "" && (strings.Contains(cc, q) || strings.Contains(q, cc)) {
			d = min(d, 1)
		}
		if d <= max(2, len(q)/3) {
			hits = append(hits, scored{c, d})
		}
	}
	sort.SliceStable(hits, func(a, b int) bool { return hits[a].d < hits[b].d })
	out := make([]string, 0, len(hits))
	for _, h := range hits {
		out = append(out, h.name)
	}
	if len(out) > 5 {
		out = out[:5]
	}
	return out
}

func editDistance(a, b string) int {
	ra, rb := []rune(a), []rune(b)
	prev := make([]int, len(rb)+1)
	cur := make([]int, len(rb)+1)
	for j := range prev {
		prev[j] = j
	}
	for i := 1; i <= len(ra); i++ {
		cur[0] = i
		for j := 1; j <= len(rb); j++ {
			cost := 1
			if ra[i-1] == rb[j-1] {
				cost = 0
			}
			cur[j] = min(prev[j]+1, cur[j-1]+1, prev[j-1]+cost)
		}
		prev, cur = cur, prev
	}
	return prev[len(rb)]
}

// LoadELEVATER loads split ("train", "val" or "test") of the registered dataset name
// from root. kadapt carries no table of ELEVATER's file layouts; the files are found
// by scanning:
//
//   - Folder: root/<name> if it exists; otherwise the one folder directly under root
//     whose name starts with the dataset's name, case ignored and separators ('-',
//     '_', '.') optional, where the name must end there or be followed by a separator
//     (caltech_101_20211007, caltech101 and Caltech-101-v2 hold caltech-101;
//     cifar10_20211007 holds cifar-10 while cifar_100 does not). Two such folders
//     are an error.
//   - Labelmap: labels.txt in that folder, else labelmap.txt; one class name a line.
//     Without either, classes are numbered 0…NumClasses-1 (names matter only for a
//     text-initialised head).
//   - Index: among the folder's .txt and .json files (the labelmaps excepted), those
//     whose name holds the split's name as a word (letters not running on:
//     "test_ic.txt" and "mnist-test.json" count for test, "trainval.txt" for neither
//     train nor val); if no name does, those that merely contain it. Of several, the
//     one named exactly <split>.txt or <split>.json wins; otherwise it is an error.
//     A .txt index holds vision-datasets lines "zip@path/in/zip labels" (labels
//     comma-separated, 0-based); a .json index is COCO style (file_name "zip@path",
//     category_id from 1), whose categories name the classes. Zips are resolved
//     relative to the index file.
//
// The classes found must number the registry's NumClasses.
func LoadELEVATER(root, name, split string) (*Dataset, error) {
	info, err := Lookup(name)
	if err != nil {
		return nil, err
	}
	if split != TrainSplit && split != ValSplit && split != TestSplit {
		return nil, fmt.Errorf("datasets: unknown split %q (want train, val or test)", split)
	}
	dir, err := findDatasetDir(root, name)
	if err != nil {
		return nil, err
	}
	index, err := findIndex(dir, split)
	if err != nil {
		return nil, err
	}
	var d *Dataset
	if strings.HasSuffix(strings.ToLower(index), ".json") {
		d, err = LoadCOCO(index, info.MultiLabel)
	} else {
		labelmap := ""
		for _, lm := range labelmapNames {
			if p := filepath.Join(dir, lm); fileExists(p) {
				labelmap = p
				break
			}
		}
		d, err = LoadIndex(index, labelmap, info.MultiLabel)
		if err == nil && labelmap == "" && len(d.Classes) < info.NumClasses {
			// Without a labelmap the classes were inferred from the largest label;
			// absent top classes must still get a slot.
			d.Classes = numberedClasses(info.NumClasses)
		}
	}
	if err != nil {
		return nil, err
	}
	if n := len(d.Classes); n != info.NumClasses {
		d.Close()
		return nil, fmt.Errorf("datasets: %s: %s names %d classes, the registry expects %d for %s", dir, filepath.Base(index), n, info.NumClasses, name)
	}
	d.Name = name
	return d, nil
}

// labelmapNames are the labelmap files LoadELEVATER looks for, in order of preference.
var labelmapNames = []string{"labels.txt", "labelmap.txt"}

func fileExists(p string) bool {
	st, err := os.Stat(p)
	return err == nil && !st.IsDir()
}

// findDatasetDir applies LoadELEVATER's folder rule.
func findDatasetDir(root, name string) (string, error) {
	exact := filepath.Join(root, name)
	if st, err := os.Stat(exact); err == nil && st.IsDir() {
		return exact, nil
	}
	entries, err := os.ReadDir(root)
	if errors.Is(err, fs.ErrNotExist) {
		// Most often a mistyped root, or a dataset not fetched yet; say which folder.
		return "", fmt.Errorf("datasets: looking for %s: the data root %s does not exist (`host data fetch %s --root %s` downloads the dataset there)", name, root, name, root)
	}
	if err != nil {
		return "", fmt.Errorf("datasets: looking for %s: %w", name, err)
	}
	var hits, dirs []string
	for _, e := range entries {
		if !e.IsDir() {
			continue
		}
		dirs = append(dirs, e.Name())
		if folderMatches(e.Name(), name) {
			hits = append(hits, e.Name())
		}
	}
	switch len(hits) {
	case 1:
		return filepath.Join(root, hits[0]), nil
	case 0:
		return "", fmt.Errorf("datasets: %s: no folder for %s (looked for %s or a folder whose name starts with %q, '-' and '_' alike); folders there: %s",
			root, name, name, name, listOrNone(dirs))
	}
	return "", fmt.Errorf("datasets: %s: several folders could hold %s: %s; keep one, or name it %s", root, name, strings.Join(hits, ", "), name)
}

// folderMatches reports whether folder starts with the dataset's name, case folded
// and with separators ('-', '_', '.') optional on both sides, and the name ends at a
// separator (or the end) of the folder's name: cifar10_20211007 and cifar_10 hold
// cifar-10, cifar_100 and cifar100 do not.
func folderMatches(folder, name string) bool {
	isSep := func(c byte) bool { return c == '-' || c == '_' || c == '.' }
	f, n := strings.ToLower(folder), strings.ToLower(name)
	i, j := 0, 0
	for j < len(n) {
		switch {
		case isSep(n[j]):
			j++
		case i < len(f) && isSep(f[i]):
			i++
		case i < len(f) && f[i] == n[j]:
			i, j = i+1, j+1
		default:
			return false
		}
	}
	return i == len(f) || isSep(f[i])
}

func listOrNone(names []string) string {
	if len(names) == 0 {
		return "none"
	}
	return strings.Join(names, ", ")
}

func isIndexName(n string) bool {
	l := strings.ToLower(n)
	return (strings.HasSuffix(l, ".txt") || strings.HasSuffix(l, ".json")) && !slices.Contains(labelmapNames, l)
}

// hasWord reports whether split occurs in name as a run of letters of its own:
// "test" in "test_ic" and "mnist-test2", not in "latest" or "trainval".
func hasWord(name, split string) bool {
	words := strings.FieldsFunc(strings.ToLower(name), func(r rune) bool { return r < 'a' || r > 'z' })
	return slices.Contains(words, split)
}

// findIndex finds the split's index file in dir (LoadELEVATER's index rule).
func findIndex(dir, split string) (string, error) {
	entries, err := os.ReadDir(dir)
	if err != nil {
		return "", fmt.Errorf("datasets: %w", err)
	}
	var words, contains, all []string
	for _, e := range entries {
		if e.IsDir() || !isIndexName(e.Name()) {
			continue
		}
		all = append(all, e.Name())
		base := strings.TrimSuffix(strings.TrimSuffix(strings.ToLower(e.Name()), ".txt"), ".json")
		switch {
		case hasWord(base, split):
			words = append(words, e.Name())
		case strings.Contains(base, split):
			contains = append(contains, e.Name())
		}
	}
	hits := words
	if len(hits) == 0 {
		hits = contains
	}
	switch len(hits) {
	case 1:
		return filepath.Join(dir, hits[0]), nil
	case 0:
		return "", fmt.Errorf("datasets: %s: no index file for the %s split (a .txt or .json whose name contains %q); index candidates there: %s",
			dir, split, split, listOrNone(all))
	}
	// "train.txt" beside "train_ic.txt": the exact name wins, if only one has it.
	var exact []string
	for _, h := range hits {
		if b := strings.ToLower(strings.TrimSuffix(strings.TrimSuffix(h, ".txt"), ".json")); b == split {
			exact = append(exact, h)
		}
	}
	if len(exact) == 1 {
		return filepath.Join(dir, exact[0]), nil
	}
	return "", fmt.Errorf("datasets: %s: several index files could be the %s split: %s; keep one, or name it %s.txt", dir, split, strings.Join(hits, ", "), split)
}
