package datasets

import (
	"bytes"
	"compress/gzip"
	"encoding/binary"
	"hash/crc32"
	"image"
	"image/color"
	"image/gif"
	"image/jpeg"
	"image/png"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"golang.org/x/image/bmp"
)

func TestLoadImageFolder(t *testing.T) {
	dir := t.TempDir()
	png0 := pngBytes(t, testImage(9, 2, 2))
	for _, f := range []string{
		"dog/b.png", "dog/a_dir/x.png", "dog/c.JPG", "dog/notes.txt", "dog/.hidden.png",
		"cat/z.png", "cat/sub/deeper/y.webp", ".ipynb_checkpoints/q.png",
	} {
		writeFile(t, filepath.Join(dir, f), png0)
	}
	writeFile(t, filepath.Join(dir, "stray.png"), png0) // files at the top are no class
	d, err := LoadImageFolder(dir)
	if err != nil {
		t.Fatal(err)
	}
	if !slices.Equal(d.Classes, []string{"cat", "dog"}) {
		t.Errorf("classes %q, want [cat dog]", d.Classes)
	}
	// torchvision order: folders sorted by path ("dog" before "dog/a_dir"), then
	// files by name within each.
	want := []struct {
		rel   string
		label int
	}{
		{"cat/z.png", 0}, {"cat/sub/deeper/y.webp", 0},
		{"dog/b.png", 1}, {"dog/c.JPG", 1}, {"dog/a_dir/x.png", 1},
	}
	if d.Len() != len(want) {
		t.Fatalf("%d samples, want %d: %+v", d.Len(), len(want), d.Samples)
	}
	for i, w := range want {
		s := d.Samples[i]
		if s.Source != filepath.Join(dir, w.rel) || !slices.Equal(s.Labels, []int{w.label}) {
			t.Errorf("sample %d = %+v, want %s label %d", i, s, w.rel, w.label)
		}
	}
	img, err := d.Image(2)
	if err != nil {
		t.Fatal(err)
	}
	samePixels(t, img, testImage(9, 2, 2))

	empty := t.TempDir()
	writeFile(t, filepath.Join(empty, "a/x.png"), png0)
	writeFile(t, filepath.Join(empty, "b/readme.md"), []byte("no images"))
	_, err = LoadImageFolder(empty)
	wantErr(t, err, "no image files for classes b")
	_, err = LoadImageFolder(t.TempDir())
	wantErr(t, err, "no class sub-folders")
}

func TestLoadManifest(t *testing.T) {
	tests := []struct {
		name       string
		file       string
		content    string
		classes    []string
		labels     [][]int
		paths      []string
		multiLabel bool
	}{
		{
			name: "names with header", file: "m.csv",
			content: "path,label\nimgs/a.png,dog\nimgs/b.png, cat\n# comment\n\"imgs/c,d.png\",dog\n",
			classes: []string{"cat", "dog"}, labels: [][]int{{1}, {0}, {1}},
			paths: []string{"imgs/a.png", "imgs/b.png", "imgs/c,d.png"},
		},
		{
			name: "indices without header", file: "m.csv",
			content: "a.png,2\nb.png,0\n",
			classes: []string{"0", "1", "2"}, labels: [][]int{{2}, {0}},
			paths: []string{"a.png", "b.png"},
		},
		{
			name: "tsv by extension, multi-label", file: "m.tsv",
			content: "image\tlabels\nx.zip@p/a.png\t0;2\nb.png\t\n",
			classes: []string{"0", "1", "2"}, labels: [][]int{{0, 2}, {}},
			paths: []string{"x.zip@p/a.png", "b.png"}, multiLabel: true,
		},
		{
			name: "tsv sniffed", file: "m.txt",
			content: "a.png\tcat\nb.png\tcat\n",
			classes: []string{"cat"}, labels: [][]int{{0}, {0}},
			paths: []string{"a.png", "b.png"},
		},
		{
			name: "a label named like a header word is data when the path is an image", file: "m.csv",
			content: "a.png,label\nb.png,other\n",
			classes: []string{"label", "other"}, labels: [][]int{{0}, {1}},
			paths: []string{"a.png", "b.png"},
		},
		{
			name: "numbers mixed with names are names", file: "m.csv",
			content: "a.png,3\nb.png,x\n",
			classes: []string{"3", "x"}, labels: [][]int{{0}, {1}},
			paths: []string{"a.png", "b.png"},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			dir := t.TempDir()
			file := filepath.Join(dir, tt.file)
			writeFile(t, file, []byte(tt.content))
			d, err := LoadManifest(file)
			if err != nil {
				t.Fatal(err)
			}
			if !slices.Equal(d.Classes, tt.classes) || d.MultiLabel != tt.multiLabel {
				t.Errorf("classes %q multi-label %v, want %q %v", d.Classes, d.MultiLabel, tt.classes, tt.multiLabel)
			}
			if d.Len() != len(tt.labels) {
				t.Fatalf("%d samples, want %d", d.Len(), len(tt.labels))
			}
			for i := range tt.labels {
				if !slices.Equal(d.Samples[i].Labels, tt.labels[i]) {
					t.Errorf("sample %d labels %v, want %v", i, d.Samples[i].Labels, tt.labels[i])
				}
				if want := filepath.Join(dir, tt.paths[i]); d.Samples[i].Source != want {
					t.Errorf("sample %d source %q, want %q", i, d.Samples[i].Source, want)
				}
			}
		})
	}
}

