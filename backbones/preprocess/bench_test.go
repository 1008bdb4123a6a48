package preprocess

import (
	"bytes"
	"image"
	"image/jpeg"
	"testing"
)

// BenchmarkPreprocessJPEG500x375 decodes and preprocesses a 500×375 JPEG
// (the typical ImageNet/ELEVATER photo size) to a CLIP 224×224 tensor on all
// cores, as the data loader does.
func BenchmarkPreprocessJPEG500x375(b *testing.B) {
	src := image.NewYCbCr(image.Rect(0, 0, 500, 375), image.YCbCrSubsampleRatio420)
	for y := range 375 {
		for x := range 500 {
			src.Y[src.YOffset(x, y)] = uint8((x*x/7 + y*3) % 256)
			c := src.COffset(x, y)
			src.Cb[c], src.Cr[c] = uint8(x/2), uint8(y/2+60)
		}
	}
	var buf bytes.Buffer
	if err := jpeg.Encode(&buf, src, &jpeg.Options{Quality: 90}); err != nil {
		b.Fatal(err)
	}
	data := buf.Bytes()
	cfg := CLIPConfig(224)
	b.SetBytes(int64(len(data)))
	b.ResetTimer()
	b.RunParallel(func(pb *testing.PB) {
		dst := make([]float32, 3*224*224)
		for pb.Next() {
			img, err := DecodeBytes(data, "bench.jpg")
			if err != nil {
				b.Error(err)
				return
			}
			if err := ProcessInto(dst, img, cfg); err != nil {
				b.Error(err)
				return
			}
		}
	})
	b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "images/s")
}
