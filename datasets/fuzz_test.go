package datasets

import (
	"bytes"
	"image"
	"image/gif"
	"image/jpeg"
	"io"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"golang.org/x/image/bmp"
	"golang.org/x/image/tiff"
)

// The fuzz targets feed every parser of files that arrive from outside (indices,
// labelmaps, manifests, raw formats, images, fetch's file list) with arbitrary
// bytes: each must return a dataset whose labels index its classes, or an error,
// and never panic or allocate what the input merely claims. `make fuzz-smoke` runs
// each briefly; README's development section says how to run them longer.

// fuzzFile writes data to name in a fresh folder and returns the path.
func fuzzFile(t *testing.T, name string, data []byte) string {
	t.Helper()
	path := filepath.Join(t.TempDir(), name)
	if err := os.WriteFile(path, data, 0o644); err != nil {
		t.Fatal(err)
	}
	return path
}

// checkLabels is the invariant every loader promises: labels index Classes.
func checkLabels(t *testing.T, d *Dataset) {
	t.Helper()
	for i, s := range d.Samples {
		if !d.MultiLabel && len(s.Labels) != 1 {
			t.Fatalf("multi-class sample %d has labels %v", i, s.Labels)
		}
		for _, l := range s.Labels {
			if l < 0 || l >= len(d.Classes) {
				t.Fatalf("sample %d: label %d outside %d classes", i, l, len(d.Classes))
			}
		}
	}
}

func FuzzLoadIndex(f *testing.F) {
	f.Add([]byte("train.zip@a/0.png 0\r\ntrain.zip@a/1.png 2\n\n  train.zip@b c/2.png 1\nextra/3.png 2\n"), []byte("cat\ndog\nbird\n"), false)
	f.Add([]byte("train.zip@a/0.png 0,2\ntrain.zip@a/1.png\n"), []byte(""), true)
	f.Add([]byte("\xd2.Zip@ 0\n"), []byte("x\n"), false)
	f.Add([]byte("İ.zip@x.png 0\n../a.png 1\n/etc/passwd 0\n"), []byte("a\n"), false)
	f.Fuzz(func(t *testing.T, index, labelmap []byte, multi bool) {
		dir := t.TempDir()
		indexFile := filepath.Join(dir, "train.txt")
		labelFile := ""
		if err := os.WriteFile(indexFile, index, 0o644); err != nil {
			t.Fatal(err)
		}
		if len(labelmap) > 0 {
			labelFile = filepath.Join(dir, "labels.txt")
			if err := os.WriteFile(labelFile, labelmap, 0o644); err != nil {
				t.Fatal(err)
			}
		}
		d, err := LoadIndex(indexFile, labelFile, multi)
		if err != nil {
			return
		}
		defer d.Close()
		checkLabels(t, d)
		for _, s := range d.Samples {
			archive, _, isZip := splitZipSource(s.Source)
			if !isZip {
				archive = s.Source
			}
			if rel, err := filepath.Rel(dir, archive); err != nil || !filepath.IsLocal(rel) {
				t.Fatalf("sample %q leaves the dataset folder %s", s.Source, dir)
			}
		}
		// Every sample names a missing file or member: reading must fail cleanly.
		if _, err := d.Image(0); err == nil {
			t.Fatalf("image %q of an empty folder decoded", d.Samples[0].Source)
		}
	})
}

func FuzzReadLabelmap(f *testing.F) {
	f.Add([]byte("cat\n  dog \n\nbird\n"))
	f.Add([]byte("\n \n"))
	f.Add([]byte("a\r\nb\x00c\n\xff\n"))
	f.Fuzz(func(t *testing.T, data []byte) {
		names, err := ReadLabelmap(fuzzFile(t, "labels.txt", data))
		if err == nil && len(names) == 0 {
			t.Fatal("no classes and no error")
		}
		for _, n := range names {
			if n == "" {
				t.Fatal("empty class name")
			}
		}
	})
}

