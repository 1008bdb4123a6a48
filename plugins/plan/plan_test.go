package plan

import (
	"errors"
	"fmt"
	"math"
	"reflect"
	"strings"
	"testing"
)

// vitB32 is CLIP's ViT-B/32 image tower; method-notes give its sizes and counts.
var vitB32 = StandardViT(ViTConfig{Name: "clip-vit-b32", Layers: 12, Width: 768, Heads: 12,
	MLPDim: 3072, Patch: 32, Image: 224, EmbedDim: 512})

func uniform(lo, hi float64) Init { return Init{Kind: Uniform, Low: lo, High: hi} }
func normal(std float64) Init     { return Init{Kind: Normal, Std: std} }

var zeros = Init{Kind: Zeros}
var ones = Init{Kind: Ones}

func perLayer(name string, init Init, shape ...int) ParamSpec {
	return ParamSpec{Name: name, Shape: shape, Init: init, Scope: PerLayer, Trainable: true}
}

func shared(name string, init Init, shape ...int) ParamSpec {
	return ParamSpec{Name: name, Shape: shape, Init: init, Scope: Shared, Trainable: true}
}

// kadaptation is the paper's method on q and v of every block: n = 32 Kronecker
// terms, slow 32×32 rank-1 factors shared by all blocks, fast 24×24 rank-1 factors
// and a bias per block.
func kadaptation(width int) Plan {
	const n = 32
	f := width / n
	p := Plan{Method: "kadaptation", Version: "1", Trainable: TrainableSpec{Mode: TrainNone}}
	for _, t := range []string{"q", "v"} {
		p.Params = append(p.Params,
			shared(t+".slow.a", uniform(-0.01, 0.01), n, n, 1),
			shared(t+".slow.b", uniform(-0.01, 0.01), n, 1, n),
			perLayer(t+".fast.u", normal(0.02), n, f, 1),
			perLayer(t+".fast.v", zeros, n, 1, f))
		p.Edits = append(p.Edits, Edit{Site: "blocks.*.attn." + t, Kind: WeightDelta,
			Expr: fmt.Sprintf("160 * kron_sum(matmul(%[1]s.slow.a, %[1]s.slow.b), matmul(%[1]s.fast.u, %[1]s.fast.v))", t)})
	}
	p.Params = append(p.Params, perLayer("bias", zeros, width))
	p.Edits = append(p.Edits, Edit{Site: "blocks.*.attn.q", Kind: BiasDelta, Expr: "bias"})
	return p
}

func lora(width, r int) Plan {
	p := Plan{Method: "lora", Version: "1", Trainable: TrainableSpec{Mode: TrainNone}}
	for _, t := range []string{"q", "v"} {
		p.Params = append(p.Params,
			perLayer(t+".A", normal(0.02), r, width),
			perLayer(t+".B", zeros, width, r))
		p.Edits = append(p.Edits, Edit{Site: "blocks.*.attn." + t, Kind: WeightDelta,
			Expr: fmt.Sprintf("128 / %d * matmul(%[2]s.B, %[2]s.A)", r, t)})
	}
	return p
}

func adapter(width, hidden int) Plan {
	return Plan{Method: "adapter", Version: "1", Trainable: TrainableSpec{Mode: TrainNone},
		Params: []ParamSpec{
			perLayer("ln.g", ones, width), perLayer("ln.b", zeros, width),
			perLayer("down.w", normal(0.02), hidden, width), perLayer("down.b", zeros, hidden),
			perLayer("up.w", normal(0.02), width, hidden), perLayer("up.b", zeros, width),
		},
		Edits: []Edit{{Site: "blocks.*.mlp", Kind: ModuleAfter,
			Expr: "h + linear(relu(linear(layer_norm(h, ln.g, ln.b), down.w, down.b)), up.w, up.b)"}},
	}
}

