package datasets

import (
	"fmt"
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

// DefaultTemplates is the prompt set for datasets without their own.
var DefaultTemplates = []string{"a photo of a {}."}

// File is one file of a dataset's layout.
type File struct {
	Path   string // relative to the dataset's RootFolder, slash-separated
	Size   int64  // bytes; 0 when unknown
	SHA256 string // lower-case hex; "" when unknown
}

// Split is one split of an ELEVATER dataset: its index (a vision-datasets index
// file, or a COCO-style JSON when the name ends in .json), the archives the index
// refers to, and the number of images.
type Split struct {
	Index     File
	Zips      []File
	NumImages int
}

// Info describes one ELEVATER dataset.
//
// The ELEVATER registry publishes neither sizes nor checksums of its files, so the
// registry leaves File.Size and File.SHA256 empty; Fetch verifies whatever a File
// carries.
type Info struct {
	Name       string
	NumClasses int
	Metric     string // one of the Metric constants
	MultiLabel bool
	// ResizeOnly marks datasets the toolkit resizes to a square without a centre
	// crop (kitti-distance, whose label depends on the whole frame).
	ResizeOnly bool

	// RootFolder is where the dataset's files live below the download root and
	// below the base URL.
	RootFolder string
	// Labelmap is labels.txt or similar; Path is "" where the index is COCO JSON
	// carrying the category names.
	Labelmap File
	// Train and Test always exist; Val is nil where ELEVATER has none. The
	// paper's protocol never uses Val: it validates on part of the few-shot set.
	Train, Val, Test *Split

	// Classes are the names ELEVATER puts into the prompt templates to initialise
	// the head (CLIP's cleaned-up names), index-aligned with the labels; nil where
	// unknown, in which case the labelmap's names are used, as the toolkit does
	// (see PromptClasses).
	Classes []string
	// Templates are the prompt templates, "{}" standing for the class name.
	Templates []string
}

// TrainSize returns the number of training images (ELEVATER's train split).
func (i Info) TrainSize() int {
	if i.Train == nil {
		return 0
	}
	return i.Train.NumImages
}

// TestSize returns the number of test images.
func (i Info) TestSize() int {
	if i.Test == nil {
		return 0
	}
	return i.Test.NumImages
}

// Split returns the named split ("train", "val" or "test").
func (i Info) Split(name string) (*Split, error) {
	var s *Split
	switch name {
	case TrainSplit:
		s = i.Train
	case ValSplit:
		s = i.Val
	case TestSplit:
		s = i.Test
	default:
		return nil, fmt.Errorf("datasets: unknown split %q (want train, val or test)", name)
	}
	if s == nil {
		return nil, fmt.Errorf("datasets: %s has no %s split", i.Name, name)
	}
	return s, nil
}

// Files lists the files of the named splits (all splits when none are named) plus
// the labelmap, each once, in a fixed order: labelmap, then per split its index and
// archives.
func (i Info) Files(splits ...string) ([]File, error) {
	if len(splits) == 0 {
		for _, name := range []string{TrainSplit, ValSplit, TestSplit} {
			if s, _ := i.Split(name); s != nil {
				splits = append(splits, name)
			}
		}
	}
	var files []File
	seen := map[string]bool{}
	add := func(f File) {
		if f.Path != "" && !seen[f.Path] {
			seen[f.Path] = true
			files = append(files, f)
		}
	}
	add(i.Labelmap)
	for _, name := range splits {
		s, err := i.Split(name)
		if err != nil {
			return nil, err
		}
		add(s.Index)
		for _, z := range s.Zips {
			add(z)
		}
	}
	return files, nil
}

// PromptTemplates returns the dataset's templates, or DefaultTemplates.
func (i Info) PromptTemplates() []string {
	if len(i.Templates) == 0 {
		return DefaultTemplates
	}
	return i.Templates
}

// PromptClasses returns the class names to put into the templates: Classes when
// the registry has them, else labelmap (the names a loaded Dataset carries).
func (i Info) PromptClasses(labelmap []string) []string {
	if i.Classes != nil {
		return i.Classes
	}
	return labelmap
}

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

func cloneInfo(i Info) Info {
	cp := func(s *Split) *Split {
		if s == nil {
			return nil
		}
		c := *s
		c.Zips = slices.Clone(s.Zips)
		return &c
	}
	i.Train, i.Val, i.Test = cp(i.Train), cp(i.Val), cp(i.Test)
	i.Classes = slices.Clone(i.Classes)
	i.Templates = slices.Clone(i.Templates)
	return i
}

// Registry returns the 20 ELEVATER datasets sorted by name. The result is a copy.
func Registry() []Info {
	out := make([]Info, len(elevater))
	for k, i := range elevater {
		out[k] = cloneInfo(i)
	}
	return out
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
			return cloneInfo(i), nil
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

// LoadELEVATER loads split ("train", "val" or "test") of the registered dataset
// name from root, the folder Fetch downloaded it into (files under
// root/<RootFolder>/). Classes are the dataset's own labelmap (or COCO category)
// names; use Info.PromptClasses for the names that go into prompts.
func LoadELEVATER(root, name, split string) (*Dataset, error) {
	info, err := Lookup(name)
	if err != nil {
		return nil, err
	}
	s, err := info.Split(split)
	if err != nil {
		return nil, err
	}
	dir := filepath.Join(root, filepath.FromSlash(info.RootFolder))
	index := filepath.Join(dir, filepath.FromSlash(s.Index.Path))
	var d *Dataset
	if strings.HasSuffix(strings.ToLower(s.Index.Path), ".json") {
		d, err = LoadCOCO(index, info.MultiLabel)
	} else {
		labelmap := ""
		if info.Labelmap.Path != "" {
			labelmap = filepath.Join(dir, filepath.FromSlash(info.Labelmap.Path))
		}
		d, err = LoadIndex(index, labelmap, info.MultiLabel)
	}
	if err != nil {
		return nil, err
	}
	switch n := len(d.Classes); {
	case n > info.NumClasses:
		d.Close()
		return nil, fmt.Errorf("datasets: %s: %s names %d classes, the registry expects %d", name, index, n, info.NumClasses)
	case n < info.NumClasses && info.Labelmap.Path == "" && !strings.HasSuffix(strings.ToLower(s.Index.Path), ".json"):
		// Without a labelmap the classes were inferred from the largest label;
		// absent top classes must still get a slot.
		d.Classes = numberedClasses(info.NumClasses)
	case n < info.NumClasses:
		d.Close()
		return nil, fmt.Errorf("datasets: %s: %s names %d classes, the registry expects %d", name, index, n, info.NumClasses)
	}
	d.Name = name
	return d, nil
}
