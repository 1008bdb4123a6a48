package datasets

import (
	"archive/zip"
	"bytes"
	"fmt"
	"image"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"
)

// elevaterFixture writes the vision-datasets layout: a labelmap, an archive with a
// stored and a deflated member, and a plain file beside the index.
func elevaterFixture(t *testing.T, dir string) map[string][]byte {
	t.Helper()
	files := map[string][]byte{
		"a/0.png":     pngBytes(t, testImage(0, 3, 2)),
		"a/1.png":     pngBytes(t, testImage(1, 2, 4)),
		"b c/2.png":   pngBytes(t, testImage(2, 5, 1)),
		"extra/3.png": pngBytes(t, testImage(3, 1, 1)),
	}
	writeZip(t, filepath.Join(dir, "train.zip"), []zipMember{
		{"a/0.png", files["a/0.png"], zip.Store},
		{"a/1.png", files["a/1.png"], zip.Deflate},
		{"b c/2.png", files["b c/2.png"], zip.Deflate},
	})
	writeFile(t, filepath.Join(dir, "extra/3.png"), files["extra/3.png"])
	writeFile(t, filepath.Join(dir, "labels.txt"), []byte("cat\n  dog \n\nbird\n"))
	return files
}

func TestLoadIndex(t *testing.T) {
	dir := t.TempDir()
	files := elevaterFixture(t, dir)
	index := filepath.Join(dir, "train.txt")
	writeFile(t, index, []byte("train.zip@a/0.png 0\r\ntrain.zip@a/1.png 2\n\n  train.zip@b c/2.png 1\nextra/3.png 2\n"))
	d, err := LoadIndex(index, filepath.Join(dir, "labels.txt"), false)
	if err != nil {
		t.Fatal(err)
	}
	defer d.Close()
	if want := []string{"cat", "dog", "bird"}; !slices.Equal(d.Classes, want) {
		t.Errorf("classes %q, want %q", d.Classes, want)
	}
	want := []struct {
		member string
		label  int
		source string
	}{
		{"a/0.png", 0, filepath.Join(dir, "train.zip") + "@a/0.png"},
		{"a/1.png", 2, filepath.Join(dir, "train.zip") + "@a/1.png"},
		{"b c/2.png", 1, filepath.Join(dir, "train.zip") + "@b c/2.png"},
		{"extra/3.png", 2, filepath.Join(dir, "extra", "3.png")},
	}
	if d.Len() != len(want) || d.Name != "train" || d.MultiLabel {
		t.Fatalf("got %d samples, name %q, multi-label %v", d.Len(), d.Name, d.MultiLabel)
	}
	for i, w := range want {
		s := d.Samples[i]
		if s.Source != w.source || !slices.Equal(s.Labels, []int{w.label}) {
			t.Errorf("sample %d = %+v, want source %q label %d", i, s, w.source, w.label)
		}
		if got := readAllOpen(t, d, i); !bytes.Equal(got, files[w.member]) {
			t.Errorf("Open(%d) returned %d bytes differing from the %d written", i, len(got), len(files[w.member]))
		}
		img, err := d.Image(i)
		if err != nil {
			t.Fatal(err)
		}
		samePixels(t, img, testImage(uint8(i), img.Bounds().Dx(), img.Bounds().Dy()))
	}
	if _, err := d.Open(4); err == nil {
		t.Error("Open(4) of 4 samples: no error")
	}

	// A subset keeps image access; Close drops cached archives, which reopen on demand.
	sub := d.Subset(d.Samples[1:2])
	if err := d.Close(); err != nil {
		t.Fatal(err)
	}
	if got := readAllOpen(t, sub, 0); !bytes.Equal(got, files["a/1.png"]) {
		t.Error("subset after Close: wrong bytes")
	}
	// A Dataset built by hand opens zip members without a cache.
	hand := &Dataset{Samples: d.Samples}
	if got := readAllOpen(t, hand, 2); !bytes.Equal(got, files["b c/2.png"]) {
		t.Error("uncached open: wrong bytes")
	}
}