func compacter(width, hidden, n int) Plan {
	glorot := Init{Kind: GlorotUniform, Gain: math.Sqrt2}
	s := shared("S", uniform(-1, 1), n, n, n)
	s.Trainable = false
	return Plan{Method: "compacter", Version: "1", Trainable: TrainableSpec{Mode: TrainNone},
		Params: []ParamSpec{s,
			perLayer("ln.g", ones, width), perLayer("ln.b", zeros, width),
			perLayer("down.l", glorot, n, hidden/n, 1), perLayer("down.r", glorot, n, 1, width/n),
			perLayer("down.b", zeros, hidden),
			perLayer("up.l", glorot, n, width/n, 1), perLayer("up.r", glorot, n, 1, hidden/n),
			perLayer("up.b", zeros, width),
		},
		Edits: []Edit{{Site: "blocks.*.mlp", Kind: ModuleAfter,
			Expr: "h + linear(gelu(linear(layer_norm(h, ln.g, ln.b), kron_sum(S, matmul(down.l, down.r)), down.b))," +
				" kron_sum(S, matmul(up.l, up.r)), up.b)"}},
	}
}

func trainOnly(spec TrainableSpec) Plan {
	return Plan{Method: "finetune", Version: "1", Trainable: spec}
}

func TestStandardViTCounts(t *testing.T) {
	// method-notes: the ViT-B/32 visual tower has 87,849,216 parameters (conv1
	// 2,359,296; 12 blocks of 7,087,872), the ViT-B/16 tower 86,192,640.
	tests := []struct {
		bb   Backbone
		want int64
	}{
		{vitB32, 87_849_216},
		{StandardViT(ViTConfig{Layers: 12, Width: 768, Heads: 12, MLPDim: 3072, Patch: 16, Image: 224, EmbedDim: 512}), 86_192_640},
	}
	for _, tt := range tests {
		var n int64
		for _, p := range tt.bb.Params {
			n += size(p.Shape)
		}
		if n != tt.want {
			t.Errorf("%d parameters, want %d", n, tt.want)
		}
	}
	var block int64
	for _, p := range vitB32.Params {
		if strings.HasPrefix(p.Name, "blocks.0.") {
			block += size(p.Shape)
		}
	}
	if block != 7_087_872 {
		t.Errorf("block 0 has %d parameters, want 7,087,872", block)
	}
	if got := len(vitB32.Sites); got != 12*8 {
		t.Errorf("%d sites, want 96", got)
	}
}

func TestCountTrainable(t *testing.T) {
	// Expected counts are method-notes' table for ViT-B/32 (head excluded) and closed
	// forms for the pattern cases.
	tests := []struct {
		name string
		p    Plan
		want int64
	}{
		{"kadaptation", kadaptation(768), 50_176},
		{"adapter", adapter(768, 64), 1_208_064},
		{"lora", lora(768, 4), 147_456},
		{"compacter", compacter(768, 64, 4), 48_384},
		{"fine-tune", trainOnly(TrainableSpec{Mode: TrainAll}), 87_849_216},
		{"linear probe", trainOnly(TrainableSpec{Mode: TrainNone}), 0},
		{"attention biases", trainOnly(TrainableSpec{Mode: TrainPatterns, Patterns: []string{"blocks.*.attn.*.bias"}}), 12 * 4 * 768},
		{"last two blocks' attention biases", trainOnly(TrainableSpec{Mode: TrainPatterns,
			Patterns: []string{"blocks.*.attn.*.bias"}, FromLayer: 10, ToLayer: 12}), 2 * 4 * 768},
		{"block layer norms", trainOnly(TrainableSpec{Mode: TrainPatterns, Patterns: []string{"*.ln*"}}), 12 * 4 * 768},
		{"outer layer norms", trainOnly(TrainableSpec{Mode: TrainPatterns, Patterns: []string{"ln_*"}}), 4 * 768},
		{"alternatives", trainOnly(TrainableSpec{Mode: TrainPatterns, Patterns: []string{"{proj,embed.cls}"}}), 768*512 + 768},
		{"last block and everything outside", trainOnly(TrainableSpec{Mode: TrainAll, FromLayer: 11, ToLayer: 12}),
			87_849_216 - 11*7_087_872},
	}
	for _, tt := range tests {
		got, err := CountTrainable(tt.p, vitB32)
		if err != nil {
			t.Errorf("%s: %v", tt.name, err)
			continue
		}
		if got != tt.want {
			t.Errorf("%s: %d trainable, want %d", tt.name, got, tt.want)
		}
	}
}

