package expr

import (
	"reflect"
	"strconv"
	"strings"
	"testing"
)

// full prints e with every operation parenthesised, exposing the tree's structure.
func full(e Expr) string {
	switch n := e.(type) {
	case *Number:
		return strconv.FormatFloat(n.Value, 'g', -1, 64)
	case *Ident:
		return n.Name
	case *Unary:
		return "(-" + full(n.X) + ")"
	case *Binary:
		return "(" + full(n.X) + " " + string(n.Op) + " " + full(n.Y) + ")"
	case *Call:
		args := make([]string, len(n.Args))
		for i, a := range n.Args {
			args[i] = full(a)
		}
		return n.Func + "(" + strings.Join(args, ", ") + ")"
	}
	return "?"
}

// stripCols zeroes positions so trees parsed from different spellings compare equal.
func stripCols(e Expr) Expr {
	switch n := e.(type) {
	case *Number:
		return &Number{Value: n.Value}
	case *Ident:
		return &Ident{Name: n.Name}
	case *Unary:
		return &Unary{Op: n.Op, X: stripCols(n.X)}
	case *Binary:
		return &Binary{Op: n.Op, X: stripCols(n.X), Y: stripCols(n.Y)}
	case *Call:
		c := &Call{Func: n.Func}
		for _, a := range n.Args {
			c.Args = append(c.Args, stripCols(a))
		}
		return c
	}
	return nil
}

func TestParsePrecedence(t *testing.T) {
	tests := []struct{ src, tree string }{
		{"a + b * c", "(a + (b * c))"},
		{"a * b + c", "((a * b) + c)"},
		{"a - b - c", "((a - b) - c)"},
		{"a - (b - c)", "(a - (b - c))"},
		{"a / b / c", "((a / b) / c)"},
		{"a / (b * c)", "(a / (b * c))"},
		{"-a * b", "((-a) * b)"},
		{"-(a * b)", "(-(a * b))"},
		{"a * -b", "(a * (-b))"},
		{"a - -b", "(a - (-b))"},
		{"--a", "(-(-a))"},
		{"2 * 3 + 4 / 5 - 6", "(((2 * 3) + (4 / 5)) - 6)"},
		{"q.slow.a", "q.slow.a"},
		{"blocks.3.x_1", "blocks.3.x_1"},
		{"1.5e-3 * .5 + 2.", "((0.0015 * 0.5) + 2)"},
		{"matmul(a, b + c) * s", "(matmul(a, (b + c)) * s)"},
		{"kron_sum(matmul(a, b), matmul(u, v))", "kron_sum(matmul(a, b), matmul(u, v))"},
		{"reshape(x, in / 4, -1)", "reshape(x, (in / 4), (-1))"},
		{"layer_norm(h, g, b, 1e-6)", "layer_norm(h, g, b, 1e-06)"},
		{" ( ( a ) ) ", "a"},
	}
	for _, tt := range tests {
		e, err := Parse(tt.src)
		if err != nil {
			t.Errorf("Parse(%q): %v", tt.src, err)
			continue
		}
		if got := full(e); got != tt.tree {
			t.Errorf("Parse(%q) = %s, want %s", tt.src, got, tt.tree)
		}
	}
}

func TestRoundTrip(t *testing.T) {
	tests := []struct{ src, printed string }{
		{"a+b*c", "a + b * c"},
		{"(a+b)*c", "(a + b) * c"},
		{"a-(b-c)", "a - (b - c)"},
		{"a-(b+c)", "a - (b + c)"},
		{"(a-b)-c", "a - b - c"},
		{"a/(b/c)", "a / (b / c)"},
		{"a*(b*c)", "a * (b * c)"},
		{"-(a+b)", "-(a + b)"},
		{"-(-a)", "--a"},
		{"(-a)*b", "-a * b"},
		{"-(a*b)", "-(a * b)"},
		{"a*-b", "a * -b"},
		{"32*matmul(lora.B,lora.A)", "32 * matmul(lora.B, lora.A)"},
		{"h + linear(relu(linear(layer_norm(h, g, b), w1, b1)), w2, b2)",
			"h + linear(relu(linear(layer_norm(h, g, b), w1, b1)), w2, b2)"},
		{"160*kron_sum(matmul(q.slow.a,q.slow.b),matmul(q.fast.u,q.fast.v))",
			"160 * kron_sum(matmul(q.slow.a, q.slow.b), matmul(q.fast.u, q.fast.v))"},
		{"sum(x, -1) / (in * 2)", "sum(x, -1) / (in * 2)"},
		{"0.1 + 1e+21", "0.1 + 1e+21"},
	}
	for _, tt := range tests {
		e, err := Parse(tt.src)
		if err != nil {
			t.Errorf("Parse(%q): %v", tt.src, err)
			continue
		}
		if got := e.String(); got != tt.printed {
			t.Errorf("Parse(%q).String() = %q, want %q", tt.src, got, tt.printed)
		}
		again, err := Parse(e.String())
		if err != nil {
			t.Errorf("reparse %q: %v", e.String(), err)
			continue
		}
		if !reflect.DeepEqual(stripCols(e), stripCols(again)) {
			t.Errorf("%q: tree changed on reprint: %s vs %s", tt.src, full(e), full(again))
		}
	}
}

