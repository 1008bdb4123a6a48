//go:build cuda

package cuda

import (
	"fmt"
	"math"
	"math/rand/v2"
	"testing"

	"github.com/kadapt/kadapt/backbones"
	"github.com/kadapt/kadapt/backbones/preprocess"
	"github.com/kadapt/kadapt/core"
	"github.com/kadapt/kadapt/core/autograd"
	"github.com/kadapt/kadapt/core/backend/cpu"
	"github.com/kadapt/kadapt/core/optim"
	"github.com/kadapt/kadapt/host/adapt"
	"github.com/kadapt/kadapt/host/train"
	"github.com/kadapt/kadapt/methods/kadaptation"
	"github.com/kadapt/kadapt/methods/lora"
	"github.com/kadapt/kadapt/plugins/plan"
)

// countingDriver counts the calls that make the host wait for the device.
type countingDriver struct {
	driver
	waits int
}

func (c *countingDriver) download(dst []float32, p uintptr) (uint32, error) {
	c.waits++
	return c.driver.download(dst, p)
}

func (c *countingDriver) sync() (uint32, error) {
	c.waits++
	return c.driver.sync()
}

// tinyCLIP is a CLIP-style image tower small enough for the emulator.
var tinyCLIP = backbones.Config{Name: "tiny-clip", Family: backbones.CLIP, ImageSize: 16, PatchSize: 8, Channels: 3,
	Width: 32, Layers: 2, Heads: 2, MLPDim: 64, EmbedDim: 16, ActName: "quick_gelu", Eps: 1e-5,
	Mean: preprocess.CLIPMean, Std: preprocess.CLIPStd}

// vitRun is what vitSteps observed.
type vitRun struct {
	losses []float32
	grads  []float32 // every trainable gradient after the first backward pass
	moved  []float32 // every trainable parameter's change over all steps
	names  []string
	sizes  []int
	waits  int // host waits for the device between the input upload and the loss download of the last step
}

// adaptedTower builds cfg's image tower on be (zero weights), adapts it with method's
// default plan ("lora" or "kadaptation", whose n is kadaptN when that is not 0) and
// adds the paper's head; params are the optimizer's: the plan's trainables, then the
// head's.
func adaptedTower(t *testing.T, be core.Backend, cfg backbones.Config, method string, kadaptN, classes int) (
	v *backbones.Vision, a *adapt.Adapted, head *train.Head, params []*autograd.Var) {
	t.Helper()
	v, err := backbones.NewVision(be, cfg)
	if err != nil {
		t.Fatal(err)
	}
	var p plan.Plan
	switch method {
	case "kadaptation":
		c := kadaptation.Default()
		if kadaptN != 0 {
			c.N = kadaptN
		}
		p, err = kadaptation.Method.Build(adapt.Describe(v), c)
	case "lora":
		p, err = lora.Method.Build(adapt.Describe(v), lora.Default())
	default:
		t.Fatalf("no plan for method %q", method)
	}
	if err != nil {
		t.Fatal(err)
	}
	if a, err = adapt.Compile(v, p, 1); err != nil {
		t.Fatal(err)
	}
	head = train.NewHead(be, cfg.EmbedDim, classes)
	params = append(append([]*autograd.Var(nil), a.Trainable...), head.Params()...)
	return v, a, head, params
}

// vitSteps trains the tiny tower adapted by method ("kadaptation" or "lora") plus the
// paper's head for a few AdamW steps, as host/train does, on be.
func vitSteps(t *testing.T, be core.Backend, method string, steps int) vitRun {
	t.Helper()
	v, a, head, params := adaptedTower(t, be, tinyCLIP, method, 4, 5)
	v.InitRandom(1)
	// KAdaptation starts with v = 0 and LoRA with B = 0, so the adapters' inputs get
	// no gradient on the first step; a random start makes every gradient count.
	rng := rand.New(rand.NewPCG(5, 6))
	for _, q := range a.Params {
		d := make([]float32, q.Value.Size())
		for i := range d {
			d[i] = float32(rng.NormFloat64() * 0.05)
		}
		be.Upload(q.Value, d)
	}
	head.InitRandom(1)
	initial := snapshot(be, params, func(p *autograd.Var) *core.Tensor { return p.Value })
	o := optim.NewAdamW(be, []optim.Group{{Name: "all", Params: params, WeightDecay: 0.01}}, optim.DefaultAdamWConfig())

	px := make([]float32, 6*3*16*16)
	for i := range px {
		px[i] = float32(rng.NormFloat64())
	}
	labels := be.Alloc(core.Shape{6})
	be.Upload(labels, []float32{0, 1, 2, 3, 4, 1})
	var cd *countingDriver
	if g, ok := be.(*Backend); ok {
		cd = &countingDriver{driver: g.d}
		g.d = cd
		defer func() { g.d = cd.driver }()
	}
	var run vitRun
	for _, p := range params {
		run.names = append(run.names, p.Name)
		run.sizes = append(run.sizes, p.Value.Size())
	}
	tp := autograd.NewTape(be)
	for s := range steps {
		tp.Training = true
		x := tp.Input(px, 6, 3, 16, 16)
		if cd != nil {
			cd.waits = 0
		}
		loss := tp.CrossEntropy(head.Forward(tp, v.Forward(tp, x).Embeds), labels, 0.1)
		tp.Backward(loss)
		if s == 0 {
			run.grads = snapshot(be, params, func(p *autograd.Var) *core.Tensor { return p.Grad })
		}
		optim.ClipGradNorm(be, params, 1)
		o.Step(1e-3)
		o.ZeroGrad()
		if cd != nil {
			run.waits = cd.waits
		}
		var l [1]float32
		be.Download(l[:], loss.Value)
		run.losses = append(run.losses, l[0])
		tp.Reset()
	}
	final := snapshot(be, params, func(p *autograd.Var) *core.Tensor { return p.Value })
	for i := range final {
		run.moved = append(run.moved, final[i]-initial[i])
	}
	return run
}