func TestPerLayerSharing(t *testing.T) {
	// One per-layer parameter used at two sites of a block has one instance per
	// block, so LoRA written with a {q,v} glob shares A and B between q and v.
	p := Plan{Method: "lora-tied", Version: "1", Trainable: TrainableSpec{Mode: TrainNone},
		Params: []ParamSpec{perLayer("A", normal(0.02), 4, 768), perLayer("B", zeros, 768, 4)},
		Edits:  []Edit{{Site: "blocks.*.attn.{q,v}", Kind: WeightDelta, Expr: "32 * matmul(B, A)"}}}
	got, err := CountTrainable(p, vitB32)
	if err != nil {
		t.Fatal(err)
	}
	if want := int64(12 * 2 * 4 * 768); got != want {
		t.Errorf("%d trainable, want %d", got, want)
	}
	// Restricted to some blocks, only those get instances.
	p.Edits[0].Site = "blocks.1{0,1}.attn.{q,v}"
	got, err = CountTrainable(p, vitB32)
	if err != nil {
		t.Fatal(err)
	}
	if want := int64(2 * 2 * 4 * 768); got != want {
		t.Errorf("blocks 10 and 11: %d trainable, want %d", got, want)
	}
}

var small = StandardViT(ViTConfig{Name: "tiny", Layers: 2, Width: 8, Heads: 2, MLPDim: 16, Patch: 4, Image: 8, EmbedDim: 6})

func TestResolve(t *testing.T) {
	p := lora(8, 2)
	p.Params = append(p.Params, shared("gate", zeros, 8))
	p.Edits = append(p.Edits,
		Edit{Site: "blocks.1.attn.out", Kind: OutputBranch, Expr: "matmul(x, reshape(matmul(transpose(q.A), q.A), in, -1)) / out"},
		Edit{Site: "blocks.*.attn", Kind: ModuleAfter, Expr: "h * gate + 0 * dim"})
	p.Trainable = TrainableSpec{Mode: TrainPatterns, Patterns: []string{"proj"}}
	r, err := Resolve(p, small)
	if err != nil {
		t.Fatal(err)
	}
	var names []string
	for _, in := range r.Instances {
		names = append(names, fmt.Sprintf("%s@%d", in.Name, in.Layer))
	}
	wantNames := []string{"blocks.0.q.A@0", "blocks.1.q.A@1", "blocks.0.q.B@0", "blocks.1.q.B@1",
		"blocks.0.v.A@0", "blocks.1.v.A@1", "blocks.0.v.B@0", "blocks.1.v.B@1", "gate@-1"}
	if !reflect.DeepEqual(names, wantNames) {
		t.Errorf("instances %v, want %v", names, wantNames)
	}
	var edits []string
	for _, e := range r.Edits {
		edits = append(edits, fmt.Sprintf("%s %s %s %v", e.Site.Name, e.Kind, e.Expr, e.Bind))
	}
	wantEdits := []string{
		"blocks.0.attn.q weight_delta 128 / 2 * matmul(q.B, q.A) map[q.A:blocks.0.q.A q.B:blocks.0.q.B]",
		"blocks.1.attn.q weight_delta 128 / 2 * matmul(q.B, q.A) map[q.A:blocks.1.q.A q.B:blocks.1.q.B]",
		"blocks.0.attn.v weight_delta 128 / 2 * matmul(v.B, v.A) map[v.A:blocks.0.v.A v.B:blocks.0.v.B]",
		"blocks.1.attn.v weight_delta 128 / 2 * matmul(v.B, v.A) map[v.A:blocks.1.v.A v.B:blocks.1.v.B]",
		"blocks.1.attn.out output_branch matmul(x, reshape(matmul(transpose(q.A), q.A), 8, -1)) / 8 map[q.A:blocks.1.q.A]",
		"blocks.0.attn module_after h * gate + 0 * 8 map[gate:gate]",
		"blocks.1.attn module_after h * gate + 0 * 8 map[gate:gate]",
	}
	if !reflect.DeepEqual(edits, wantEdits) {
		t.Errorf("edits:\n%s\nwant:\n%s", strings.Join(edits, "\n"), strings.Join(wantEdits, "\n"))
	}
	if !reflect.DeepEqual(r.Trainable, []string{"proj"}) {
		t.Errorf("trainable %v", r.Trainable)
	}
}