func TestPrintBuiltTrees(t *testing.T) {
	// Trees made by hand or by Subst may hold negative literals; they must print so
	// that the result means the same.
	a, b := &Ident{Name: "a"}, &Ident{Name: "b"}
	tests := []struct {
		e    Expr
		want string
	}{
		{&Binary{Op: '-', X: a, Y: &Number{Value: -2}}, "a - -2"},
		{&Binary{Op: '*', X: &Number{Value: -2}, Y: b}, "-2 * b"},
		{&Unary{Op: '-', X: &Number{Value: -2}}, "--2"},
		{&Binary{Op: '-', X: a, Y: &Binary{Op: '+', X: a, Y: b}}, "a - (a + b)"},
	}
	for _, tt := range tests {
		if got := tt.e.String(); got != tt.want {
			t.Errorf("%s printed %q, want %q", full(tt.e), got, tt.want)
		}
	}
}

func TestParseErrors(t *testing.T) {
	tests := []struct {
		src  string
		col  int
		want string
	}{
		{"", 1, "empty expression"},
		{"a +", 4, "expected a number"},
		{"a + * b", 5, "expected a number"},
		{"(a + b", 7, "expected ')' to close '(' at column 1"},
		{"a + b)", 6, "unexpected \")\" after a complete expression"},
		{"a b", 3, "unexpected identifier b"},
		{"foo(x)", 1, "unknown function foo"},
		{"x + matmul(a)", 5, "matmul takes 2 arguments, got 1"},
		{"layer_norm(h)", 1, "layer_norm takes 3 to 4 arguments, got 1"},
		{"relu(x,)", 8, "expected a number"},
		{"relu(x y)", 8, "expected ',' or ')'"},
		{"q.slow. + 1", 7, "ends with '.'"},
		{"a $ b", 3, "unexpected character \"$\""},
		{"1e", 1, "exponent has no digits"},
		{"2x", 1, "malformed number"},
		{"1.5.3", 1, "malformed number"},
		{"1e999", 1, "out of range"},
		{"a + é", 5, "non-ASCII"},
		{"x * .", 5, "unexpected '.'"},
	}
	for _, tt := range tests {
		_, err := Parse(tt.src)
		if err == nil {
			t.Errorf("Parse(%q) succeeded, want an error", tt.src)
			continue
		}
		pe, ok := err.(*Error)
		if !ok {
			t.Errorf("Parse(%q) error %T, want *Error", tt.src, err)
			continue
		}
		if pe.Col != tt.col || !strings.Contains(pe.Msg, tt.want) {
			t.Errorf("Parse(%q) = %v, want column %d and %q", tt.src, err, tt.col, tt.want)
		}
	}
}

func TestParseLimits(t *testing.T) {
	deep := strings.Repeat("(", MaxDepth+5) + "a" + strings.Repeat(")", MaxDepth+5)
	if _, err := Parse(deep); err == nil || !strings.Contains(err.Error(), "nests deeper") {
		t.Errorf("deep nesting: %v", err)
	}
	neg := strings.Repeat("-", MaxDepth+5) + "a"
	if _, err := Parse(neg); err == nil || !strings.Contains(err.Error(), "nests deeper") {
		t.Errorf("deep negation: %v", err)
	}
	long := "a" + strings.Repeat(" + a", MaxLen)
	if _, err := Parse(long); err == nil || !strings.Contains(err.Error(), "limit") {
		t.Errorf("long source: %v", err)
	}
	// Long flat sums are fine: they are loops, not recursion.
	flat := "a" + strings.Repeat("+a", 1000)
	if _, err := Parse(flat); err != nil {
		t.Errorf("flat sum: %v", err)
	}
}

func TestIdentsAndSubst(t *testing.T) {
	e := MustParse("reshape(q.u * in, out, in) + q.u - b")
	if got, want := Idents(e), []string{"b", "in", "out", "q.u"}; !reflect.DeepEqual(got, want) {
		t.Errorf("Idents = %v, want %v", got, want)
	}
	s := Subst(e, map[string]float64{"in": 4, "out": 6})
	if got, want := s.String(), "reshape(q.u * 4, 6, 4) + q.u - b"; got != want {
		t.Errorf("Subst = %q, want %q", got, want)
	}
	if e.String() != "reshape(q.u * in, out, in) + q.u - b" {
		t.Errorf("Subst changed its input: %s", e)
	}
}
