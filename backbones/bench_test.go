package backbones

import (
	"math/rand/v2"
	"testing"

	"github.com/kadapt/kadapt/core/autograd"
	"github.com/kadapt/kadapt/core/backend/cpu"
)

// BenchmarkCLIPViTB32Forward is the full ViT-B/32 image tower (random weights) at
// batch 8 on the CPU backend, inference only; it reports images/s.
func BenchmarkCLIPViTB32Forward(b *testing.B) {
	cfg, err := Preset("clip-vit-b32")
	if err != nil {
		b.Fatal(err)
	}
	be := cpu.New()
	m, err := NewVision(be, cfg)
	if err != nil {
		b.Fatal(err)
	}
	m.InitRandom(1)
	const batch = 8
	rng := rand.New(rand.NewPCG(1, 2))
	px := make([]float32, batch*3*224*224)
	for i := range px {
		px[i] = float32(rng.NormFloat64())
	}
	tp := autograd.NewTape(be)
	tp.SetGradEnabled(false)
	forward := func() {
		m.Forward(tp, tp.Input(px, batch, 3, 224, 224))
		tp.Reset()
	}
	forward() // fill the pool
	b.ReportAllocs()
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		forward()
	}
	b.ReportMetric(float64(batch*b.N)/b.Elapsed().Seconds(), "images/s")
}