func TestLoadIndexMultiLabel(t *testing.T) {
	dir := t.TempDir()
	elevaterFixture(t, dir)
	index := filepath.Join(dir, "train_ic.txt")
	writeFile(t, index, []byte("train.zip@a/0.png 0,2\ntrain.zip@a/1.png\ntrain.zip@b c/2.png 1\n"))
	d, err := LoadIndex(index, "", true)
	if err != nil {
		t.Fatal(err)
	}
	if !d.MultiLabel || !slices.Equal(d.Classes, []string{"0", "1", "2"}) {
		t.Errorf("multi-label %v, classes %q; want true, 0 1 2", d.MultiLabel, d.Classes)
	}
	got := [][]int{d.Samples[0].Labels, d.Samples[1].Labels, d.Samples[2].Labels}
	if !slices.Equal(got[0], []int{0, 2}) || len(got[1]) != 0 || !slices.Equal(got[2], []int{1}) {
		t.Errorf("labels %v, want [[0 2] [] [1]]", got)
	}
}

func TestLoadIndexErrors(t *testing.T) {
	tests := []struct {
		name   string
		index  string
		multi  bool
		errHas []string
	}{
		{"label not a number", "train.zip@a/0.png 0\ntrain.zip@a/1.png x\n", false, []string{"train.txt:2", `"x"`}},
		{"label out of range", "train.zip@a/0.png 0\n\ntrain.zip@a/1.png 3\n", false, []string{"train.txt:3", "out of range [0, 3)"}},
		{"negative label", "train.zip@a/0.png -1\n", true, []string{"train.txt:1", "out of range"}},
		{"trailing comma", "train.zip@a/0.png 0,\n", true, []string{"train.txt:1", `label ""`}},
		{"two labels in multi-class", "train.zip@a/0.png 0,1\n", false, []string{"train.txt:1", "2 labels, want 1"}},
		{"no label in multi-class", "train.zip@a/0.png\n", false, []string{"train.txt:1", "0 labels"}},
		{"escapes folder", "../other.zip@a/0.png 0\n", false, []string{"train.txt:1", "leaves the dataset folder"}},
		{"absolute path", "/etc/x.png 0\n", false, []string{"train.txt:1", "leaves the dataset folder"}},
		{"no member", "train.zip@ 0\n", false, []string{"train.txt:1", "names no zip member"}},
		// Lower-casing turned \xd2 into three bytes and sliced past the end (a panic).
		{"invalid utf-8 before .Zip@", "\xd2.Zip@ 0\n", false, []string{"train.txt:1", "names no zip member"}},
		{"empty", "\n\n", false, []string{"train.txt", "no images"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			dir := t.TempDir()
			elevaterFixture(t, dir)
			index := filepath.Join(dir, "train.txt")
			writeFile(t, index, []byte(tt.index))
			_, err := LoadIndex(index, filepath.Join(dir, "labels.txt"), tt.multi)
			wantErr(t, err, tt.errHas...)
		})
	}
	// Without a labelmap the classes are "0" up to the largest label: 10¹² of them.
	dir := t.TempDir()
	index := filepath.Join(dir, "train.txt")
	writeFile(t, index, []byte("a.png 0\nb.png 1000000000000\n"))
	_, err := LoadIndex(index, "", false)
	wantErr(t, err, "train.txt:2", "1000000000000", "classes")
}