func TestLoadManifestErrors(t *testing.T) {
	tests := []struct {
		name, content string
		errHas        []string
	}{
		{"three fields", "path,label\na.png,1\nb.png,1,extra\n", []string{"m.csv:3", "3 fields"}},
		{"one field", "a.png\n", []string{"m.csv:1", "1 fields"}},
		{"bad quote", "a.png,1\n\"b.png,1\n", []string{"m.csv:2"}},
		{"empty path", "a.png,1\n,1\n", []string{"m.csv:2", "empty path"}},
		{"empty label in list", "a.png,1;;2\n", []string{"m.csv:1", "empty label"}},
		{"header only", "path,label\n", []string{"m.csv", "no images"}},
		// Classes "0" … label were allocated: 10¹² strings, an out-of-memory crash.
		{"huge label", "a.png,1\nb.png,1000000000000\n", []string{"m.csv:2", "1000000000000", "classes"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			file := filepath.Join(t.TempDir(), "m.csv")
			writeFile(t, file, []byte(tt.content))
			_, err := LoadManifest(file)
			wantErr(t, err, tt.errHas...)
		})
	}
}

// cifarRecord builds one record: label bytes, then planes R, G, B with pixel p
// valued (base + p) mod 256, base 0, 50 and 100 for the three planes.
func cifarRecord(labels ...byte) []byte {
	rec := append([]byte{}, labels...)
	for plane := range 3 {
		for p := range 1024 {
			rec = append(rec, byte(50*plane+p+int(labels[len(labels)-1])))
		}
	}
	return rec
}

func checkCIFARPixels(t *testing.T, img image.Image, label int) {
	t.Helper()
	rgba, ok := img.(*image.RGBA)
	if !ok || rgba.Bounds() != image.Rect(0, 0, 32, 32) {
		t.Fatalf("image %T %v, want 32×32 *image.RGBA", img, img.Bounds())
	}
	for _, pt := range []image.Point{{0, 0}, {5, 0}, {0, 1}, {31, 31}, {17, 9}} {
		p := pt.Y*32 + pt.X
		want := color.RGBA{byte(p + label), byte(50 + p + label), byte(100 + p + label), 255}
		if got := rgba.RGBAAt(pt.X, pt.Y); got != want {
			t.Errorf("pixel %v = %v, want %v", pt, got, want)
		}
	}
}