func FuzzLoadCOCO(f *testing.F) {
	f.Add([]byte(`{"images":[{"id":1,"file_name":"train.zip@a.png"},{"id":2,"file_name":"b.png","zip_file":"t.zip"}],
"annotations":[{"image_id":1,"category_id":3},{"image_id":2,"category_id":1}],
"categories":[{"id":3,"name":"cat"},{"id":1,"name":"dog"}]}`), false)
	f.Add([]byte(`{"images":[{"id":1,"file_name":"a.png"}],"annotations":[],"categories":[{"id":0,"name":"x"}]}`), true)
	f.Add([]byte(`{"images":[{"id":1,"file_name":"../a.png"}],"categories":[{"id":1,"name":"x"},{"id":1,"name":"y"}]}`), false)
	f.Fuzz(func(t *testing.T, data []byte, multi bool) {
		d, err := LoadCOCO(fuzzFile(t, "m.json", data), multi)
		if err != nil {
			return
		}
		defer d.Close()
		checkLabels(t, d)
	})
}

func FuzzLoadManifest(f *testing.F) {
	f.Add([]byte("path,label\na.png,1\nsub/b.jpg,0\n"), false)
	f.Add([]byte("file\tclass\na.png\tcat\nb.png\tdog;cat\nc.png\t\n"), true)
	f.Add([]byte("# comment\n\"a,b.png\",x\nt.zip@c.png,y\n"), false)
	f.Add([]byte("a.png,1\nb.png,1000000000000\n"), false)
	f.Add([]byte("a.png,1\n\"b.png,1\n"), false)
	f.Fuzz(func(t *testing.T, data []byte, tsv bool) {
		name := "m.csv"
		if tsv {
			name = "m.tsv"
		}
		d, err := LoadManifest(fuzzFile(t, name, data))
		if err != nil {
			return
		}
		defer d.Close()
		checkLabels(t, d)
	})
}

func FuzzLoadMNIST(f *testing.F) {
	images := []byte{0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11}
	labels := idxFile(idxLabelsMagic, []uint32{2}, []byte{3, 9}, false)
	f.Add(idxFile(idxImagesMagic, []uint32{2, 2, 3}, images, false), labels)
	f.Add(idxFile(idxImagesMagic, []uint32{2, 2, 3}, images, true), labels)
	f.Add(idxFile(idxImagesMagic, []uint32{1, 0xffffffff, 0xffffffff}, nil, false), idxFile(idxLabelsMagic, []uint32{1}, []byte{1}, false))
	f.Add(idxFile(idxImagesMagic, []uint32{0, 0xffffff, 0xffffff}, nil, false), idxFile(idxLabelsMagic, []uint32{0}, nil, false))
	f.Add(idxFile(idxImagesMagic, []uint32{1, 1, 1}, []byte{0}, false), idxFile(idxLabelsMagic, []uint32{1}, []byte{10}, false))
	f.Fuzz(func(t *testing.T, images, labels []byte) {
		dir := t.TempDir()
		imagesFile, labelsFile := filepath.Join(dir, "images"), filepath.Join(dir, "labels")
		if err := os.WriteFile(imagesFile, images, 0o644); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(labelsFile, labels, 0o644); err != nil {
			t.Fatal(err)
		}
		d, err := LoadMNIST(imagesFile, labelsFile)
		if err != nil {
			return
		}
		checkLabels(t, d)
		for i := range min(d.Len(), 3) {
			if _, err := d.Image(i); err != nil {
				t.Fatalf("image %d of a loaded dataset: %v", i, err)
			}
		}
	})
}

