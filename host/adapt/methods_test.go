package adapt

import (
	"fmt"
	"math"
	"math/rand/v2"
	"testing"

	"gonum.org/v1/gonum/mat"

	"github.com/kadapt/kadapt/backbones"
	"github.com/kadapt/kadapt/core"
	"github.com/kadapt/kadapt/core/autograd"
	"github.com/kadapt/kadapt/core/backend/ref"
	"github.com/kadapt/kadapt/core/testutil"
	"github.com/kadapt/kadapt/methods/adapter"
	"github.com/kadapt/kadapt/methods/compacter"
	"github.com/kadapt/kadapt/methods/finetune"
	"github.com/kadapt/kadapt/methods/kadaptation"
	"github.com/kadapt/kadapt/methods/linearprobe"
	"github.com/kadapt/kadapt/methods/lora"
	"github.com/kadapt/kadapt/plugins/plan"
)

// tinyCLIP is a CLIP-style tower small enough for finite differences in float64.
func tinyCLIP(t *testing.T, b core.Backend) *backbones.Vision {
	t.Helper()
	cfg := backbones.Config{Name: "tiny", Family: backbones.CLIP, ImageSize: 8, PatchSize: 4, Channels: 3, Width: 8,
		Layers: 2, Heads: 2, MLPDim: 16, EmbedDim: 4, ActName: "quick_gelu", Eps: 1e-5}
	m, err := backbones.NewVision(b, cfg)
	if err != nil {
		t.Fatal(err)
	}
	m.InitRandom(5)
	// Layer norms off their init so that every parameter matters.
	rng := rand.New(rand.NewPCG(6, 7))
	for _, p := range m.Params() {
		d := ref.Float64s(p.Value)
		for i := range d {
			d[i] += 0.1 * rng.NormFloat64()
		}
		ref.UploadFloat64(p.Value, d)
	}
	return m
}

type methodCase struct {
	name string
	plan func(bb plan.Backbone) (plan.Plan, error)
}

func methodCases() []methodCase {
	return []methodCase{
		{"kadaptation", func(bb plan.Backbone) (plan.Plan, error) {
			c := kadaptation.Default()
			c.N, c.Scale = 4, 3
			return kadaptation.Method.Build(bb, c)
		}},
		{"adapter", func(bb plan.Backbone) (plan.Plan, error) {
			c := adapter.Default()
			c.Bottleneck, c.Act = 3, "gelu" // smooth: finite differences across ReLU's kink mislead
			return adapter.Method.Build(bb, c)
		}},
		{"lora", func(bb plan.Backbone) (plan.Plan, error) {
			c := lora.Default()
			c.R, c.Alpha, c.Targets = 2, 4, []string{"q", "k", "v", "out", "fc1", "fc2"}
			return lora.Method.Build(bb, c)
		}},
		{"compacter", func(bb plan.Backbone) (plan.Plan, error) {
			c := compacter.Default()
			c.N, c.Bottleneck = 2, 4
			return compacter.Method.Build(bb, c)
		}},
		{"finetune", func(bb plan.Backbone) (plan.Plan, error) { return finetune.Method.Build(bb, finetune.Config{}) }},
		{"linearprobe", func(bb plan.Backbone) (plan.Plan, error) { return linearprobe.Method.Build(bb, linearprobe.Config{}) }},
	}
}

// perturb gives every trainable parameter non-zero values: zero-initialised factors
// (LoRA's B, KAdaptation's v) would otherwise hide the gradients of their partners.
func perturb(a *Adapted, seed uint64) {
	rng := rand.New(rand.NewPCG(seed, 9))
	for _, p := range a.Trainable {
		d := ref.Float64s(p.Value)
		for i := range d {
			d[i] += 0.3 * rng.NormFloat64()
		}
		ref.UploadFloat64(p.Value, d)
	}
}

