package main

import (
	"archive/zip"
	"encoding/json"
	"fmt"
	"image"
	"image/png"
	"math"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"

	"github.com/kadapt/kadapt/backbones/safetensors"
)

const fixtures = "../backbones/testdata"

// clipFolder assembles a Hugging Face CLIP model folder (both towers in one
// CLIPModel-style checkpoint, config.json, tokenizer files) from the PyTorch fixtures.
func clipFolder(t *testing.T) string {
	t.Helper()
	dir := t.TempDir()
	tensors := map[string]safetensors.Tensor{}
	for _, file := range []string{fixtures + "/clip_vision_small.safetensors", fixtures + "/clip_text_small/model.safetensors"} {
		f, err := safetensors.Open(file)
		if err != nil {
			t.Fatal(err)
		}
		for _, n := range f.Names() {
			info, _ := f.Info(n)
			d, err := f.Float32s(n)
			if err != nil {
				t.Fatal(err)
			}
			tensors[n] = safetensors.Tensor{Shape: info.Shape, Data: d}
		}
		f.Close()
	}
	if err := safetensors.WriteFile(filepath.Join(dir, "model.safetensors"), tensors, nil); err != nil {
		t.Fatal(err)
	}
	var vision, text map[string]any
	for file, dst := range map[string]*map[string]any{fixtures + "/clip_vision_small.config.json": &vision, fixtures + "/clip_text_small/config.json": &text} {
		raw, err := os.ReadFile(file)
		if err != nil {
			t.Fatal(err)
		}
		json.Unmarshal(raw, dst)
	}
	cfg, _ := json.Marshal(map[string]any{"model_type": "clip", "projection_dim": 24, "vision_config": vision, "text_config": text})
	os.WriteFile(filepath.Join(dir, "config.json"), cfg, 0o644)
	for _, name := range []string{"vocab.json", "merges.txt"} {
		raw, err := os.ReadFile(filepath.Join(fixtures, "clip_text_small", name))
		if err != nil {
			t.Fatal(err)
		}
		os.WriteFile(filepath.Join(dir, name), raw, 0o644)
	}
	return dir
}

func readTensor(t *testing.T, path, name string) []float32 {
	t.Helper()
	f, err := safetensors.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	d, err := f.Float32s(name)
	if err != nil {
		t.Fatal(err)
	}
	return d
}

func TestEmbedMatchesTransformers(t *testing.T) {
	model := clipFolder(t)
	out := filepath.Join(t.TempDir(), "embeds.safetensors")
	if o, err := host(t, ".", "embed", "--model", model, "--pixels", fixtures+"/clip_vision_small.io.safetensors", "--out", out); err != nil {
		t.Fatalf("%v\n%s", err, o)
	}
	got := readTensor(t, out, "image_embeds")
	want := readTensor(t, fixtures+"/clip_vision_small.io.safetensors", "image_embeds")
	for i := range want {
		if math.Abs(float64(got[i]-want[i])) > 1e-4 {
			t.Fatalf("image_embeds[%d] = %v, transformers %v", i, got[i], want[i])
		}
	}
	if p := readTensor(t, out, "pooled"); len(p) != 2*48 {
		t.Fatalf("pooled has %d values, want 2·48", len(p))
	}
}

func TestPreprocessMatchesCLIPImageProcessor(t *testing.T) {
	out := filepath.Join(t.TempDir(), "px.safetensors")
	img := "../backbones/preprocess/testdata/camera.png"
	if o, err := host(t, ".", "preprocess", "--images", img, "--out", out); err != nil {
		t.Fatalf("%v\n%s", err, o)
	}
	got := readTensor(t, out, "pixel_values")
	want := readTensor(t, "../backbones/preprocess/testdata/clip_preprocess.safetensors", "camera")
	// PIL's resampler against the fixture's (transformers 5's torchvision backend):
	// at most 1/255 apart before normalisation (see backbones/preprocess).
	std := []float64{0.26862954, 0.26130258, 0.27577711}
	worst := 0.0
	for i := range want {
		c := i / (224 * 224)
		worst = math.Max(worst, math.Abs(float64(got[i]-want[i]))*std[c]*255)
	}
	if worst > 1.001 {
		t.Fatalf("pixels differ by %.3f/255 from the CLIPImageProcessor fixture", worst)
	}
}