func TestSplitZipSource(t *testing.T) {
	tests := []struct{ source, archive, member string }{
		{"d/train.zip@a/0.png", "d/train.zip", "a/0.png"},
		{"d/TRAIN.ZIP@a@b.png", "d/TRAIN.ZIP", "a@b.png"},
		// "İ" is two bytes and lower-cases to the one-byte "i": an offset found in the
		// lower-cased string split this one byte early, opening "İ.zi".
		{"İ.zip@x.png", "İ.zip", "x.png"},
		{"\xd2.Zip@x.png", "\xd2.Zip", "x.png"},
		{"\xd2.Zip@", "\xd2.Zip", ""},
	}
	for _, tt := range tests {
		a, m, ok := splitZipSource(tt.source)
		if !ok || a != tt.archive || m != tt.member {
			t.Errorf("splitZipSource(%q) = %q, %q, %v; want %q, %q", tt.source, a, m, ok, tt.archive, tt.member)
		}
	}
	if _, _, ok := splitZipSource("a/b.zi@p"); ok {
		t.Error(`"a/b.zi@p" split as a zip source`)
	}
}

func TestReadLabelmapErrors(t *testing.T) {
	dir := t.TempDir()
	blank := filepath.Join(dir, "labels.txt")
	writeFile(t, blank, []byte("\n \n"))
	_, err := ReadLabelmap(blank)
	wantErr(t, err, "labels.txt", "no classes")
	_, err = ReadLabelmap(filepath.Join(dir, "missing.txt"))
	wantErr(t, err, "missing.txt")
	long := filepath.Join(dir, "long.txt")
	writeFile(t, long, []byte("a\n"+strings.Repeat("x", maxLineBytes+10)+"\n"))
	_, err = ReadLabelmap(long)
	wantErr(t, err, "long.txt:2")
}

func TestMissingMember(t *testing.T) {
	dir := t.TempDir()
	elevaterFixture(t, dir)
	index := filepath.Join(dir, "train.txt")
	writeFile(t, index, []byte("train.zip@a/9.png 0\nnone.zip@a/0.png 1\n"))
	d, err := LoadIndex(index, "", false)
	if err != nil {
		t.Fatal(err)
	}
	_, err = d.Image(0)
	wantErr(t, err, "train.zip", `"a/9.png"`)
	_, err = d.Image(1)
	wantErr(t, err, "none.zip")
}

const cocoJSON = `{
  "images": [
    {"id": 3, "file_name": "train.zip@b c/2.png", "width": 5, "height": 1},
    {"id": 1, "file_name": "a/0.png", "zip_file": "train.zip"},
    {"id": 2, "file_name": "extra/3.png"}
  ],
  "annotations": [
    {"id": 1, "image_id": 1, "category_id": 2},
    {"id": 2, "image_id": 3, "category_id": 1},
    {"id": 3, "image_id": 2, "category_id": 3}
  ],
  "categories": [{"id": 2, "name": "near"}, {"id": 1, "name": "far"}, {"id": 3, "name": "middle"}]
}`

func TestLoadCOCO(t *testing.T) {
	dir := t.TempDir()
	files := elevaterFixture(t, dir)
	meta := filepath.Join(dir, "train_meta.json")
	writeFile(t, meta, []byte(cocoJSON))
	d, err := LoadCOCO(meta, false)
	if err != nil {
		t.Fatal(err)
	}
	if want := []string{"far", "near", "middle"}; !slices.Equal(d.Classes, want) {
		t.Errorf("classes %q, want %q (sorted by category id)", d.Classes, want)
	}
	// Images in id order 1, 2, 3; category ids 1, 2, 3 become labels 0, 1, 2.
	want := []struct {
		member string
		label  int
	}{{"a/0.png", 1}, {"extra/3.png", 2}, {"b c/2.png", 0}}
	for i, w := range want {
		if !slices.Equal(d.Samples[i].Labels, []int{w.label}) {
			t.Errorf("sample %d labels %v, want [%d]", i, d.Samples[i].Labels, w.label)
		}
		if got := readAllOpen(t, d, i); !bytes.Equal(got, files[w.member]) {
			t.Errorf("sample %d: bytes are not those of %s", i, w.member)
		}
	}
}

