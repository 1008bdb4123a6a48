package datasets

import (
	"path/filepath"
	"slices"
	"strings"
	"testing"
)

// The protocol table of the method notes (ELEVATER names; classes; train / test
// sizes; metric), typed in independently of the registry data.
var protocolTable = []struct {
	name        string
	classes     int
	train, test int
	metric      string
	multiLabel  bool
	resizeOnly  bool
}{
	{"caltech-101", 102, 3060, 6084, MetricMeanPerClass, false, false},
	{"cifar-10", 10, 50000, 10000, MetricAccuracy, false, false},
	{"cifar-100", 100, 50000, 10000, MetricAccuracy, false, false},
	{"country211", 211, 31650, 21100, MetricAccuracy, false, false},
	{"dtd", 47, 1880, 1880, MetricAccuracy, false, false},
	{"eurosat_clip", 10, 5000, 5000, MetricAccuracy, false, false},
	{"fer-2013", 7, 28709, 3589, MetricAccuracy, false, false},
	{"fgvc-aircraft-2013b-variants102", 100, 3334, 3333, MetricMeanPerClass, false, false},
	{"food-101", 101, 75750, 25250, MetricAccuracy, false, false},
	{"gtsrb", 43, 26640, 12630, MetricAccuracy, false, false},
	{"hateful-memes", 2, 8500, 500, MetricROCAUC, false, false},
	{"kitti-distance", 4, 6347, 711, MetricAccuracy, false, true},
	{"mnist", 10, 60000, 10000, MetricAccuracy, false, false},
	{"oxford-flower-102", 102, 1020, 6149, MetricMeanPerClass, false, false},
	{"oxford-iiit-pets", 37, 3680, 3669, MetricMeanPerClass, false, false},
	{"patch-camelyon", 2, 262144, 32768, MetricAccuracy, false, false},
	{"rendered-sst2", 2, 6920, 1821, MetricAccuracy, false, false},
	{"resisc45_clip", 45, 3150, 25200, MetricAccuracy, false, false},
	{"stanford-cars", 196, 8144, 8041, MetricAccuracy, false, false},
	{"voc-2007-classification", 20, 2501, 4952, MetricMAP11, true, false},
}

func TestRegistryMatchesProtocol(t *testing.T) {
	reg := Registry()
	if len(reg) != len(protocolTable) {
		t.Fatalf("%d datasets, want %d", len(reg), len(protocolTable))
	}
	for k, want := range protocolTable {
		got := reg[k]
		if got.Name != want.name || got.NumClasses != want.classes || got.TrainSize() != want.train ||
			got.TestSize() != want.test || got.Metric != want.metric || got.MultiLabel != want.multiLabel || got.ResizeOnly != want.resizeOnly {
			t.Errorf("registry[%d] = %+v; want %+v", k, got, want)
		}
	}
	if got := Names(); !slices.IsSorted(got) || len(got) != 20 {
		t.Errorf("Names() = %q, want 20 sorted names", got)
	}
	// Registry hands out a copy.
	reg[0].NumClasses = 1
	if again, _ := Lookup(reg[0].Name); again.NumClasses == 1 {
		t.Error("mutating Registry()'s result changed the registry")
	}
	p := Prompts([]string{"cat", "dog"}, []string{"a photo of a {}.", "{} art"})
	if p[1][0] != "a photo of a dog." || p[0][1] != "cat art" {
		t.Errorf("Prompts = %q", p)
	}
	for _, tmpl := range DefaultTemplates {
		if strings.Count(tmpl, "{}") != 1 {
			t.Errorf("default template %q lacks a single {}", tmpl)
		}
	}
}