func TestLoadCIFAR10(t *testing.T) {
	dir := t.TempDir()
	writeFile(t, filepath.Join(dir, "data_batch_1.bin"), slices.Concat(cifarRecord(3), cifarRecord(9)))
	writeFile(t, filepath.Join(dir, "data_batch_10.bin"), cifarRecord(1))
	writeFile(t, filepath.Join(dir, "data_batch_2.bin"), cifarRecord(0))
	writeFile(t, filepath.Join(dir, "test_batch.bin"), cifarRecord(7))
	d, err := LoadCIFAR10(dir, true)
	if err != nil {
		t.Fatal(err)
	}
	// Batches in numeric order: 1, 2, 10.
	var labels []int
	for _, s := range d.Samples {
		labels = append(labels, s.Labels[0])
	}
	if !slices.Equal(labels, []int{3, 9, 0, 1}) {
		t.Errorf("labels %v, want [3 9 0 1]", labels)
	}
	if d.Classes[3] != "cat" || len(d.Classes) != 10 {
		t.Errorf("classes %q", d.Classes)
	}
	img, err := d.Image(1)
	if err != nil {
		t.Fatal(err)
	}
	checkCIFARPixels(t, img, 9)
	// Open serves the same pixels as PNG.
	decoded, err := png.Decode(bytes.NewReader(readAllOpen(t, d, 1)))
	if err != nil {
		t.Fatal(err)
	}
	samePixels(t, decoded, img)

	test, err := LoadCIFAR10(dir, false)
	if err != nil || test.Len() != 1 || test.Samples[0].Labels[0] != 7 {
		t.Fatalf("test split: %v, %v", test, err)
	}
	// Subsets keep raw access.
	sub := d.Subset(d.Samples[3:])
	img, err = sub.Image(0)
	if err != nil {
		t.Fatal(err)
	}
	checkCIFARPixels(t, img, 1)
}

func TestLoadCIFAR100(t *testing.T) {
	dir := t.TempDir()
	writeFile(t, filepath.Join(dir, "train.bin"), slices.Concat(cifarRecord(4, 99), cifarRecord(19, 0)))
	var fine []string
	for i := range 100 {
		fine = append(fine, "f"+string(rune('0'+i/10))+string(rune('0'+i%10)))
	}
	writeFile(t, filepath.Join(dir, "fine_label_names.txt"), []byte(strings.Join(fine, "\n")+"\n"))
	d, err := LoadCIFAR100(dir, true, FineLabels)
	if err != nil {
		t.Fatal(err)
	}
	if d.Samples[0].Labels[0] != 99 || d.Samples[1].Labels[0] != 0 || d.Classes[99] != "f99" {
		t.Errorf("fine labels %v %v, class 99 %q", d.Samples[0].Labels, d.Samples[1].Labels, d.Classes[99])
	}
	img, err := d.Image(0)
	if err != nil {
		t.Fatal(err)
	}
	checkCIFARPixels(t, img, 99)
	c, err := LoadCIFAR100(dir, true, CoarseLabels)
	if err != nil {
		t.Fatal(err)
	}
	if c.Samples[0].Labels[0] != 4 || c.Samples[1].Labels[0] != 19 || len(c.Classes) != 20 || c.Classes[4] != "4" {
		t.Errorf("coarse labels %v %v, classes %q", c.Samples[0].Labels, c.Samples[1].Labels, c.Classes)
	}
}

