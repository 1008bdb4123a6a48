//go:build cuda

package cuda

import (
	"testing"

	"github.com/kadapt/kadapt/backbones"
	"github.com/kadapt/kadapt/core"
	"github.com/kadapt/kadapt/core/autograd"
	"github.com/kadapt/kadapt/core/optim"
)

// pytorchLoRAPeakGiB is torch.cuda.max_memory_allocated for the same LoRA training
// step (HF CLIP ViT-B/32, peft LoRA r=4 on q,v, AdamW, batch 256, fp32) on the GPU
// machine, from shared/cuda13/README.md.
const pytorchLoRAPeakGiB = 8.3

// TestPeakMemoryViTB32 runs full-size ViT-B/32 training steps at batch 256 on the
// recording driver, which computes nothing but allocates through the real caching
// allocator and checks every launch and cuBLAS operand against its buffers at these
// shapes. The peak of memory in tensors is exact without a GPU, so the issue's "less
// memory than PyTorch" is held here for LoRA; KAdaptation's peak is reported beside it.
// So is the memory traffic of zero fills, which only partly written tensors need.
func TestPeakMemoryViTB32(t *testing.T) {
	if testing.Short() {
		t.Skip("full-size model")
	}
	cfg, err := backbones.Preset("clip-vit-b32")
	if err != nil {
		t.Fatal(err)
	}
	const batch = 256
	for _, method := range []string{"lora", "kadaptation"} {
		t.Run(method, func(t *testing.T) {
			f := newFakeDriver(t)
			b, err := newBackend(f, "cuda:fake", Options{})
			if err != nil {
				t.Fatal(err)
			}
			v, _, head, params := adaptedTower(t, b, cfg, method, 0, 10)
			o := optim.NewAdamW(b, []optim.Group{{Name: "all", Params: params}}, optim.DefaultAdamWConfig())
			px := make([]float32, batch*3*224*224)
			labels := b.Alloc(core.Shape{batch})
			tp := autograd.NewTape(b)
			for s := range 2 { // the second step runs with the optimizer state in place
				f.zeroed, f.gemms = 0, 0
				clear(f.launches)
				if s == 1 {
					b.ResetPeak()
				}
				tp.Training = true
				x := tp.Input(px, batch, 3, 224, 224)
				loss := tp.CrossEntropy(head.Forward(tp, v.Forward(tp, x).Embeds), labels, 0)
				tp.Backward(loss)
				o.Step(1e-4)
				o.ZeroGrad()
				tp.Reset()
			}
			for _, e := range f.errs {
				t.Error(e)
			}
			// Op outputs and fresh gradients are written in full, so they skip the
			// allocator's zero fill (core.UninitAllocator): a pass over memory each.
			if f.zeroed > 1<<28 {
				t.Errorf("a steady training step zero-filled %.2f GiB", float64(f.zeroed)/(1<<30))
			}
			launches := 0
			for _, n := range f.launches {
				launches += n
			}
			t.Logf("%s: a step makes %d kernel launches (%d k_axpby) and %d cuBLAS calls", method, launches, f.launches["k_axpby"], f.gemms)
			peak := float64(b.PeakInUseBytes()) / (1 << 30)
			t.Logf("%s: peak %.2f GiB in tensors, %.2f GiB held with the cache (PyTorch LoRA: %.1f GiB allocated)",
				method, peak, float64(b.PeakBytes())/(1<<30), pytorchLoRAPeakGiB)
			if method == "lora" && peak >= pytorchLoRAPeakGiB {
				t.Errorf("LoRA step peaks at %.2f GiB, not below PyTorch's %.1f GiB", peak, pytorchLoRAPeakGiB)
			}
		})
	}
}