func TestZeroshotRuns(t *testing.T) {
	model := clipFolder(t)
	// The fixture tower takes 64×64 images; its folder has no preprocessor_config.json,
	// so the architecture's size applies.
	out, err := host(t, ".", "zeroshot", "--model", model, "--classes", "cat,dog,plane", "--images", "../backbones/preprocess/testdata/camera.png", "--template", "a photo of a {}.")
	if err != nil {
		t.Fatalf("%v\n%s", err, out)
	}
	line := out[strings.Index(out, "camera.png:"):]
	var total float64
	for _, f := range strings.Fields(line)[1:] {
		if strings.HasSuffix(f, "%") {
			v, _ := strconv.ParseFloat(strings.TrimSuffix(f, "%"), 64)
			total += v
		}
	}
	if math.Abs(total-100) > 0.5 {
		t.Fatalf("the three class probabilities add up to %.2f%%:\n%s", total, out)
	}
}

// TestExportRoundTrips trains a LoRA run briefly, exports it, and checks that the
// merged backbone and the original backbone with the exported peft adapter applied
// compute the same embeddings.
func TestExportRoundTrips(t *testing.T) {
	dir := t.TempDir()
	if out, err := host(t, dir, "run", "--plugin", "lora", "--epochs", "2", "--lr", "0.5", "--run-id", "r", "--quiet"); err != nil {
		t.Fatalf("%v\n%s", err, out)
	}
	exp := filepath.Join(dir, "export")
	if out, err := host(t, dir, "export", filepath.Join("runs", "r"), "--out", exp, "--merged"); err != nil {
		t.Fatalf("%v\n%s", err, out)
	}
	px := make([]float32, 3*28*28)
	for i := range px {
		px[i] = float32(math.Sin(float64(i) * 0.37))
	}
	pixels := filepath.Join(dir, "px.safetensors")
	if err := safetensors.WriteFile(pixels, map[string]safetensors.Tensor{"pixel_values": {Shape: []int{3, 1, 28, 28}, Data: px}}, nil); err != nil {
		t.Fatal(err)
	}
	base, err := filepath.Abs("../backbones/builtin/mnist-vit.safetensors")
	if err != nil {
		t.Fatal(err)
	}
	embed := func(name string, args ...string) []float32 {
		out := filepath.Join(dir, name)
		if o, err := host(t, dir, append([]string{"embed", "--pixels", pixels, "--out", out}, args...)...); err != nil {
			t.Fatalf("%v\n%s", err, o)
		}
		return readTensor(t, out, "image_embeds")
	}
	merged := embed("merged.safetensors", "--model", filepath.Join(exp, "merged.safetensors"))
	adapted := embed("adapted.safetensors", "--model", base, "--adapter", exp)
	plain := embed("plain.safetensors", "--model", base)
	changed := 0.0
	for i := range merged {
		if d := math.Abs(float64(merged[i] - adapted[i])); d > 1e-4 {
			t.Fatalf("embedding %d: merged %v, base + peft adapter %v", i, merged[i], adapted[i])
		}
		changed = math.Max(changed, math.Abs(float64(merged[i]-plain[i])))
	}
	if changed < 1e-4 {
		t.Fatalf("the trained adapter does not change the embeddings (max %.3g): the test would prove nothing", changed)
	}
}

// elevaterDataset writes a tiny cifar-10 in the vision-datasets layout: index files
// of "zip@member label" lines, images inside zips, labels.txt.
func elevaterDataset(t *testing.T) string {
	t.Helper()
	root := t.TempDir()
	dir := filepath.Join(root, "cifar10_20211007")
	os.MkdirAll(dir, 0o755)
	classes := []string{"airplane", "automobile", "bird", "cat", "deer", "dog", "frog", "horse", "ship", "truck"}
	os.WriteFile(filepath.Join(dir, "labels.txt"), []byte(strings.Join(classes, "\n")+"\n"), 0o644)
	for split, per := range map[string]int{"train": 3, "test": 2} {
		zf, err := os.Create(filepath.Join(dir, split+".zip"))
		if err != nil {
			t.Fatal(err)
		}
		zw := zip.NewWriter(zf)
		var index strings.Builder
		for c := range classes {
			for k := 0; k < per; k++ {
				img := image.NewRGBA(image.Rect(0, 0, 40, 30))
				for i := range img.Pix {
					img.Pix[i] = uint8((i*7 + c*40 + k*13) % 256)
				}
				name := fmt.Sprintf("%s/%d_%d.png", split, c, k)
				w, _ := zw.Create(name)
				png.Encode(w, img)
				fmt.Fprintf(&index, "%s.zip@%s %d\n", split, name, c)
			}
		}
		zw.Close()
		zf.Close()
		os.WriteFile(filepath.Join(dir, split+".txt"), []byte(index.String()), 0o644)
	}
	return root
}