func TestLoadCIFARErrors(t *testing.T) {
	tests := []struct {
		name   string
		file   string
		data   []byte
		load   func(dir string) error
		errHas []string
	}{
		{"truncated", "data_batch_1.bin", slices.Concat(cifarRecord(1), cifarRecord(2)[:100]),
			func(dir string) error { _, err := LoadCIFAR10(dir, true); return err },
			[]string{"data_batch_1.bin", "record 1 is cut short"}},
		{"label 10", "test_batch.bin", slices.Concat(cifarRecord(1), cifarRecord(10)),
			func(dir string) error { _, err := LoadCIFAR10(dir, false); return err },
			[]string{"test_batch.bin", "record 1", "out of range [0, 10)"}},
		{"coarse 20", "test.bin", cifarRecord(20, 5),
			func(dir string) error { _, err := LoadCIFAR100(dir, false, FineLabels); return err },
			[]string{"test.bin", "record 0", "label byte 0 is 20"}},
		{"no batches", "other.bin", cifarRecord(1),
			func(dir string) error { _, err := LoadCIFAR10(dir, true); return err },
			[]string{"data_batch_*.bin"}},
		{"names count", "batches.meta.txt", []byte("a\nb\n"),
			func(dir string) error { _, err := LoadCIFAR10(dir, true); return err },
			[]string{"batches.meta.txt", "2 classes, want 10"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			dir := t.TempDir()
			writeFile(t, filepath.Join(dir, tt.file), tt.data)
			if tt.file == "batches.meta.txt" {
				writeFile(t, filepath.Join(dir, "data_batch_1.bin"), cifarRecord(1))
			}
			wantErr(t, tt.load(dir), tt.errHas...)
		})
	}
}

func idxFile(magic uint32, dims []uint32, payload []byte, gz bool) []byte {
	var buf bytes.Buffer
	binary.Write(&buf, binary.BigEndian, magic)
	for _, d := range dims {
		binary.Write(&buf, binary.BigEndian, d)
	}
	buf.Write(payload)
	if !gz {
		return buf.Bytes()
	}
	var z bytes.Buffer
	zw := gzip.NewWriter(&z)
	zw.Write(buf.Bytes())
	zw.Close()
	return z.Bytes()
}

func TestLoadMNIST(t *testing.T) {
	const n, rows, cols = 3, 4, 5
	pix := make([]byte, n*rows*cols)
	for i := range pix {
		pix[i] = byte(7 * i)
	}
	dir := t.TempDir()
	writeFile(t, filepath.Join(dir, "train-images-idx3-ubyte.gz"), idxFile(0x803, []uint32{n, rows, cols}, pix, true))
	writeFile(t, filepath.Join(dir, "train-labels-idx1-ubyte"), idxFile(0x801, []uint32{n}, []byte{5, 0, 9}, false))
	d, err := LoadMNISTDir(dir, true)
	if err != nil {
		t.Fatal(err)
	}
	if d.Len() != n || d.Samples[2].Labels[0] != 9 || len(d.Classes) != 10 {
		t.Fatalf("%d samples, labels %v, classes %q", d.Len(), d.Samples, d.Classes)
	}
	img, err := d.Image(1)
	if err != nil {
		t.Fatal(err)
	}
	g, ok := img.(*image.Gray)
	if !ok || g.Bounds() != image.Rect(0, 0, cols, rows) {
		t.Fatalf("image %T %v, want %d×%d *image.Gray", img, img.Bounds(), cols, rows)
	}
	for y := range rows {
		for x := range cols {
			if got, want := g.GrayAt(x, y).Y, byte(7*(rows*cols+y*cols+x)); got != want {
				t.Fatalf("pixel (%d,%d) = %d, want %d", x, y, got, want)
			}
		}
	}
	decoded, err := png.Decode(bytes.NewReader(readAllOpen(t, d, 1)))
	if err != nil {
		t.Fatal(err)
	}
	samePixels(t, decoded, img)
	_, err = LoadMNISTDir(dir, false)
	wantErr(t, err, "t10k-images-idx3-ubyte")
}