func TestLoadCOCOErrors(t *testing.T) {
	tests := []struct {
		name   string
		json   string
		multi  bool
		errHas []string
	}{
		{"syntax", "{\n\"images\": [\n{\"id\": 1,,}\n]}", false, []string{"meta.json:3"}},
		{"string id", "{\n\"images\": [\n{\"id\": \"x\", \"file_name\": \"a/0.png\"}],\n\"categories\": [{\"id\": 1, \"name\": \"a\"}]}", false, []string{"meta.json:3", "images.id"}},
		{"unknown category", `{"images": [{"id": 1, "file_name": "a/0.png"}], "annotations": [{"image_id": 1, "category_id": 9}], "categories": [{"id": 1, "name": "a"}]}`, false, []string{"meta.json", "annotations[0]", "category_id 9"}},
		{"unknown image", `{"images": [{"id": 1, "file_name": "a/0.png"}], "annotations": [{"image_id": 1, "category_id": 1}, {"image_id": 5, "category_id": 1}], "categories": [{"id": 1, "name": "a"}]}`, false, []string{"annotations[1]", "image_id 5"}},
		{"two annotations in multi-class", `{"images": [{"id": 1, "file_name": "a/0.png"}], "annotations": [{"image_id": 1, "category_id": 1}, {"image_id": 1, "category_id": 1}], "categories": [{"id": 1, "name": "a"}]}`, false, []string{"image id 1 has 2 annotations"}},
		{"duplicate image id", `{"images": [{"id": 1, "file_name": "a/0.png"}, {"id": 1, "file_name": "a/1.png"}], "categories": [{"id": 1, "name": "a"}]}`, true, []string{"images[1]", "id 1 appears twice"}},
		{"no categories", `{"images": [{"id": 1, "file_name": "a/0.png"}]}`, true, []string{"no categories"}},
		{"escaping path", `{"images": [{"id": 4, "file_name": "../../x.png"}], "categories": [{"id": 1, "name": "a"}]}`, true, []string{"images[0] (id 4)", "leaves the dataset folder"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			file := filepath.Join(t.TempDir(), "meta.json")
			writeFile(t, file, []byte(tt.json))
			_, err := LoadCOCO(file, tt.multi)
			wantErr(t, err, tt.errHas...)
		})
	}
}

// TestLoadCOCOMultiLabel: an image without annotations is a negative image.
func TestLoadCOCOMultiLabel(t *testing.T) {
	file := filepath.Join(t.TempDir(), "meta.json")
	writeFile(t, file, []byte(`{"images": [{"id": 1, "file_name": "a.png"}, {"id": 2, "file_name": "b.png"}],
		"annotations": [{"image_id": 1, "category_id": 1}, {"image_id": 1, "category_id": 2}],
		"categories": [{"id": 1, "name": "x"}, {"id": 2, "name": "y"}]}`))
	d, err := LoadCOCO(file, true)
	if err != nil {
		t.Fatal(err)
	}
	if !slices.Equal(d.Samples[0].Labels, []int{0, 1}) || len(d.Samples[1].Labels) != 0 {
		t.Errorf("labels %v, %v; want [0 1], []", d.Samples[0].Labels, d.Samples[1].Labels)
	}
}

// layout is a generated dataset tree: relative path → content. Members of zip
// archives are given as "archive.zip@member" keys and gathered into one archive
// each; directories are created for keys ending in "/".
type layout map[string]string

func (l layout) write(t *testing.T, root string) {
	t.Helper()
	archives := map[string][]zipMember{}
	for path, body := range l {
		switch {
		case strings.HasSuffix(path, "/"):
			if err := os.MkdirAll(filepath.Join(root, path), 0o755); err != nil {
				t.Fatal(err)
			}
		case strings.Contains(path, "@"):
			zipPath, member, _ := strings.Cut(path, "@")
			seed, _ := strconv.Atoi(body)
			archives[zipPath] = append(archives[zipPath], zipMember{member, pngBytes(t, testImage(uint8(seed), 2, 3)), zip.Deflate})
		default:
			writeFile(t, filepath.Join(root, path), []byte(body))
		}
	}
	for zipPath, members := range archives {
		slices.SortFunc(members, func(a, b zipMember) int { return strings.Compare(a.name, b.name) })
		writeZip(t, filepath.Join(root, zipPath), members)
	}
}

