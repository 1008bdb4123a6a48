package expr

import (
	"reflect"
	"strings"
	"testing"
)

// FuzzParse feeds the expression language (plans come from plugins, which may be
// anyone's binaries) with arbitrary text: Parse must return a tree or an error;
// a tree reprints to text that parses to the same tree; shape inference and, for
// small results, evaluation agree on the shape, and none of them panics.
func FuzzParse(f *testing.F) {
	for _, s := range []string{
		"a+b*c", "-(a+b)", "32 * matmul(lora.B, lora.A)",
		"h + linear(relu(linear(layer_norm(h, g, b), w1, b1)), w2, b2)",
		"160*kron_sum(matmul(q.slow.a,q.slow.b),matmul(q.fast.u,q.fast.v))",
		"sum(x, -1) / (in * 2)", "0.1 + 1e+21", "reshape(a, 3, 2)", "transpose(outer(b, b))",
		"kron(a, a)", "layer_norm(a, c, c, 1e-5)", "((((((a))))))", "1e999", "a..b", "f(",
	} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, src string) {
		e, err := Parse(src)
		if err != nil {
			return
		}
		printed := e.String()
		again, err := Parse(printed)
		if err != nil {
			t.Fatalf("%q printed as %q, which does not parse: %v", src, printed, err)
		}
		if !reflect.DeepEqual(stripCols(e), stripCols(again)) {
			t.Fatalf("%q: tree changed on reprint as %q", src, printed)
		}
		consts := map[string]float64{"in": 3, "out": 2}
		vars := map[string]Shape{}
		env := map[string]tn{}
		for i, id := range Idents(e) {
			if _, isConst := consts[id]; isConst {
				continue
			}
			shape := [][]int{{2, 3}, {3}, {3, 2}}[i%3]
			vars[id] = shape
			env[id] = tn{shape: shape, data: make([]float64, size(shape))}
		}
		want, err := Infer(e, vars, consts)
		if err != nil || strings.Count(src, "kron")+strings.Count(src, "outer") > 3 {
			return
		}
		e = Subst(e, consts)
		got, err := Eval(e, env, Ops[tn](&dense{}))
		if err != nil {
			t.Fatalf("%q: inferred %v but evaluation failed: %v", src, want, err)
		}
		if !Shape(got.shape).Equal(want) {
			t.Fatalf("%q: inferred %v, evaluated %v", src, want, got.shape)
		}
	})
}