func TestValidateProblems(t *testing.T) {
	tests := []struct {
		name   string
		modify func(p *Plan)
		want   []string
	}{
		{"no method", func(p *Plan) { p.Method = "" }, []string{`plugin "(unnamed)"`, "no method name"}},
		{"duplicate param", func(p *Plan) { p.Params = append(p.Params, p.Params[0]) },
			[]string{`param 4 ("q.A"): name already used by param 0`}},
		{"reserved name", func(p *Plan) { p.Params[0].Name = "x"; p.Edits[0].Expr = "x" },
			[]string{`param 0 ("x"): name is reserved`}},
		{"bad name", func(p *Plan) { p.Params[0].Name = "q A" }, []string{`param 0 ("q A"): name must be`}},
		{"block prefix", func(p *Plan) { p.Params[0].Name = "blocks.q.A" }, []string{"without its block prefix"}},
		{"scope", func(p *Plan) { p.Params[1].Scope = "global" }, []string{`param 1 ("q.B"): scope "global"`}},
		{"shape", func(p *Plan) { p.Params[1].Shape = []int{0, 8} }, []string{"non-positive dimension"}},
		{"huge shape", func(p *Plan) { p.Params[1].Shape = []int{1 << 20, 1 << 20} }, []string{"more than 2147483648 elements"}},
		{"normal std", func(p *Plan) { p.Params[0].Init = normal(0) }, []string{"std > 0"}},
		{"uniform bounds", func(p *Plan) { p.Params[0].Init = uniform(1, 1) }, []string{"low < high"}},
		{"kaiming rank", func(p *Plan) {
			p.Params = append(p.Params, perLayer("c", Init{Kind: KaimingUniform}, 8))
			p.Edits = append(p.Edits, Edit{Site: "blocks.*.attn.k", Kind: BiasDelta, Expr: "c"})
		}, []string{"rank 2 or more"}},
		{"nan", func(p *Plan) { p.Params[0].Init = normal(math.NaN()) }, []string{"non-finite"}},
		{"unknown init", func(p *Plan) { p.Params[0].Init = Init{Kind: "xavier"} }, []string{`unknown init kind "xavier"`}},
		{"stray init field", func(p *Plan) { p.Params[1].Init = Init{Kind: Zeros, Std: 1} }, []string{"zeros does not use std"}},
		{"site matches nothing", func(p *Plan) { p.Edits[0].Site = "blocks.*.attn.z" },
			[]string{`edit 0 (blocks.*.attn.z weight_delta): pattern matches no site of backbone "tiny"`}},
		{"bad site glob", func(p *Plan) { p.Edits[0].Site = "blocks.{0,1.attn.q" }, []string{"unclosed '{'"}},
		{"residual edit at linear site", func(p *Plan) { p.Edits[0].Kind = ModuleAfter },
			[]string{"matches 2 linear site(s) such as blocks.0.attn.q, but module_after edits apply to residual sites"}},
		{"linear edit at residual site", func(p *Plan) { p.Edits[0].Site = "blocks.*.attn" },
			[]string{"but weight_delta edits apply to linear sites"}},
		{"unknown edit kind", func(p *Plan) { p.Edits[0].Kind = "prefix" }, []string{`unknown kind "prefix"`}},
		{"syntax", func(p *Plan) { p.Edits[0].Expr = "matmul(q.B, q.A" }, []string{"column 16: expected ',' or ')'"}},
		{"site variable out of scope", func(p *Plan) { p.Edits[0].Expr = "matmul(q.B, q.A) + x" },
			[]string{"x is not available in a weight_delta edit, which sees W, b, in, out"}},
		{"unknown identifier", func(p *Plan) { p.Edits[0].Expr = "matmul(q.B, q.a)" },
			[]string{"q.a is not a parameter of the plan"}},
		{"wrong shape", func(p *Plan) { p.Edits[0].Expr = "matmul(q.A, q.B)" },
			[]string{"at site blocks.0.attn.q the expression has shape [2, 2]; a weight_delta must be [8, 8]"}},
		{"shape error", func(p *Plan) { p.Edits[0].Expr = "matmul(q.A, q.A)" },
			[]string{"column 1: matmul: inner dimensions differ"}},
		{"output branch shape", func(p *Plan) {
			p.Edits[0] = Edit{Site: "blocks.*.mlp.fc{1,2}", Kind: OutputBranch, Expr: "matmul(matmul(x, transpose(q.A)), transpose(q.B))"}
		}, []string{"at site blocks.0.mlp.fc1 the expression has shape [*, 8]; a output_branch must be [*, 16]",
			"at site blocks.0.mlp.fc2: column 8: matmul: inner dimensions differ"}},
		{"duplicate site edit", func(p *Plan) { p.Edits[1].Site = "blocks.*.attn.{q,v}" },
			[]string{"site blocks.0.attn.q already has a weight_delta edit from edit 0"}},
		{"unused param", func(p *Plan) { p.Params = append(p.Params, shared("spare", zeros, 3)) },
			[]string{`param 4 ("spare"): no edit uses it`}},
		{"backbone name", func(p *Plan) {
			p.Params = append(p.Params, shared("proj", zeros, 8))
			p.Edits = append(p.Edits, Edit{Site: "blocks.*.attn.k", Kind: BiasDelta, Expr: "proj"})
		}, []string{`param 4 ("proj"): name is a backbone parameter's`}},
		{"per-layer instance is a backbone name", func(p *Plan) {
			p.Params = append(p.Params, perLayer("ln1.weight", zeros, 8))
			p.Edits = append(p.Edits, Edit{Site: "blocks.*.attn.k", Kind: BiasDelta, Expr: "ln1.weight"})
		}, []string{"instance blocks.0.ln1.weight has a backbone parameter's name"}},
		{"instance collision", func(p *Plan) {
			p.Params = append(p.Params, perLayer("c", zeros, 8), shared("blocks.0.c", zeros, 8))
			p.Edits = append(p.Edits, Edit{Site: "blocks.*.attn.k", Kind: BiasDelta, Expr: "c + blocks.0.c"})
		}, []string{`instance blocks.0.c has the same name as an instance of param 4 ("c")`}},
		{"no trainable mode", func(p *Plan) { p.Trainable.Mode = "" }, []string{"trainable: no mode"}},
		{"pattern misses", func(p *Plan) { p.Trainable = TrainableSpec{Mode: TrainPatterns, Patterns: []string{"head.*"}} },
			[]string{`trainable: pattern 0 ("head.*") matches no parameter of backbone "tiny"`}},
		{"patterns ignored", func(p *Plan) { p.Trainable = TrainableSpec{Mode: TrainAll, Patterns: []string{"proj"}} },
			[]string{`mode "all" takes no patterns`}},
		{"layer range", func(p *Plan) { p.Trainable = TrainableSpec{Mode: TrainAll, FromLayer: 1, ToLayer: 5} },
			[]string{"layer range [1, 5) is not within [0, 2)"}},
		{"pattern outside range", func(p *Plan) {
			p.Trainable = TrainableSpec{Mode: TrainPatterns, Patterns: []string{"blocks.0.*"}, FromLayer: 1, ToLayer: 2}
		}, []string{"matches no parameter"}},
		{"long notes", func(p *Plan) { p.Notes = strings.Repeat("n", MaxNotesLen+1) }, []string{"notes are"}},
	}
	for _, tt := range tests {
		p := lora(8, 2)
		tt.modify(&p)
		err := Validate(p, small)
		if err == nil {
			t.Errorf("%s: valid, want errors %q", tt.name, tt.want)
			continue
		}
		var ve *ValidationError
		if !errors.As(err, &ve) {
			t.Errorf("%s: error %T, want *ValidationError", tt.name, err)
			continue
		}
		for _, w := range tt.want {
			if !strings.Contains(err.Error(), w) {
				t.Errorf("%s: error\n%v\nlacks %q", tt.name, err, w)
			}
		}
	}
}