func classLines(prefix string, n int) string {
	var b strings.Builder
	for i := range n {
		fmt.Fprintf(&b, "%s%d\n", prefix, i)
	}
	return b.String()
}

func TestLoadELEVATER(t *testing.T) {
	tests := []struct {
		name     string
		files    layout
		dataset  string
		split    string
		wantDir  string   // folder the samples must come from
		classes  []string // expected class names (first and last are checked when long)
		labels   [][]int  // expected labels, sample by sample
		seeds    []int    // expected red channel of each decoded image
		errParts []string // non-nil: the error must mention each
	}{
		{
			name: "txt index in a dated folder",
			files: layout{
				"caltech_101_20211007/labels.txt":             classLines("c", 102),
				"caltech_101_20211007/train.txt":              "imgs/train.zip@a/0.png 5\nimgs/train.zip@b/1.png 101\n",
				"caltech_101_20211007/test.txt":               "imgs/test.zip@x.png 0\n",
				"caltech_101_20211007/imgs/train.zip@a/0.png": "10",
				"caltech_101_20211007/imgs/train.zip@b/1.png": "11",
				"cifar_100_20211007/labels.txt":               classLines("x", 100),
			},
			dataset: "caltech-101", split: TrainSplit, wantDir: "caltech_101_20211007",
			classes: []string{"c0", "c101"}, labels: [][]int{{5}, {101}}, seeds: []int{10, 11},
		},
		{
			name: "exact folder name and labelmap.txt",
			files: layout{
				"cifar-10/labelmap.txt":         "airplane\nautomobile\nbird\ncat\ndeer\ndog\nfrog\nhorse\nship\ntruck\n",
				"cifar-10/cifar10_val.txt":      "v.zip@0.png 9\n",
				"cifar-10/v.zip@0.png":          "3",
				"cifar_100/labels.txt":          classLines("x", 100),
				"cifar-10-copy/cifar10_val.txt": "v.zip@0.png 1\n",
			},
			dataset: "cifar-10", split: ValSplit, wantDir: "cifar-10",
			classes: []string{"airplane", "truck"}, labels: [][]int{{9}}, seeds: []int{3},
		},
		{
			name: "multi-label txt index",
			files: layout{
				"VOC-2007-Classification_v1/labels.txt":   classLines("voc", 20),
				"VOC-2007-Classification_v1/test_ic.txt":  "t.zip@1.png 4,19\nt.zip@2.png 0\n",
				"VOC-2007-Classification_v1/train_ic.txt": "t.zip@1.png 1\n",
				"VOC-2007-Classification_v1/t.zip@1.png":  "21",
				"VOC-2007-Classification_v1/t.zip@2.png":  "22",
			},
			dataset: "voc-2007-classification", split: TestSplit, wantDir: "VOC-2007-Classification_v1",
			classes: []string{"voc0", "voc19"}, labels: [][]int{{4, 19}, {0}}, seeds: []int{21, 22},
		},
		{
			name: "COCO json index, categories name the classes",
			files: layout{
				"kitti-distance.2021/images.zip@k/1.png": "40",
				"kitti-distance.2021/index-test.json": `{"images": [{"id": 1, "file_name": "images.zip@k/1.png"}],
					"annotations": [{"image_id": 1, "category_id": 4}],
					"categories": [{"id": 1, "name": "near"}, {"id": 2, "name": "mid"}, {"id": 3, "name": "far"}, {"id": 4, "name": "none"}]}`,
				"kitti-distance.2021/index-train.json": "{}",
			},
			dataset: "kitti-distance", split: TestSplit, wantDir: "kitti-distance.2021",
			classes: []string{"near", "none"}, labels: [][]int{{3}}, seeds: []int{40},
		},
		{
			name: "word match beats substring, trainval is neither",
			files: layout{
				"dtd/labels.txt":      classLines("d", 47),
				"dtd/trainval.txt":    "z.zip@0.png 1\n",
				"dtd/dtd-train-1.txt": "z.zip@0.png 46\n",
				"dtd/z.zip@0.png":     "7",
			},
			dataset: "dtd", split: TrainSplit, wantDir: "dtd",
			classes: []string{"d0", "d46"}, labels: [][]int{{46}}, seeds: []int{7},
		},
		{
			name: "exact index name wins over a longer one",
			files: layout{
				"mnist/train.txt":     "z.zip@0.png 3\n",
				"mnist/train_old.txt": "z.zip@0.png 1\n",
				"mnist/z.zip@0.png":   "8",
			},
			dataset: "mnist", split: TrainSplit, wantDir: "mnist",
			classes: []string{"0", "9"}, labels: [][]int{{3}}, seeds: []int{8},
		},
		{
			name: "two candidate folders",
			files: layout{
				"gtsrb_20211007/": "", "gtsrb-v2/": "",
			},
			dataset: "gtsrb", split: TestSplit,
			errParts: []string{"several folders could hold gtsrb", "gtsrb-v2", "gtsrb_20211007"},
		},
		{
			name:    "no folder lists what is there",
			files:   layout{"cifar_100/": "", "food101/": ""},
			dataset: "cifar-10", split: TestSplit,
			errParts: []string{"no folder for cifar-10", `starts with "cifar-10"`, "folders there: cifar_100, food101"},
		},
		{
			name: "two candidate index files",
			files: layout{
				"stanford-cars/test_a.txt": "z.zip@0.png 1\n",
				"stanford-cars/test_b.txt": "z.zip@0.png 1\n",
			},
			dataset: "stanford-cars", split: TestSplit,
			errParts: []string{"stanford-cars", "several index files could be the test split", "test_a.txt, test_b.txt"},
		},
		{
			name:    "no index for the split lists the candidates",
			files:   layout{"fer-2013/labels.txt": classLines("f", 7), "fer-2013/train.txt": "z.zip@0.png 1\n"},
			dataset: "fer-2013", split: ValSplit,
			errParts: []string{"fer-2013", "no index file for the val split", "candidates there: train.txt"},
		},
		{
			name: "labelmap disagreeing with the registry",
			files: layout{
				"voc-2007-classification/labels.txt": "a\nb\n",
				"voc-2007-classification/test.txt":   "z.zip@0.png 1\n",
			},
			dataset: "voc-2007-classification", split: TestSplit,
			errParts: []string{"test.txt names 2 classes", "expects 20"},
		},
		{
			name:    "unknown dataset",
			files:   layout{},
			dataset: "voc2007", split: TestSplit,
			errParts: []string{"voc-2007-classification"},
		},
		{
			name:    "unknown split",
			files:   layout{},
			dataset: "mnist", split: "dev",
			errParts: []string{`unknown split "dev"`},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			root := t.TempDir()
			tt.files.write(t, root)
			d, err := LoadELEVATER(root, tt.dataset, tt.split)
			if tt.errParts != nil {
				wantErr(t, err, tt.errParts...)
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			defer d.Close()
			info, _ := Lookup(tt.dataset)
			if d.Name != tt.dataset || d.MultiLabel != info.MultiLabel || len(d.Classes) != info.NumClasses {
				t.Fatalf("name %q, multi-label %v, %d classes; want %q, %v, %d", d.Name, d.MultiLabel, len(d.Classes), tt.dataset, info.MultiLabel, info.NumClasses)
			}
			if d.Classes[0] != tt.classes[0] || d.Classes[len(d.Classes)-1] != tt.classes[1] {
				t.Errorf("classes %q … %q, want %q … %q", d.Classes[0], d.Classes[len(d.Classes)-1], tt.classes[0], tt.classes[1])
			}
			if d.Len() != len(tt.labels) {
				t.Fatalf("%d samples, want %d", d.Len(), len(tt.labels))
			}
			for i, want := range tt.labels {
				if !slices.Equal(d.Samples[i].Labels, want) {
					t.Errorf("sample %d labels %v, want %v", i, d.Samples[i].Labels, want)
				}
				if !strings.HasPrefix(d.Samples[i].Source, filepath.Join(root, tt.wantDir)+string(filepath.Separator)) {
					t.Errorf("sample %d from %s, want a file under %s", i, d.Samples[i].Source, tt.wantDir)
				}
				img, err := d.Image(i)
				if err != nil {
					t.Fatalf("Image(%d): %v", i, err)
				}
				if r, _, _, _ := img.At(0, 0).RGBA(); int(r>>8) != tt.seeds[i] || img.Bounds() != image.Rect(0, 0, 2, 3) {
					t.Errorf("Image(%d): red %d, bounds %v; want %d, 2×3", i, r>>8, img.Bounds(), tt.seeds[i])
				}
			}
		})
	}
}

