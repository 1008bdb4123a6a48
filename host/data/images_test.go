package data

import (
	"archive/zip"
	"bytes"
	"image"
	"image/png"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"

	"github.com/kadapt/kadapt/backbones/preprocess"
	"github.com/kadapt/kadapt/backbones/preprocess/preprocesstest"
	"github.com/kadapt/kadapt/datasets"
)

// TestTrainingAndEmbeddingSeeTheSamePixels follows a lossy WebP file and a GIF with
// a transparent index through both ways into the model: a training split (Images
// over a dataset, the files inside a zip archive as ELEVATER keeps them) and the
// files `host embed` and `zeroshot` are given (Files). Both must hold, value for
// value, what preprocessing makes of the pixels PIL decodes: libwebp's dwebp
// output for the WebP file, and for the GIF the transparent index's palette colour
// with the frame placed on its logical screen. Training decoded with image.Decode
// until both went through one decoder, and differed on both files.
func TestTrainingAndEmbeddingSeeTheSamePixels(t *testing.T) {
	webpData, webpRef := preprocesstest.LossyWebP(t)
	gifData, gifRef := preprocesstest.TransparentGIF(t)

	dir := t.TempDir()
	write := func(name string, b []byte) string {
		p := filepath.Join(dir, name)
		if err := os.WriteFile(p, b, 0o644); err != nil {
			t.Fatal(err)
		}
		return p
	}
	files := []string{write("a.webp", webpData), write("b.gif", gifData)}
	var zb bytes.Buffer
	zipFiles(t, &zb, map[string][]byte{"a.webp": webpData, "b.gif": gifData})
	write("images.zip", zb.Bytes())
	write("train.csv", []byte("images.zip@a.webp,0\nimages.zip@b.gif,1\n"))
	ds, err := datasets.LoadManifest(filepath.Join(dir, "train.csv"))
	if err != nil {
		t.Fatal(err)
	}
	defer ds.Close()

	cfg := preprocess.CLIPConfig(32)
	per := 3 * 32 * 32
	var want []float32
	for _, ref := range []image.Image{webpRef, gifRef} {
		px, err := preprocess.Process(ref, cfg)
		if err != nil {
			t.Fatal(err)
		}
		want = append(want, px...)
	}
	for name, split := range map[string]Split{"training": NewImages(ds, cfg, 2), "embedding": Files(files, cfg)} {
		x := make([]float32, 2*per)
		labels := make([][]int, 2)
		if err := split.Fetch([]int{0, 1}, x, labels); err != nil {
			t.Fatalf("%s: %v", name, err)
		}
		for i := range 2 {
			bad := 0
			for j := i * per; j < (i+1)*per; j++ {
				if x[j] != want[j] {
					bad++
				}
			}
			if bad > 0 {
				t.Errorf("%s path, %s: %d of %d values differ from PIL's pixels preprocessed", name, []string{"WebP", "GIF"}[i], bad, per)
			}
		}
		if name == "training" && !reflect.DeepEqual(labels, [][]int{{0}, {1}}) {
			t.Errorf("labels %v", labels)
		}
	}
}

func zipFiles(t *testing.T, w *bytes.Buffer, files map[string][]byte) {
	t.Helper()
	zw := zip.NewWriter(w)
	for name, b := range files {
		f, err := zw.Create(name)
		if err != nil {
			t.Fatal(err)
		}
		if _, err := f.Write(b); err != nil {
			t.Fatal(err)
		}
	}
	if err := zw.Close(); err != nil {
		t.Fatal(err)
	}
}

// TestImagesCacheWithinBudget: a preprocessed example is kept while the budget
// allows, so a later epoch reads it without the file; beyond the budget the file is
// read again, and a missing one is an error naming it.
func TestImagesCacheWithinBudget(t *testing.T) {
	dir := t.TempDir()
	img := image.NewRGBA(image.Rect(0, 0, 9, 7))
	for i := range img.Pix {
		img.Pix[i] = uint8(i * 13)
	}
	var paths []string
	for _, name := range []string{"a.png", "b.png"} {
		var b bytes.Buffer
		if err := png.Encode(&b, img); err != nil {
			t.Fatal(err)
		}
		p := filepath.Join(dir, name)
		if err := os.WriteFile(p, b.Bytes(), 0o644); err != nil {
			t.Fatal(err)
		}
		paths = append(paths, p)
	}
	cfg := preprocess.CLIPConfig(8)
	d := Files(paths, cfg)
	d.budget = 3 * 8 * 8 // room for one example
	first := make([]float32, 2*3*8*8)
	if err := d.Fetch([]int{0, 1}, first, make([][]int, 2)); err != nil {
		t.Fatal(err)
	}
	want, err := preprocess.Process(img, cfg)
	if err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(first[:len(want)], want) || !reflect.DeepEqual(first[len(want):], want) {
		t.Fatal("Fetch differs from preprocess.Process of the same image")
	}
	if len(d.cache) != 1 || d.budget != 0 {
		t.Fatalf("%d examples cached, budget left %d; want 1 and 0", len(d.cache), d.budget)
	}
	var cached int
	for i := range d.cache {
		cached = i
	}
	for _, p := range paths {
		if err := os.Remove(p); err != nil {
			t.Fatal(err)
		}
	}
	again := make([]float32, 3*8*8)
	if err := d.Fetch([]int{cached}, again, make([][]int, 1)); err != nil {
		t.Fatalf("the cached example needed its file: %v", err)
	}
	if !reflect.DeepEqual(again, want) {
		t.Error("the cached example changed")
	}
	other := 1 - cached
	err = d.Fetch([]int{other}, again, make([][]int, 1))
	if err == nil || !strings.Contains(err.Error(), paths[other]) {
		t.Errorf("the uncached example's file is gone: error %v should name %s", err, paths[other])
	}
}