func TestLoadMNISTErrors(t *testing.T) {
	pix := make([]byte, 2*2*2)
	good := idxFile(0x803, []uint32{2, 2, 2}, pix, false)
	goodLabels := idxFile(0x801, []uint32{2}, []byte{1, 2}, false)
	tests := []struct {
		name           string
		images, labels []byte
		errHas         []string
	}{
		{"images magic", idxFile(0x801, []uint32{2}, []byte{1, 2}, false), goodLabels, []string{"img", "magic number 0x00000801, want 0x00000803"}},
		{"labels magic", good, good, []string{"lab", "want 0x00000801"}},
		{"truncated gz", idxFile(0x803, []uint32{2, 2, 2}, pix[:5], true), goodLabels, []string{"img", "truncated", "need 8 bytes, file has 5"}},
		{"trailing", idxFile(0x803, []uint32{2, 2, 2}, append(pix, 1), false), goodLabels, []string{"img", "continues past"}},
		{"count mismatch", good, idxFile(0x801, []uint32{3}, []byte{1, 2, 3}, false), []string{"2 images", "3 labels"}},
		{"label 10", good, idxFile(0x801, []uint32{2}, []byte{1, 10}, false), []string{"lab", "item 1", "label 10"}},
		{"huge header", idxFile(0x803, []uint32{60000, 60000, 60000}, nil, false), goodLabels, []string{"img", "announce more than"}},
		{"short header", []byte{0, 0, 8, 3, 0}, goodLabels, []string{"img", "dimensions"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			dir := t.TempDir()
			img, lab := filepath.Join(dir, "img"), filepath.Join(dir, "lab")
			writeFile(t, img, tt.images)
			writeFile(t, lab, tt.labels)
			_, err := LoadMNIST(img, lab)
			wantErr(t, err, tt.errHas...)
		})
	}
}

// TestImageFormats decodes every registered encoding through a manifest.
func TestImageFormats(t *testing.T) {
	dir := t.TempDir()
	src := testImage(5, 6, 4)
	var jpg, gf, bm bytes.Buffer
	if err := jpeg.Encode(&jpg, src, nil); err != nil {
		t.Fatal(err)
	}
	if err := gif.Encode(&gf, src, nil); err != nil {
		t.Fatal(err)
	}
	if err := bmp.Encode(&bm, src); err != nil {
		t.Fatal(err)
	}
	writeFile(t, filepath.Join(dir, "a.jpg"), jpg.Bytes())
	writeFile(t, filepath.Join(dir, "b.gif"), gf.Bytes())
	writeFile(t, filepath.Join(dir, "c.bmp"), bm.Bytes())
	writeFile(t, filepath.Join(dir, "d.png"), pngBytes(t, src))
	writeFile(t, filepath.Join(dir, "e.png"), []byte("not an image"))
	writeFile(t, filepath.Join(dir, "m.csv"), []byte("a.jpg,0\nb.gif,0\nc.bmp,0\nd.png,0\ne.png,0\nmissing.png,0\n"))
	d, err := LoadManifest(filepath.Join(dir, "m.csv"))
	if err != nil {
		t.Fatal(err)
	}
	for i := range 4 {
		img, err := d.Image(i)
		if err != nil {
			t.Fatalf("%s: %v", d.Samples[i].Source, err)
		}
		if img.Bounds() != src.Bounds() {
			t.Errorf("%s: bounds %v, want %v", d.Samples[i].Source, img.Bounds(), src.Bounds())
		}
	}
	bmpImg, _ := d.Image(2)
	samePixels(t, bmpImg, src) // BMP is lossless
	_, err = d.Image(4)
	wantErr(t, err, "e.png")
	_, err = d.Image(5)
	wantErr(t, err, "missing.png")
}

// TestImageTooLarge: a header announcing 2^32 pixels is refused before decoding.
func TestImageTooLarge(t *testing.T) {
	data := pngBytes(t, testImage(1, 1, 1))
	// IHDR follows the 8-byte signature: length, "IHDR", width, height, …, CRC.
	binary.BigEndian.PutUint32(data[16:], 1<<16)
	binary.BigEndian.PutUint32(data[20:], 1<<16)
	binary.BigEndian.PutUint32(data[29:], crc32.ChecksumIEEE(data[12:29]))
	dir := t.TempDir()
	writeFile(t, filepath.Join(dir, "big.png"), data)
	d := &Dataset{Samples: []Sample{{Source: filepath.Join(dir, "big.png"), Labels: []int{0}}}}
	_, err := d.Image(0)
	wantErr(t, err, "big.png", "65536x65536", "exceeds")
}