// TestLoadELEVATERWithoutItsRoot: a data root that does not exist (a typo, or a
// dataset not fetched yet) is named as such, with the command that fills it, rather
// than as ReadDir's "open …: no such file or directory".
func TestLoadELEVATERWithoutItsRoot(t *testing.T) {
	root := filepath.Join(t.TempDir(), "data")
	_, err := LoadELEVATER(root, "cifar-10", TrainSplit)
	wantErr(t, err, "cifar-10", "the data root "+root+" does not exist", "host data fetch cifar-10 --root "+root)
}

func TestFolderMatches(t *testing.T) {
	tests := []struct {
		folder, name string
		want         bool
	}{
		{"caltech_101_20211007", "caltech-101", true},
		{"caltech-101", "caltech-101", true},
		{"Caltech_101.v2", "caltech-101", true},
		{"eurosat-clip-2021", "eurosat_clip", true},
		{"cifar_100_20211007", "cifar-10", false},
		{"cifar-10", "cifar-100", false},
		{"caltech", "caltech-101", false},
		{"caltech101", "caltech-101", true},
		{"cifar10_20211007", "cifar-10", true},
		{"cifar100_20211007", "cifar-10", false},
		{"xcaltech-101", "caltech-101", false},
	}
	for _, tt := range tests {
		if got := folderMatches(tt.folder, tt.name); got != tt.want {
			t.Errorf("folderMatches(%q, %q) = %v, want %v", tt.folder, tt.name, got, tt.want)
		}
	}
}

