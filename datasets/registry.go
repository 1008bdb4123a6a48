package datasets

import (
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"sort"
	"strconv"
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
	"a photo of the {}.",
	"a bad photo of a {}.",
	"a good photo of a {}.",
	"a close-up photo of a {}.",
	"a cropped photo of the {}.",
	"an image of a {}.",
	"itap of a {}.",
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
// from root. The files are found on disk rather than from a transcribed layout:
//
//   - the dataset folder is root/<name>, or the one folder under root whose name,
//     less a trailing _YYYYMMDD date, and the dataset's name are one a prefix of the
//     other (case, '-' and '_' ignored: caltech_101_20211007 for caltech-101,
//     voc2007_20211007 for voc-2007-classification), or root itself when it holds
//     the index files;
//   - the labelmap is labels.txt or labelmap.txt in that folder (optional: without
//     one, classes are numbered);
//   - the split's index is the one .txt (vision-datasets lines "zip@path labels") or
//     .json (COCO style) file whose name contains the split's name; zips are resolved
//     next to the index.
//
// Classes are the labelmap's (or the COCO categories') names.
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
		for _, lm := range []string{"labels.txt", "labelmap.txt"} {
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
		return nil, fmt.Errorf("datasets: %s: %s names %d classes, the registry expects %d", name, index, n, info.NumClasses)
	}
	d.Name = name
	return d, nil
}

func fileExists(p string) bool {
	st, err := os.Stat(p)
	return err == nil && !st.IsDir()
}

// findDatasetDir applies LoadELEVATER's folder rule.
func findDatasetDir(root, name string) (string, error) {
	if st, err := os.Stat(filepath.Join(root, name)); err == nil && st.IsDir() {
		return filepath.Join(root, name), nil
	}
	entries, err := os.ReadDir(root)
	if err != nil {
		return "", fmt.Errorf("datasets: %w", err)
	}
	want := canonical(name)
	var hits []string
	hasIndex := false
	for _, e := range entries {
		if e.IsDir() && folderMatches(e.Name(), want) {
			hits = append(hits, e.Name())
		}
		if !e.IsDir() && isIndexName(e.Name()) {
			hasIndex = true
		}
	}
	switch {
	case len(hits) == 1:
		return filepath.Join(root, hits[0]), nil
	case len(hits) > 1:
		return "", fmt.Errorf("datasets: %s: several folders could hold %s: %s; pass the dataset's own folder as the root", root, name, strings.Join(hits, ", "))
	case hasIndex:
		return root, nil
	}
	return "", fmt.Errorf("datasets: %s: no folder for %s (looked for %s/%s, a folder starting with %q, or index files in %s itself)", root, name, root, name, name, root)
}

// folderMatches reports whether a folder (minus a trailing _YYYYMMDD version date, as
// the blob store names them) and a dataset name are one a prefix of the other, in
// canonical form: voc2007_20211007 holds voc-2007-classification.
func folderMatches(folder, canonicalName string) bool {
	if i := strings.LastIndexByte(folder, '_'); i > 0 && len(folder)-i-1 == 8 {
		if _, err := strconv.Atoi(folder[i+1:]); err == nil {
			folder = folder[:i]
		}
	}
	f := canonical(folder)
	return len(f) >= 3 && (strings.HasPrefix(canonicalName, f) || strings.HasPrefix(f, canonicalName))
}

func isIndexName(n string) bool {
	l := strings.ToLower(n)
	return (strings.HasSuffix(l, ".txt") || strings.HasSuffix(l, ".json")) && l != "labels.txt" && l != "labelmap.txt"
}

// findIndex finds the split's index file in dir.
func findIndex(dir, split string) (string, error) {
	entries, err := os.ReadDir(dir)
	if err != nil {
		return "", fmt.Errorf("datasets: %w", err)
	}
	var hits, all []string
	for _, e := range entries {
		if e.IsDir() || !isIndexName(e.Name()) {
			continue
		}
		all = append(all, e.Name())
		if strings.Contains(strings.ToLower(e.Name()), split) {
			hits = append(hits, e.Name())
		}
	}
	switch len(hits) {
	case 1:
		return filepath.Join(dir, hits[0]), nil
	case 0:
		return "", fmt.Errorf("datasets: %s: no index file for the %s split (a .txt or .json whose name contains %q); found: %s", dir, split, split, strings.Join(all, ", "))
	}
	// "train.txt" beside "train_val.txt": the exact name wins.
	for _, h := range hits {
		if b := strings.ToLower(strings.TrimSuffix(strings.TrimSuffix(h, ".txt"), ".json")); b == split {
			return filepath.Join(dir, h), nil
		}
	}
	return "", fmt.Errorf("datasets: %s: several index files could be the %s split: %s", dir, split, strings.Join(hits, ", "))
}
