package expr

import (
	"strings"
	"testing"
)

func TestInfer(t *testing.T) {
	vars := map[string]Shape{
		"x":      {Any, 48},
		"h":      {Any, 48},
		"W":      {96, 48},
		"b":      {96},
		"A":      {4, 48},
		"B":      {96, 4},
		"sa":     {8, 4, 1},
		"sc":     {7, 4, 1},
		"r":      {1, 48},
		"sb":     {8, 1, 6},
		"fu":     {8, 12, 1},
		"fv":     {8, 1, 8},
		"S":      {4, 4, 4},
		"vec":    {5},
		"vec2":   {7},
		"st":     {3, 5},
		"st2":    {3, 7},
		"g":      {48},
		"wd":     {16, 48},
		"bd":     {16},
		"wu":     {48, 16},
		"bu":     {48},
		"big":    {1 << 15, 1 << 15},
		"scalar": {},
	}
	consts := map[string]float64{"in": 48, "out": 96, "dim": 48}
	tests := []struct {
		src  string
		want Shape
		err  string // substring of the error; empty for success
		col  int
	}{
		{src: "2 * matmul(B, A)", want: Shape{96, 48}},
		{src: "W + matmul(B, A) / 4", want: Shape{96, 48}},
		{src: "kron_sum(matmul(sa, sb), matmul(fu, fv))", want: Shape{48, 48}},
		{src: "kron(matmul(sa, sb), matmul(fu, fv))", want: Shape{8, 48, 48}},
		{src: "kron(A, B)", want: Shape{384, 192}},
		{src: "matmul(matmul(x, transpose(A)), transpose(B))", want: Shape{Any, 96}},
		{src: "linear(x, W, b)", want: Shape{Any, 96}},
		{src: "h + linear(relu(linear(layer_norm(h, g, g), wd, bd)), wu, bu)", want: Shape{Any, 48}},
		{src: "layer_norm(h, g, g, 1e-6)", want: Shape{Any, 48}},
		{src: "sum(x, -1)", want: Shape{Any}},
		{src: "sum(sa, 0)", want: Shape{4, 1}},
		{src: "sum(sa, 2)", want: Shape{8, 4}},
		{src: "reshape(W, out / 2, in * 2)", want: Shape{48, 96}},
		{src: "reshape(W, -1, 2, in)", want: Shape{48, 2, 48}},
		{src: "outer(vec, vec2)", want: Shape{5, 7}},
		{src: "outer(st, st2)", want: Shape{3, 5, 7}},
		{src: "matmul(sa, r)", want: Shape{8, 4, 48}},
		{src: "matmul(A, sa)", err: "inner dimensions differ", col: 1},
		{src: "matmul(B, sa)", want: Shape{8, 96, 1}},
		{src: "x * in + b * 0", err: "do not broadcast", col: 8},
		{src: "x * g + bu", want: Shape{Any, 48}},
		{src: "gelu(b) - quick_gelu(b) * silu(b) / tanh(b) + sigmoid(b)", want: Shape{96}},
		{src: "-scalar", want: Shape{}},
		{src: "in + out", want: Shape{}},
		{src: "in", want: Shape{}},

		{src: "matmul(A, B)", err: "inner dimensions differ", col: 1},
		{src: "matmul(b, b)", err: "2-D or 3-D"},
		{src: "matmul(sa, fu)", err: "inner dimensions differ"},
		{src: "matmul(sc, sb)", err: "batch dimensions differ"},
		{src: "matmul(W, x)", err: "right operand"},
		{src: "matmul(x, sa)", err: "activation operand"},
		{src: "kron_sum(A, B)", err: "stacks"},
		{src: "kron_sum(sa, S)", err: "stack sizes differ"},
		{src: "kron(x, A)", err: "activations"},
		{src: "kron(A, sa)", err: "2-D or both 3-D"},
		{src: "kron(big, big)", err: "more than"},
		{src: "outer(vec, st)", err: "vectors"},
		{src: "sum(x, 0)", err: "batch dimension"},
		{src: "sum(W, 2)", err: "out of range"},
		{src: "sum(W, 0.5)", err: "not an integer"},
		{src: "sum(W, y)", err: "y is not a constant", col: 8},
		{src: "sum(W, relu(b))", err: "not a constant"},
		{src: "transpose(x)", err: "batch dimension"},
		{src: "transpose(b)", err: "at least 2 axes"},
		{src: "reshape(x, 2, in)", err: "batch dimension"},
		{src: "reshape(W, 7, -1)", err: "cannot reshape"},
		{src: "reshape(W, 2, 2)", err: "cannot reshape"},
		{src: "reshape(W, -1, -1)", err: "more than one"},
		{src: "reshape(W, 0, 4)", err: "must be positive"},
		{src: "reshape(W, in / 0, 2)", err: "division by zero"},
		// Accepted by inference, refused by evaluation at compile time (found by FuzzParse).
		{src: "W * (0 / 0)", err: "division by zero"},
		{src: "W + 1e300 * 1e300 * in", err: "constant overflows"},
		{src: "layer_norm(h, b, g)", err: "gamma"},
		{src: "layer_norm(h, g, g, 0)", err: "eps"},
		{src: "linear(x, A, bd)", err: "bias"},
		{src: "linear(x, B, b)", err: "in dimension"},
		{src: "linear(A, x, b)", err: "weight"},
		{src: "W + nope", err: "unknown identifier nope", col: 5},
	}
	for _, tt := range tests {
		e, err := Parse(tt.src)
		if err != nil {
			t.Errorf("Parse(%q): %v", tt.src, err)
			continue
		}
		got, err := Infer(e, vars, consts)
		if tt.err == "" {
			if err != nil {
				t.Errorf("Infer(%q): %v", tt.src, err)
			} else if !got.Equal(tt.want) {
				t.Errorf("Infer(%q) = %v, want %v", tt.src, got, tt.want)
			}
			continue
		}
		if err == nil {
			t.Errorf("Infer(%q) = %v, want an error with %q", tt.src, got, tt.err)
			continue
		}
		if !strings.Contains(err.Error(), tt.err) {
			t.Errorf("Infer(%q) error %q, want %q", tt.src, err, tt.err)
		}
		if tt.col != 0 && err.(*Error).Col != tt.col {
			t.Errorf("Infer(%q) error at column %d, want %d", tt.src, err.(*Error).Col, tt.col)
		}
	}
}

func TestInferRejectsBadVariables(t *testing.T) {
	for _, s := range []Shape{{0, 3}, {-2}, {1 << 20, 1 << 20}} {
		_, err := Infer(MustParse("v"), map[string]Shape{"v": s}, nil)
		if err == nil || !strings.Contains(err.Error(), "variable v") {
			t.Errorf("shape %v: err = %v", s, err)
		}
	}
}

// TestInferNamesFirstBadVariable: with several bad variables, the error names the
// first by name on every call (it once followed map order, so plan errors changed
// from run to run).
func TestInferNamesFirstBadVariable(t *testing.T) {
	vars := map[string]Shape{}
	for _, n := range []string{"e", "b", "d", "a", "c"} {
		vars[n] = Shape{0}
	}
	for range 20 {
		_, err := Infer(MustParse("a + b + c + d + e"), vars, nil)
		if err == nil || !strings.Contains(err.Error(), "variable a:") {
			t.Fatalf("err = %v, want one about variable a", err)
		}
	}
}

func TestShapeString(t *testing.T) {
	if got := (Shape{Any, 3}).String(); got != "[*, 3]" {
		t.Errorf("got %q", got)
	}
	if got := (Shape{}).String(); got != "[]" {
		t.Errorf("got %q", got)
	}
}