func TestValidateReportsAll(t *testing.T) {
	p := lora(8, 2)
	p.Params[0].Init = normal(-1)
	p.Edits[1].Expr = "matmul(v.B"
	p.Trainable.Mode = "some"
	err := Validate(p, small)
	var ve *ValidationError
	if !errors.As(err, &ve) {
		t.Fatalf("error %v, want *ValidationError", err)
	}
	if len(ve.Problems) != 3 || ve.Method != "lora" {
		t.Fatalf("problems %q of %q, want 3 of lora", ve.Problems, ve.Method)
	}
	if !strings.HasPrefix(err.Error(), `plugin "lora": invalid plan (3 problems):`) {
		t.Errorf("message %q", err)
	}
	if err := Validate(lora(8, 2), small); err != nil {
		t.Errorf("valid plan: %v", err)
	}
}

func TestValidateBackbone(t *testing.T) {
	bb := StandardViT(ViTConfig{Name: "tiny", Layers: 2, Width: 8, MLPDim: 16, Patch: 4, Image: 8})
	bb.Sites = append(bb.Sites, bb.Sites[0], Site{Name: "odd", Kind: "conv", Layer: 7})
	bb.Params = append(bb.Params, ParamInfo{Name: "neg", Shape: []int{-1}})
	err := Validate(trainOnly(TrainableSpec{Mode: TrainAll}), bb)
	for _, w := range []string{`site "blocks.0.attn.q" listed twice`, `site "odd" has unknown kind "conv"`,
		`site "odd" is in layer 7 of 2`, `parameter "neg": shape [-1] has a non-positive dimension`} {
		if err == nil || !strings.Contains(err.Error(), w) {
			t.Errorf("error %v lacks %q", err, w)
		}
	}
}

