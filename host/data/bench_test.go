package data

import (
	"bytes"
	"context"
	"image"
	"image/jpeg"
	"math/rand/v2"
	"os"
	"path/filepath"
	"testing"

	"github.com/kadapt/kadapt/backbones"
	"github.com/kadapt/kadapt/backbones/preprocess"
	"github.com/kadapt/kadapt/core/autograd"
	"github.com/kadapt/kadapt/core/backend/cpu"
)

// BenchmarkEmbedImages embeds 64 JPEG files (500×375, decoded and preprocessed to
// 96×96) with a small tower, fetching each chunk before its forward pass
// ("sequential", the loop FetchChunks was) and with FetchChunks fetching ahead
// ("prefetched"). Each iteration reads the files afresh (Images caches).
func BenchmarkEmbedImages(b *testing.B) {
	dir := b.TempDir()
	rng := rand.New(rand.NewPCG(1, 1))
	var paths []string
	for i := range 64 {
		img := image.NewRGBA(image.Rect(0, 0, 500, 375))
		for j := range img.Pix {
			img.Pix[j] = uint8(rng.IntN(256))
		}
		var buf bytes.Buffer
		if err := jpeg.Encode(&buf, img, &jpeg.Options{Quality: 90}); err != nil {
			b.Fatal(err)
		}
		p := filepath.Join(dir, string(rune('a'+i%26))+string(rune('a'+i/26))+".jpg")
		if err := os.WriteFile(p, buf.Bytes(), 0o644); err != nil {
			b.Fatal(err)
		}
		paths = append(paths, p)
	}
	be := cpu.New()
	v, err := backbones.NewVision(be, backbones.Config{Name: "bench", Family: backbones.CLIP, ImageSize: 96, PatchSize: 16,
		Channels: 3, Width: 256, Layers: 4, Heads: 4, MLPDim: 1024, EmbedDim: 128, ActName: "quick_gelu", Eps: 1e-5})
	if err != nil {
		b.Fatal(err)
	}
	v.InitRandom(1)
	cfg := preprocess.CLIPConfig(96)
	const batch = 16
	b.Run("sequential", func(b *testing.B) {
		for range b.N {
			d := Files(paths, cfg)
			tp := autograd.NewTape(be)
			tp.SetGradEnabled(false)
			x := make([]float32, batch*3*96*96)
			for off := 0; off < d.Len(); off += batch {
				idx := make([]int, batch)
				for i := range idx {
					idx[i] = off + i
				}
				if err := d.Fetch(idx, x, make([][]int, batch)); err != nil {
					b.Fatal(err)
				}
				v.Forward(tp, tp.Input(x, batch, 3, 96, 96))
				tp.Reset()
			}
		}
	})
	b.Run("prefetched", func(b *testing.B) {
		for range b.N {
			if _, _, err := Embed(context.Background(), v, Files(paths, cfg), batch, nil); err != nil {
				b.Fatal(err)
			}
		}
	})
}