func TestLoadTemplates(t *testing.T) {
	dir := t.TempDir()
	y := filepath.Join(dir, "prompts.yaml")
	writeFile(t, y, []byte("templates:\n  cifar-10: [\"a photo of a {}.\", \"a blurry photo of a {}.\"]\n  \"*\": [\"itap of a {}.\"]\nclasses:\n  hateful-memes: [fine, hateful]\n"))
	tf, err := LoadTemplates(y)
	if err != nil {
		t.Fatal(err)
	}
	if got := tf.For("cifar-10"); !slices.Equal(got, []string{"a photo of a {}.", "a blurry photo of a {}."}) {
		t.Errorf("cifar-10 templates %q", got)
	}
	if got := tf.For("dtd"); !slices.Equal(got, []string{"itap of a {}."}) {
		t.Errorf("fallback templates %q", got)
	}
	if got := (*TemplateFile)(nil).For("dtd"); !slices.Equal(got, DefaultTemplates) {
		t.Errorf("nil file templates %q", got)
	}
	if got, err := tf.ClassNames("hateful-memes", []string{"0", "1"}); err != nil || !slices.Equal(got, []string{"fine", "hateful"}) {
		t.Errorf("class override %q %v", got, err)
	}
	if got, err := tf.ClassNames("dtd", []string{"banded"}); err != nil || !slices.Equal(got, []string{"banded"}) {
		t.Errorf("labelmap names %q %v", got, err)
	}
	_, err = tf.ClassNames("hateful-memes", []string{"0", "1", "2"})
	wantErr(t, err, "prompts.yaml", "classes.hateful-memes has 2 names", "3 classes")

	// The flat form: dataset → templates, no "*", so others get the defaults.
	j := filepath.Join(dir, "flat.json")
	writeFile(t, j, []byte(`{"mnist": ["a photo of the number: \"{}\"."], "dtd": ["a photo of a {} texture.", "{} pattern"]}`))
	flat, err := LoadTemplates(j)
	if err != nil {
		t.Fatal(err)
	}
	if got := flat.For("dtd"); !slices.Equal(got, []string{"a photo of a {} texture.", "{} pattern"}) {
		t.Errorf("flat dtd templates %q", got)
	}
	if got := flat.For("gtsrb"); !slices.Equal(got, DefaultTemplates) {
		t.Errorf("flat file, unnamed dataset: %q, want the defaults", got)
	}
	if p := Prompts([]string{"7"}, flat.For("mnist")); p[0][0] != `a photo of the number: "7".` {
		t.Errorf("flat mnist prompt %q", p[0][0])
	}

	for _, tt := range []struct{ file, body string }{
		{"noplaceholder.json", `{"templates": {"dtd": ["no placeholder"]}}`},
		{"two.yaml", "dtd: [\"{} and {}\"]\n"},
		{"extra.json", `{"templates": {"dtd": ["{}"]}, "prompts": {}}`},
		{"emptylist.yaml", "templates:\n  dtd: []\n"},
		{"misspelt.yaml", "cifar10: [\"a {}\"]\n"},
		{"misspeltclass.json", `{"classes": {"hatefulmemes": ["a", "b"]}}`},
		{"blank.yaml", "classes:\n  dtd: [a, \" \"]\n"},
		{"notlist.json", `{"dtd": "a photo of a {}."}`},
		{"empty.yaml", ""},
		{"syntax.json", `{"dtd": [`},
		{"number.yaml", "templates:\n  dtd: [\"{}\", 3]\n"},
		{"section.json", `{"classes": ["a"]}`},
	} {
		t.Run(tt.file, func(t *testing.T) {
			p := filepath.Join(dir, tt.file)
			writeFile(t, p, []byte(tt.body))
			_, err := LoadTemplates(p)
			want := map[string][]string{
				"noplaceholder.json": {"templates.dtd[0]", "exactly one {}"},
				"two.yaml":           {"templates.dtd[0]", "exactly one {}"},
				"extra.json":         {`"prompts"`},
				"emptylist.yaml":     {"templates.dtd is empty"},
				"misspelt.yaml":      {"templates.cifar10", "cifar-10"},
				"misspeltclass.json": {"classes.hatefulmemes", "hateful-memes"},
				"blank.yaml":         {"classes.dtd[1] is blank"},
				"notlist.json":       {"dtd must be a list of strings"},
				"number.yaml":        {"templates.dtd[1] must be a string"},
				"section.json":       {"classes must map dataset names"},
				"empty.yaml":         {"empty file"},
				"syntax.json":        {"unexpected EOF"},
			}[tt.file]
			wantErr(t, err, append([]string{p}, want...)...)
		})
	}
	_, err = LoadTemplates(filepath.Join(dir, "missing.yaml"))
	wantErr(t, err, "missing.yaml")
}

func TestLookupSuggestions(t *testing.T) {
	tests := []struct {
		query string
		want  []string
	}{
		{"cifar", []string{"cifar-10", "cifar-100"}},
		{"Food101", []string{"food-101"}},
		{"eurosat", []string{"eurosat_clip"}},
		{"stanford_cars", []string{"stanford-cars"}},
		{"zzzzzzzzzzzz", []string{"known:", "caltech-101", "voc-2007-classification"}},
	}
	for _, tt := range tests {
		_, err := Lookup(tt.query)
		wantErr(t, err, append([]string{`"` + tt.query + `"`}, tt.want...)...)
	}
}