func TestValidateLimits(t *testing.T) {
	p := trainOnly(TrainableSpec{Mode: TrainNone})
	p.Edits = make([]Edit, MaxEdits+1)
	if err := Validate(p, small); err == nil || !strings.Contains(err.Error(), "limits are") {
		t.Errorf("too many edits: %v", err)
	}
}

func TestGlob(t *testing.T) {
	tests := []struct {
		pattern, name string
		want          bool
	}{
		{"blocks.*.attn.q", "blocks.3.attn.q", true},
		{"blocks.*.attn.q", "blocks.3.attn.qq", false},
		{"blocks.*.attn.q", "blocks.3.attn.k", false},
		{"blocks.*.attn.*.bias", "blocks.11.attn.out.bias", true},
		{"*.ln*", "blocks.3.ln1.weight", true},
		{"*.ln*", "ln_pre.weight", false},
		{"blocks.?.mlp", "blocks.7.mlp", true},
		{"blocks.?.mlp", "blocks.10.mlp", false},
		{"blocks.*.attn.{q,v}", "blocks.0.attn.v", true},
		{"blocks.*.attn.{q,v}", "blocks.0.attn.k", false},
		{"blocks.{0,1,2}.*", "blocks.2.mlp", true},
		{"a,b", "a,b", true},
		{"(a|b)+", "(a|b)+", true},
		{"(a|b)+", "a", false},
		{"blocks.1", "blocks.10", false},
	}
	for _, tt := range tests {
		got, err := MatchGlob(tt.pattern, tt.name)
		if err != nil || got != tt.want {
			t.Errorf("MatchGlob(%q, %q) = %v, %v; want %v", tt.pattern, tt.name, got, err, tt.want)
		}
	}
	for _, bad := range []string{"", "{a,{b}}", "a}", "{a", "a\x00", strings.Repeat("a", MaxPatternLen+1)} {
		if _, err := CompileGlob(bad); err == nil {
			t.Errorf("CompileGlob(%q) succeeded", bad)
		}
	}
}