// TestRunOnELEVATERData adapts a CLIP model (both towers, so the head starts from
// text embeddings) on a dataset in ELEVATER's layout, few-shot, end to end.
func TestRunOnELEVATERData(t *testing.T) {
	model := clipFolder(t)
	root := elevaterDataset(t)
	dir := t.TempDir()
	out, err := host(t, dir, "run", "--plugin", "kadaptation", "--model", model, "--dataset", "cifar-10", "--data-root", root,
		"--shots", "2", "--epochs", "2", "--batch-size", "8", "--json")
	if err != nil {
		t.Fatalf("%v\n%s", err, out)
	}
	var s Summary
	if err := json.Unmarshal([]byte(out[strings.Index(out, "{"):]), &s); err != nil {
		t.Fatalf("%v\n%s", err, out)
	}
	// The fixture tower: width 48 (n falls to 48's largest divisor <= 32, i.e. 24),
	// 3 blocks, 24-d projection, 10 classes.
	n, m := 24, 2
	want := int64(3*(4*n*m+48)+4*n*n) + 25*10
	if s.TrainableParams != want || s.Metric != "accuracy" || s.Shots != 2 {
		t.Fatalf("summary %+v; want %d trainable parameters", s, want)
	}
	if _, err := os.Stat(filepath.Join(s.RunDir, "final.json")); err != nil && !filepath.IsAbs(s.RunDir) {
		if _, err := os.Stat(filepath.Join(dir, s.RunDir, "final.json")); err != nil {
			t.Fatal(err)
		}
	}
}

// TestEmbedRefusesNonFiniteOutputs: weights that are finite but overflow in the
// forward pass (or NaN pixels) gave NaN embeddings, written with exit status 0.
func TestEmbedRefusesNonFiniteOutputs(t *testing.T) {
	model := clipFolder(t)
	weights := filepath.Join(model, "model.safetensors")
	f, err := safetensors.Open(weights)
	if err != nil {
		t.Fatal(err)
	}
	tensors := map[string]safetensors.Tensor{}
	for _, n := range f.Names() {
		info, _ := f.Info(n)
		d, _ := f.Float32s(n)
		if n == "vision_model.encoder.layers.0.mlp.fc1.weight" {
			for i := range d {
				d[i] = 1e30 // finite, but fc1 · fc2 overflows float32
			}
		}
		if n == "vision_model.encoder.layers.0.mlp.fc2.weight" {
			for i := range d {
				d[i] = 1e30
			}
		}
		tensors[n] = safetensors.Tensor{Shape: info.Shape, Data: d}
	}
	f.Close()
	if err := safetensors.WriteFile(weights, tensors, nil); err != nil {
		t.Fatal(err)
	}
	out := filepath.Join(t.TempDir(), "embeds.safetensors")
	o, err := host(t, ".", "embed", "--model", model, "--pixels", fixtures+"/clip_vision_small.io.safetensors", "--out", out)
	if err == nil || !strings.Contains(o, "is not finite") {
		t.Fatalf("err %v, output %q; want a non-finite embedding refused", err, o)
	}
	if _, err := os.Stat(out); err == nil {
		t.Error("embeddings were written")
	}
	// NaN pixels.
	px := filepath.Join(t.TempDir(), "px.safetensors")
	data := make([]float32, 3*64*64)
	data[5] = float32(math.NaN())
	if err := safetensors.WriteFile(px, map[string]safetensors.Tensor{"pixel_values": {Shape: []int{1, 3, 64, 64}, Data: data}}, nil); err != nil {
		t.Fatal(err)
	}
	o, err = host(t, ".", "embed", "--model", clipFolder(t), "--pixels", px, "--out", out)
	if err == nil || !strings.Contains(o, "pixel_values element 5 is NaN") {
		t.Fatalf("NaN pixels: err %v, output %q", err, o)
	}
}