func FuzzLoadCIFAR(f *testing.F) {
	f.Add(append(cifarRecord(3), cifarRecord(9)...), []byte(""), false)
	f.Add(cifarRecord(4, 77), []byte("a\nb\n"), true)
	f.Add(cifarRecord(10), []byte(""), false)
	f.Add([]byte{1, 2, 3}, []byte("x\n"), false)
	f.Fuzz(func(t *testing.T, data, names []byte, hundred bool) {
		dir := t.TempDir()
		batch, namesFile := "test_batch.bin", "batches.meta.txt"
		if hundred {
			batch, namesFile = "test.bin", "fine_label_names.txt"
		}
		if err := os.WriteFile(filepath.Join(dir, batch), data, 0o644); err != nil {
			t.Fatal(err)
		}
		if len(names) > 0 {
			if err := os.WriteFile(filepath.Join(dir, namesFile), names, 0o644); err != nil {
				t.Fatal(err)
			}
		}
		var d *Dataset
		var err error
		if hundred {
			d, err = LoadCIFAR100(dir, false, FineLabels)
		} else {
			d, err = LoadCIFAR10(dir, false)
		}
		if err != nil {
			return
		}
		checkLabels(t, d)
		if _, err := d.Image(d.Len() - 1); err != nil {
			t.Fatalf("last image of a loaded dataset: %v", err)
		}
	})
}

func FuzzDecodeImage(f *testing.F) {
	img := testImage(7, 5, 3)
	f.Add(pngBytes(f, img))
	for _, encode := range []func(io.Writer, image.Image) error{
		func(w io.Writer, m image.Image) error { return jpeg.Encode(w, m, nil) },
		func(w io.Writer, m image.Image) error { return gif.Encode(w, m, nil) },
		bmp.Encode,
		func(w io.Writer, m image.Image) error { return tiff.Encode(w, m, nil) },
	} {
		var b bytes.Buffer
		if err := encode(&b, img); err != nil {
			f.Fatal(err)
		}
		f.Add(b.Bytes())
	}
	// A PNG header claiming 2³⁰×2³⁰ pixels.
	f.Add([]byte("\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR@\x00\x00\x00@\x00\x00\x00\b\x06\x00\x00\x00"))
	f.Fuzz(func(t *testing.T, data []byte) {
		img, err := decodeImage(bytes.NewReader(data), "x")
		if err != nil {
			return
		}
		b := img.Bounds()
		if b.Dx() <= 0 || b.Dy() <= 0 || int64(b.Dx())*int64(b.Dy()) > MaxImagePixels {
			t.Fatalf("decoded %v", b)
		}
	})
}

func FuzzReadManifest(f *testing.F) {
	f.Add([]byte("# files\ntrain.zip 12 " + "ab" + "0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcd" + "\nlabels.txt\n\ntest.txt 5\n"))
	f.Add([]byte("a 1 2 3\n"))
	f.Add([]byte("a -1\n"))
	f.Add([]byte("../x 1\n"))
	f.Fuzz(func(t *testing.T, data []byte) {
		files, err := ReadManifest(fuzzFile(t, ManifestName, data))
		if err != nil {
			return
		}
		if len(files) == 0 {
			t.Fatal("no files and no error")
		}
		for _, fl := range files {
			if fl.Path == "" || fl.Size < 0 || (fl.SHA256 != "" && len(fl.SHA256) != 64) {
				t.Fatalf("file %+v", fl)
			}
		}
	})
}

func FuzzLoadTemplates(f *testing.F) {
	f.Add([]byte("templates:\n  cifar-10: [\"a photo of a {}.\", \"a blurry photo of a {}.\"]\n  \"*\": [\"itap of a {}.\"]\nclasses:\n  hateful-memes: [fine, hateful]\n"), false)
	f.Add([]byte(`{"cifar-10": ["a {}."], "*": ["itap of a {}."]}`), true)
	f.Add([]byte("a: &a [x, x]\nb: &b [*a, *a, *a]\nc: [*b, *b, *b]\n"), false)
	f.Add([]byte("classes:\n  dtd: [a, \" \"]\n"), false)
	f.Fuzz(func(t *testing.T, data []byte, isJSON bool) {
		name := "t.yaml"
		if isJSON {
			name = "t.json"
		}
		tf, err := LoadTemplates(fuzzFile(t, name, data))
		if err != nil {
			return
		}
		for _, info := range Registry()[:3] {
			for _, tmpl := range tf.For(info.Name) {
				if strings.Count(tmpl, "{}") != 1 {
					t.Fatalf("template %q", tmpl)
				}
			}
			_, _ = tf.ClassNames(info.Name, []string{"a", "b"})
		}
	})
}
