package datasets

import (
	"archive/zip"
	"bytes"
	"fmt"
	"image"
	"os"
	"path/filepath"
	"slices"
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

func TestLoadELEVATER(t *testing.T) {
	root := t.TempDir()
	// Folders named as the blob store names them: found by their prefix.
	dir := filepath.Join(root, "voc2007_20211007")
	img := pngBytes(t, testImage(7, 2, 2))
	writeZip(t, filepath.Join(dir, "test.zip"), []zipMember{{"x/1.png", img, zip.Deflate}, {"x/2.png", img, zip.Store}})
	var names []string
	for i := range 20 {
		names = append(names, fmt.Sprint("class", i))
	}
	writeFile(t, filepath.Join(dir, "labels.txt"), []byte(strings.Join(names, "\n")))
	writeFile(t, filepath.Join(dir, "test_ic.txt"), []byte("test.zip@x/1.png 4,19\ntest.zip@x/2.png 0\n"))
	d, err := LoadELEVATER(root, "voc-2007-classification", TestSplit)
	if err != nil {
		t.Fatal(err)
	}
	if d.Name != "voc-2007-classification" || !d.MultiLabel || len(d.Classes) != 20 || !slices.Equal(d.Samples[0].Labels, []int{4, 19}) {
		t.Errorf("got %q multi-label %v, %d classes, labels %v", d.Name, d.MultiLabel, len(d.Classes), d.Samples[0].Labels)
	}
	if im, err := d.Image(1); err != nil || im.Bounds() != image.Rect(0, 0, 2, 2) {
		t.Errorf("Image(1) = %v, %v", im, err)
	}

	// kitti-distance indexes with COCO JSON and has no labelmap.
	kdir := filepath.Join(root, "kitti-distance")
	writeFile(t, filepath.Join(kdir, "test_meta.json"), []byte(`{"images": [{"id": 1, "file_name": "test_images.zip@k/1.png"}],
		"annotations": [{"image_id": 1, "category_id": 4}],
		"categories": [{"id": 1, "name": "a"}, {"id": 2, "name": "b"}, {"id": 3, "name": "c"}, {"id": 4, "name": "d"}]}`))
	k, err := LoadELEVATER(root, "kitti-distance", TestSplit)
	if err != nil {
		t.Fatal(err)
	}
	if !slices.Equal(k.Samples[0].Labels, []int{3}) || len(k.Classes) != 4 {
		t.Errorf("kitti labels %v classes %q", k.Samples[0].Labels, k.Classes)
	}

	// A labelmap disagreeing with the registry is an error.
	writeFile(t, filepath.Join(dir, "labels.txt"), []byte("a\nb\n"))
	writeFile(t, filepath.Join(dir, "test_ic.txt"), []byte("test.zip@x/1.png 1\n"))
	_, err = LoadELEVATER(root, "voc-2007-classification", TestSplit)
	wantErr(t, err, "2 classes", "expects 20")
	_, err = LoadELEVATER(root, "voc-2007-classification", ValSplit)
	wantErr(t, err, "no index file for the val split", "test_ic.txt")
	_, err = LoadELEVATER(root, "caltech-101", TestSplit)
	wantErr(t, err, "no folder for caltech-101")
	_, err = LoadELEVATER(root, "voc2007", TestSplit)
	wantErr(t, err, "voc-2007-classification")
	// Two candidate index files for one split are ambiguous; an exact name wins.
	writeFile(t, filepath.Join(dir, "test_other.txt"), []byte("test.zip@x/1.png 1\n"))
	_, err = LoadELEVATER(root, "voc-2007-classification", TestSplit)
	wantErr(t, err, "several index files", "test_ic.txt", "test_other.txt")
	// Two candidate folders are ambiguous too.
	os.MkdirAll(filepath.Join(root, "voc2007_20200101"), 0o755)
	_, err = LoadELEVATER(root, "voc-2007-classification", TestSplit)
	wantErr(t, err, "several folders", "voc2007_20200101")
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