// TestConcurrentZipReads reads every member from many goroutines through one
// cache (run with -race).
func TestConcurrentZipReads(t *testing.T) {
	dir := t.TempDir()
	var members []zipMember
	var index strings.Builder
	for i := range 40 {
		name := fmt.Sprintf("m/%d.png", i)
		method := uint16(zip.Deflate)
		if i%2 == 0 {
			method = zip.Store
		}
		members = append(members, zipMember{name, pngBytes(t, testImage(uint8(i), 2, 3)), method})
		fmt.Fprintf(&index, "all.zip@%s %d\n", name, i%3)
	}
	writeZip(t, filepath.Join(dir, "all.zip"), members)
	writeFile(t, filepath.Join(dir, "index.txt"), []byte(index.String()))
	d, err := LoadIndex(filepath.Join(dir, "index.txt"), "", false)
	if err != nil {
		t.Fatal(err)
	}
	defer d.Close()
	errs := make(chan error, 8)
	for w := range 8 {
		go func() {
			for k := range d.Len() {
				i := (k + 5*w) % d.Len()
				img, err := d.Image(i)
				if err != nil {
					errs <- err
					return
				}
				if r, _, _, _ := img.At(0, 0).RGBA(); r>>8 != uint32(i) {
					errs <- fmt.Errorf("sample %d: red %d", i, r>>8)
					return
				}
			}
			errs <- nil
		}()
	}
	for range 8 {
		if err := <-errs; err != nil {
			t.Error(err)
		}
	}
}