// TestMethodGradientsFiniteDifferences checks, for every method, the gradient of every
// trainable scalar against central differences of the tower's output in float64.
func TestMethodGradientsFiniteDifferences(t *testing.T) {
	for _, mc := range methodCases() {
		t.Run(mc.name, func(t *testing.T) {
			b := ref.New()
			m := tinyCLIP(t, b)
			p, err := mc.plan(Describe(m))
			if err != nil {
				t.Fatal(err)
			}
			a, err := Compile(m, p, 11)
			if err != nil {
				t.Fatal(err)
			}
			if mc.name == "linearprobe" {
				if len(a.Trainable) != 0 || a.Count != 0 {
					t.Fatalf("linear probe trains %d tensors (%d scalars) of the backbone", len(a.Trainable), a.Count)
				}
				return
			}
			var n int64
			for _, v := range a.Trainable {
				n += int64(v.Value.Size())
			}
			if n != a.Count {
				t.Fatalf("compiled %d trainable scalars, the plan counts %d", n, a.Count)
			}
			perturb(a, 3)
			rng := rand.New(rand.NewPCG(1, 2))
			px := make([]float32, 2*3*8*8)
			for i := range px {
				px[i] = float32(rng.NormFloat64())
			}
			r := make([]float32, 2*4)
			for i := range r {
				r[i] = float32(rng.NormFloat64())
			}
			loss := func(tp *autograd.Tape) *autograd.Var {
				out := m.Forward(tp, tp.Input(px, 2, 3, 8, 8))
				return tp.Sum(tp.Mul(out.Embeds, tp.Input(r, 2, 4)), nil, false)
			}
			tp := autograd.NewTape(b)
			tp.Backward(loss(tp))
			tp.Reset()
			value := func() float64 {
				tp := autograd.NewTape(b)
				tp.SetGradEnabled(false)
				defer tp.Reset()
				return ref.Float64s(loss(tp).Value)[0]
			}
			const h = 1e-6
			checked := 0
			for _, v := range a.Trainable {
				grad := ref.Float64s(v.Grad)
				// Up to 6 entries per tensor keep the test fast on finetune's thousands.
				var at []int
				for k := 0; k < v.Value.Size() && k < 6; k++ {
					at = append(at, (k*7919)%v.Value.Size())
				}
				fd := testutil.CentralDiffRef(v.Value, value, h, at)
				for k, i := range at {
					if math.Abs(fd[k]-grad[i]) > 1e-5*math.Max(1, math.Abs(fd[k])) {
						t.Errorf("%s[%d]: gradient %.9g, finite difference %.9g", v.Name, i, grad[i], fd[k])
					}
					checked++
				}
			}
			if checked == 0 {
				t.Fatal("nothing checked")
			}
		})
	}
}

// kronSum is Σ_i A_i ⊗ B_i with gonum, the independent reference.
func kronSum(as, bs []*mat.Dense) *mat.Dense {
	var sum *mat.Dense
	for i := range as {
		var k mat.Dense
		k.Kronecker(as[i], bs[i])
		if sum == nil {
			sum = mat.DenseCopyOf(&k)
		} else {
			sum.Add(sum, &k)
		}
	}
	return sum
}

// stack reads a [n, p, q] tensor (or the product of [n,p,1]·[n,1,q] factors) as matrices.
func outerStack(u, v []float64, n, p, q int) []*mat.Dense {
	out := make([]*mat.Dense, n)
	for i := 0; i < n; i++ {
		m := mat.NewDense(p, q, nil)
		for a := 0; a < p; a++ {
			for c := 0; c < q; c++ {
				m.Set(a, c, u[i*p+a]*v[i*q+c])
			}
		}
		out[i] = m
	}
	return out
}

func maxAbs(a []float64, m *mat.Dense) float64 {
	r, c := m.Dims()
	worst := 0.0
	for i := 0; i < r; i++ {
		for j := 0; j < c; j++ {
			worst = math.Max(worst, math.Abs(a[i*c+j]-m.At(i, j)))
		}
	}
	return worst
}