func TestFans(t *testing.T) {
	// PyTorch's _calculate_fan_in_and_fan_out.
	tests := []struct {
		shape       []int
		fanIn, fOut int
	}{
		{[]int{64, 768}, 768, 64},
		{[]int{4, 16, 1}, 16, 4},
		{[]int{768, 3, 32, 32}, 3072, 786432},
		{[]int{5}, 0, 0},
	}
	for _, tt := range tests {
		in, out := Fans(tt.shape)
		if in != tt.fanIn || out != tt.fOut {
			t.Errorf("Fans(%v) = %d, %d; want %d, %d", tt.shape, in, out, tt.fanIn, tt.fOut)
		}
	}
}

// TestBudget: plans whose parameters each pass the shape limit but together (or
// repeated per layer) need tens of gigabytes were allocated, an out-of-memory crash;
// the budget refuses them before allocation, naming it and how to raise it.
func TestBudget(t *testing.T) {
	// One shared parameter of almost 2³¹ elements (8 GiB).
	huge := Plan{Method: "huge", Version: "1", Trainable: TrainableSpec{Mode: TrainNone},
		Params: []ParamSpec{shared("big", zeros, 768, 2796202)},
		Edits:  []Edit{{Site: "blocks.0.attn.q", Kind: BiasDelta, Expr: "sum(big, 1)"}}}
	// A 2³⁰-element parameter per layer: 12 of them.
	perBlock := Plan{Method: "per-block", Version: "1", Trainable: TrainableSpec{Mode: TrainNone},
		Params: []ParamSpec{perLayer("big", zeros, 768, 1<<20)},
		Edits:  []Edit{{Site: "blocks.*.attn.q", Kind: BiasDelta, Expr: "sum(big, 1)"}}}
	for _, p := range []Plan{huge, perBlock} {
		err := Validate(p, vitB32)
		if err == nil || !strings.Contains(err.Error(), "more than the budget of 268435456") ||
			!strings.Contains(err.Error(), "--plan-max-params") || !strings.Contains(err.Error(), "MiB") {
			t.Errorf("%s: %v; want the parameter and memory budgets named", p.Method, err)
		}
		// Raised, the same plan resolves (nothing is allocated by resolving).
		bb := vitB32
		bb.Budget = Budget{Params: 1 << 34, Bytes: 1 << 40}
		if err := Validate(p, bb); err != nil {
			t.Errorf("%s within a raised budget: %v", p.Method, err)
		}
	}
	// Memory alone: trainable backbone weights need gradient and moments.
	bb := vitB32
	bb.Budget = Budget{Bytes: 100 << 20}
	err := Validate(trainOnly(TrainableSpec{Mode: TrainAll}), bb)
	if err == nil || !strings.Contains(err.Error(), "budget of 100 MiB") {
		t.Errorf("full fine-tuning within 100 MiB: %v", err)
	}
	if err := Validate(lora(768, 8), vitB32); err != nil {
		t.Errorf("LoRA within the default budget: %v", err)
	}
}