func snapshot(be core.Backend, params []*autograd.Var, of func(*autograd.Var) *core.Tensor) []float32 {
	var out []float32
	for _, p := range params {
		d := make([]float32, p.Value.Size())
		if t := of(p); t != nil {
			be.Download(d, t)
		}
		out = append(out, d...)
	}
	return out
}

// relDiff is ‖got − want‖ / ‖want‖.
func relDiff(got, want []float32) float64 {
	var d, w float64
	for i := range want {
		d += math.Pow(float64(got[i])-float64(want[i]), 2)
		w += math.Pow(float64(want[i]), 2)
	}
	return math.Sqrt(d / w)
}

// bf16CPU is the CPU backend with bf16 autocast's products: MatMul rounds its
// inputs with roundBF16 (independent of the kernel) unless the product has one term,
// so a bf16 run on the device can be held to float32 tolerances.
type bf16CPU struct{ core.Backend }

func (c bf16CPU) MatMul(dst, a, b *core.Tensor, transA, transB bool, alpha, beta float32) {
	k := a.Shape()[a.Rank()-1]
	if transA {
		k = a.Shape()[a.Rank()-2]
	}
	if k == 1 {
		c.Backend.MatMul(dst, a, b, transA, transB, alpha, beta)
		return
	}
	round := func(t *core.Tensor) *core.Tensor {
		v := make([]float32, t.Size())
		c.Download(v, t)
		for i, x := range v {
			v[i] = float32(bf16Value(roundBF16(x)))
		}
		r := c.Alloc(t.Shape())
		c.Upload(r, v)
		return r
	}
	ra, rb := round(a), round(b)
	c.Backend.MatMul(dst, ra, rb, transA, transB, alpha, beta)
	c.Release(ra)
	c.Release(rb)
}

// TestViTTrainingStepsMatchCPU trains a tiny adapted CLIP tower for three AdamW steps
// (gradient clipping, weight decay, the BatchNorm head, label smoothing) on the GPU
// and on the CPU backend: losses, first gradients and the parameters' total change
// must agree, and no step may wait for the device before its loss is read. Under
// bf16 autocast the CPU rounds its products' inputs the same way. Attention runs fused
// and composed (attention=composed).
func TestViTTrainingStepsMatchCPU(t *testing.T) {
	for _, method := range []string{"kadaptation", "lora"} {
		for _, c := range []struct {
			prec     Precision
			composed bool // attention=composed
		}{{FP32, false}, {BF16, false}, {FP32, true}, {BF16, true}} {
			prec := c.prec
			name := fmt.Sprintf("%s/%v", method, prec)
			if c.composed {
				name += "/composed-attention"
			}
			t.Run(name, func(t *testing.T) {
				var ref core.Backend = cpu.New()
				gradTol, lossTol := 2e-4, 2e-5
				if prec == BF16 {
					ref = bf16CPU{ref}
					// A float32 difference of an ulp can move a product's input across a
					// bfloat16 rounding boundary: an error of 2⁻⁹ in that one input.
					gradTol, lossTol = 1e-3, 1e-4
				}
				want := vitSteps(t, ref, method, 3)
				onEach(t, func(t *testing.T, b *Backend) {
					if err := b.SetPrecision(prec); err != nil {
						t.Fatal(err)
					}
					b.composed = c.composed
					defer func() { b.SetPrecision(FP32); b.composed = false }()
					got := vitSteps(t, b, method, 3)
					for i := range want.losses {
						if d := math.Abs(float64(got.losses[i] - want.losses[i])); d > lossTol*math.Abs(float64(want.losses[i])) {
							t.Errorf("step %d loss %v, CPU %v", i, got.losses[i], want.losses[i])
						}
					}
					off := 0
					for i, n := range want.sizes {
						if d := relDiff(got.grads[off:off+n], want.grads[off:off+n]); d > gradTol {
							t.Errorf("first gradient of %s differs from the CPU's by %.3g (relative norm), above %g", want.names[i], d, gradTol)
						}
						off += n
					}
					if d := relDiff(got.moved, want.moved); d > 10*gradTol {
						t.Errorf("parameter updates differ from the CPU's by %.3g (relative norm), above %g", d, 10*gradTol)
					}
					if got.waits != 0 {
						t.Errorf("a training step waited for the device %d times before its loss was read", got.waits)
					}
				})
			})
		}
	}
}