// TestKAdaptationDeltaIsASumOfKroneckers compares the ΔW the host computes from
// KAdaptation's plan with gonum's Kronecker products of the same factors.
func TestKAdaptationDeltaIsASumOfKroneckers(t *testing.T) {
	b := ref.New()
	m := tinyCLIP(t, b)
	c := kadaptation.Default()
	c.N, c.Scale = 4, 2.5
	p, err := kadaptation.Method.Build(Describe(m), c)
	if err != nil {
		t.Fatal(err)
	}
	a, err := Compile(m, p, 4)
	if err != nil {
		t.Fatal(err)
	}
	perturb(a, 8)
	get := map[string][]float64{}
	for _, v := range a.Params {
		get[v.Name] = ref.Float64s(v.Value)
	}
	n, w := 4, 8
	sub := w / n
	for layer, blk := range m.Blocks {
		for _, tc := range []struct {
			target string
			lin    *backbones.Linear
		}{{"q", &blk.Q}, {"v", &blk.V}} {
			slow := outerStack(get["adapt."+tc.target+".slow.a"], get["adapt."+tc.target+".slow.b"], n, n, n)
			fast := outerStack(get[fmt.Sprintf("adapt.blocks.%d.%s.fast.u", layer, tc.target)], get[fmt.Sprintf("adapt.blocks.%d.%s.fast.v", layer, tc.target)], n, sub, sub)
			want := kronSum(slow, fast)
			want.Scale(c.Scale, want)
			tp := autograd.NewTape(b)
			tp.SetGradEnabled(false)
			got := ref.Float64s(tc.lin.WeightDelta(tp).Value)
			tp.Reset()
			if d := maxAbs(got, want); d > 1e-12 {
				t.Errorf("block %d %s: ΔW differs from gonum's Σ A_i⊗B_i by %.3g", layer, tc.target, d)
			}
		}
	}
}

// TestCompacterPHMIsASumOfKroneckers checks Compacter's down projection against gonum.
func TestCompacterPHMIsASumOfKroneckers(t *testing.T) {
	b := ref.New()
	m := tinyCLIP(t, b)
	c := compacter.Config{N: 2, Bottleneck: 4, Act: "gelu"}
	p, err := compacter.Method.Build(Describe(m), c)
	if err != nil {
		t.Fatal(err)
	}
	a, err := Compile(m, p, 4)
	if err != nil {
		t.Fatal(err)
	}
	get := map[string][]float64{}
	for _, v := range a.Params {
		get[v.Name] = ref.Float64s(v.Value)
	}
	s := get["adapt.phm.s"]
	var sm []*mat.Dense
	for i := 0; i < 2; i++ {
		sm = append(sm, mat.NewDense(2, 2, append([]float64(nil), s[i*4:(i+1)*4]...)))
	}
	// down = Σ S_i ⊗ (l_i r_iᵀ): [2·2, 2·4] = [bottleneck, width].
	want := kronSum(sm, outerStack(get["adapt.blocks.0.down.l"], get["adapt.blocks.0.down.r"], 2, 2, 4))
	// Evaluate the same sub-expression the plan uses through the host's expression ops.
	tp := autograd.NewTape(b)
	tp.SetGradEnabled(false)
	defer tp.Reset()
	var sVar, lVar, rVar *autograd.Var
	for _, v := range a.Params {
		switch v.Name {
		case "adapt.phm.s":
			sVar = v
		case "adapt.blocks.0.down.l":
			lVar = v
		case "adapt.blocks.0.down.r":
			rVar = v
		}
	}
	got := ref.Float64s(tp.KronSum(sVar, tp.MatMul(lVar, rVar, false, false)).Value)
	if d := maxAbs(got, want); d > 1e-12 {
		t.Fatalf("PHM weight differs from gonum's Σ S_i⊗(l_i r_iᵀ) by %.3g", d)
	}
	if sVar.Trainable() {
		t.Error("Compacter's shared S trains; the paper freezes it")
	}
}

// TestKAdaptationMergeKeepsOutputs folds ΔW and the bias into the weights.
func TestKAdaptationMergeKeepsOutputs(t *testing.T) {
	b := ref.New()
	m := tinyCLIP(t, b)
	c := kadaptation.Default()
	c.N = 2
	p, _ := kadaptation.Method.Build(Describe(m), c)
	a, err := Compile(m, p, 4)
	if err != nil {
		t.Fatal(err)
	}
	perturb(a, 2)
	px := make([]float32, 3*8*8)
	for i := range px {
		px[i] = float32(math.Cos(float64(i)))
	}
	forward := func() []float64 {
		tp := autograd.NewTape(b)
		tp.SetGradEnabled(false)
		defer tp.Reset()
		return ref.Float64s(m.Forward(tp, tp.Input(px, 1, 3, 8, 8)).Embeds.Value)
	}
	before := forward()
	if err := a.Merge(); err != nil {
		t.Fatal(err)
	}
	after := forward()
	for i := range before {
		if math.Abs(before[i]-after[i]) > 1e-12 {
			t.Fatalf("merged output %d: %v, unmerged %v", i, after[i], before[i])
		}
	}
}
