package expr

import (
	goparser "go/parser"
	gotoken "go/token"
	"math"
	"math/rand/v2"
	"reflect"
	"strconv"
	"strings"
	"testing"
)

// builtinCall is one random valid call of a builtin: its tensor arguments, its
// constant ones, and whether the first argument's leading axis may be a site's
// rows (Any) when the shape is inferred.
type builtinCall struct {
	args   []tn
	consts []float64
	rows   bool
}

// builtinCase makes random valid calls of a builtin and computes what the call must
// return with the reference Ops (dense, whose methods eval_test.go checks against
// gonum and closed forms), called directly and with the constant arguments (a
// negative axis, a -1 dimension, the default eps) resolved here by hand.
type builtinCase struct {
	gen func(r *rand.Rand) builtinCall
	ref func(d *dense, x []tn, c []float64) (tn, error)
}

func dim(r *rand.Rand) int { return 1 + r.IntN(4) }

func randShape(r *rand.Rand, rank int) []int {
	s := make([]int, rank)
	for i := range s {
		s[i] = dim(r)
	}
	return s
}

func two(f func(d *dense, a, b tn) (tn, error)) func(*dense, []tn, []float64) (tn, error) {
	return func(d *dense, x []tn, _ []float64) (tn, error) { return f(d, x[0], x[1]) }
}

func one(f func(d *dense, x tn) (tn, error)) func(*dense, []tn, []float64) (tn, error) {
	return func(d *dense, x []tn, _ []float64) (tn, error) { return f(d, x[0]) }
}

// elementwiseCase is the case of a function applied to each element.
func elementwiseCase(f func(d *dense, x tn) (tn, error)) builtinCase {
	return builtinCase{
		gen: func(r *rand.Rand) builtinCall {
			rank := r.IntN(4)
			return builtinCall{args: []tn{randTn(r, randShape(r, rank)...)}, rows: rank >= 1}
		},
		ref: one(f),
	}
}

var builtinCases = map[string]builtinCase{
	"matmul": {
		gen: func(r *rand.Rand) builtinCall {
			m, k, n, b := dim(r), dim(r), dim(r), dim(r)
			switch r.IntN(4) {
			case 0:
				return builtinCall{args: []tn{randTn(r, m, k), randTn(r, k, n)}, rows: true}
			case 1:
				return builtinCall{args: []tn{randTn(r, b, m, k), randTn(r, b, k, n)}}
			case 2:
				return builtinCall{args: []tn{randTn(r, b, m, k), randTn(r, k, n)}}
			}
			return builtinCall{args: []tn{randTn(r, m, k), randTn(r, b, k, n)}}
		},
		ref: two((*dense).MatMul),
	},
	"kron": {
		gen: func(r *rand.Rand) builtinCall {
			if r.IntN(2) == 0 {
				return builtinCall{args: []tn{randTn(r, dim(r), dim(r)), randTn(r, dim(r), dim(r))}}
			}
			n := dim(r)
			return builtinCall{args: []tn{randTn(r, n, dim(r), dim(r)), randTn(r, n, dim(r), dim(r))}}
		},
		ref: two((*dense).Kron),
	},
	"kron_sum": {
		gen: func(r *rand.Rand) builtinCall {
			n := dim(r)
			return builtinCall{args: []tn{randTn(r, n, dim(r), dim(r)), randTn(r, n, dim(r), dim(r))}}
		},
		ref: two((*dense).KronSum),
	},
	"outer": {
		gen: func(r *rand.Rand) builtinCall {
			if r.IntN(2) == 0 {
				return builtinCall{args: []tn{randTn(r, dim(r)), randTn(r, dim(r))}}
			}
			n := dim(r)
			return builtinCall{args: []tn{randTn(r, n, dim(r)), randTn(r, n, dim(r))}}
		},
		ref: two((*dense).Outer),
	},
	"sum": {
		gen: func(r *rand.Rand) builtinCall {
			rank := 1 + r.IntN(4)
			axis := r.IntN(2*rank) - rank
			return builtinCall{args: []tn{randTn(r, randShape(r, rank)...)}, consts: []float64{float64(axis)},
				rows: rank >= 2 && axis != 0 && axis != -rank}
		},
		ref: func(d *dense, x []tn, c []float64) (tn, error) {
			axis := int(c[0])
			if axis < 0 {
				axis += len(x[0].shape)
			}
			return d.Sum(x[0], axis)
		},
	},
	"transpose": {
		gen: func(r *rand.Rand) builtinCall {
			rank := 2 + r.IntN(3)
			return builtinCall{args: []tn{randTn(r, randShape(r, rank)...)}, rows: rank >= 3}
		},
		ref: one((*dense).Transpose),
	},
	"reshape": {
		gen: func(r *rand.Rand) builtinCall {
			// The target: the input's dimensions reversed, two neighbours merged, a 1
			// inserted, and one dimension left to -1, each at random.
			x := randTn(r, randShape(r, 1+r.IntN(3))...)
			var dims []float64
			for i := len(x.shape) - 1; i >= 0; i-- {
				dims = append(dims, float64(x.shape[i]))
			}
			if len(dims) >= 2 && r.IntN(2) == 0 {
				dims = append([]float64{dims[0] * dims[1]}, dims[2:]...)
			}
			if r.IntN(3) == 0 {
				dims = append(dims, 1)
			}
			if r.IntN(2) == 0 {
				dims[r.IntN(len(dims))] = -1
			}
			return builtinCall{args: []tn{x}, consts: dims}
		},
		ref: func(d *dense, x []tn, c []float64) (tn, error) {
			dims := make([]int, len(c))
			known, free := 1, -1
			for i, v := range c {
				dims[i] = int(v)
				if v == -1 {
					free = i
				} else {
					known *= int(v)
				}
			}
			if free >= 0 {
				dims[free] = len(x[0].data) / known
			}
			return d.Reshape(x[0], dims)
		},
	},
	"relu":       elementwiseCase((*dense).ReLU),
	"gelu":       elementwiseCase((*dense).GELU),
	"quick_gelu": elementwiseCase((*dense).QuickGELU),
	"silu":       elementwiseCase((*dense).SiLU),
	"tanh":       elementwiseCase((*dense).Tanh),
	"sigmoid":    elementwiseCase((*dense).Sigmoid),
	"layer_norm": {
		gen: func(r *rand.Rand) builtinCall {
			rank := 1 + r.IntN(3)
			s := randShape(r, rank)
			d := s[rank-1]
			c := builtinCall{args: []tn{randTn(r, s...), randTn(r, d), randTn(r, d)}, rows: rank >= 2}
			if r.IntN(2) == 0 {
				c.consts = []float64{math.Pow(10, -3-4*r.Float64())}
			}
			return c
		},
		ref: func(d *dense, x []tn, c []float64) (tn, error) {
			eps := 1e-5
			if len(c) > 0 {
				eps = c[0]
			}
			return d.LayerNorm(x[0], x[1], x[2], eps)
		},
	},
	"linear": {
		gen: func(r *rand.Rand) builtinCall {
			rank := 1 + r.IntN(3)
			s := randShape(r, rank)
			in, out := s[rank-1], dim(r)
			return builtinCall{args: []tn{randTn(r, s...), randTn(r, out, in), randTn(r, out)}, rows: rank >= 2}
		},
		ref: func(d *dense, x []tn, _ []float64) (tn, error) { return d.Linear(x[0], x[1], x[2]) },
	},
}

// TestBuiltinTable walks the table of builtins: Parse accepts exactly each one's
// arity; each names a distinct method of Ops; and for random valid calls Infer and
// Eval agree on the shape, Eval agrees with the reference, and a leading axis of
// activation rows stays in place through Infer.
func TestBuiltinTable(t *testing.T) {
	opsType := reflect.TypeFor[Ops[tn]]()
	ops := map[string]string{}
	for i, b := range builtins[tn]() {
		t.Run(b.name, func(t *testing.T) {
			for n := 0; n <= b.max+1; n++ {
				args := make([]string, n)
				for j := range args {
					args[j] = "a" + strconv.Itoa(j)
				}
				src := b.name + "(" + strings.Join(args, ", ") + ")"
				_, err := Parse(src)
				if ok := n >= b.min && n <= b.max; ok && err != nil {
					t.Errorf("Parse(%q): %v", src, err)
				} else if !ok && (err == nil || !strings.Contains(err.Error(), "takes")) {
					t.Errorf("Parse(%q) error %v, want one about the argument count", src, err)
				}
			}
			if _, ok := opsType.MethodByName(b.op); !ok {
				t.Errorf("op %s is not a method of Ops", b.op)
			}
			if prev, dup := ops[b.op]; dup {
				t.Errorf("op %s is also %s's", b.op, prev)
			}
			ops[b.op] = b.name

			c, ok := builtinCases[b.name]
			if !ok {
				t.Fatalf("no case in builtinCases: add a generator of valid calls and a reference")
			}
			r := rand.New(rand.NewPCG(uint64(i), 12))
			for range 40 {
				call := c.gen(r)
				var args []string
				vars := map[string]Shape{}
				env := map[string]tn{}
				for j, x := range call.args {
					name := "t" + strconv.Itoa(j)
					args = append(args, name)
					vars[name] = x.shape
					env[name] = x
				}
				for _, v := range call.consts {
					args = append(args, strconv.FormatFloat(v, 'g', -1, 64))
				}
				src := b.name + "(" + strings.Join(args, ", ") + ")"
				e := MustParse(src)
				inferred, err := Infer(e, vars, nil)
				if err != nil {
					t.Fatalf("Infer(%q) with %v: %v", src, vars, err)
				}
				got, err := Eval(e, env, Ops[tn](&dense{}))
				if err != nil {
					t.Fatalf("Eval(%q) with %v: %v", src, vars, err)
				}
				if !inferred.Equal(got.shape) {
					t.Fatalf("%q with %v: Infer gives %v, Eval %v", src, vars, inferred, got.shape)
				}
				want, err := c.ref(&dense{}, call.args, call.consts)
				if err != nil {
					t.Fatalf("reference of %q: %v", src, err)
				}
				near(t, src, got, want.data, want.shape)

				if call.rows {
					vars["t0"] = append(Shape{Any}, vars["t0"][1:]...)
					rows, err := Infer(e, vars, nil)
					wantRows := append(Shape{Any}, inferred[1:]...)
					if err != nil || !rows.Equal(wantRows) {
						t.Fatalf("Infer(%q) with %v = %v, %v; want %v", src, vars, rows, err, wantRows)
					}
				}
			}
		})
	}
	for name := range builtinCases {
		if !IsBuiltin(name) {
			t.Errorf("builtinCases has %s, which is no builtin", name)
		}
	}
}

// TestDocListsBuiltins keeps the package documentation's list of builtins equal to
// the table, names and argument counts: "f(a, b)" takes two, "[, eps]" is optional
// and "..." stands for more.
func TestDocListsBuiltins(t *testing.T) {
	f, err := goparser.ParseFile(gotoken.NewFileSet(), "doc.go", nil, goparser.ParseComments|goparser.PackageClauseOnly)
	if err != nil {
		t.Fatal(err)
	}
	_, list, ok := strings.Cut(f.Doc.Text(), "builtins:\n")
	if !ok {
		t.Fatal(`doc.go has no list after "builtins:"`)
	}
	type documented struct {
		min, optional int
		variadic      bool
	}
	docs := map[string]documented{}
	for _, line := range strings.Split(strings.TrimLeft(list, "\n"), "\n") {
		if !strings.HasPrefix(line, "\t") {
			break
		}
		open, end := strings.Index(line, "("), strings.Index(line, ")")
		if open < 0 || end < open {
			t.Fatalf("doc.go: no argument list in %q", line)
		}
		required, optional, _ := strings.Cut(line[open+1:end], "[")
		var d documented
		for _, a := range strings.Split(required, ",") {
			switch strings.TrimSpace(a) {
			case "":
			case "...":
				d.variadic = true
			default:
				d.min++
			}
		}
		for _, a := range strings.Split(strings.TrimSuffix(optional, "]"), ",") {
			if strings.TrimSpace(a) != "" {
				d.optional++
			}
		}
		for _, name := range strings.Fields(line[:open]) {
			docs[name] = d
		}
	}
	for _, b := range language {
		d, ok := docs[b.name]
		if !ok {
			t.Errorf("doc.go does not list %s", b.name)
			continue
		}
		maxAgrees := b.max == d.min+d.optional
		if d.variadic {
			maxAgrees = b.max > d.min+d.optional
		}
		if d.min != b.min || !maxAgrees {
			t.Errorf("doc.go gives %s arguments %+v; it takes %d to %d", b.name, d, b.min, b.max)
		}
	}
	for name := range docs {
		if !IsBuiltin(name) {
			t.Errorf("doc.go lists %s, which is no builtin", name)
		}
	}
	if len(docs) == 0 {
		t.Error("found no builtins in doc.go")
	}
}

// TestHandBuiltCalls: a tree built without Parse (the host may build or rewrite
// one) gets the same name and arity checks as parsed text, not an index panic.
func TestHandBuiltCalls(t *testing.T) {
	x := tn{shape: []int{2, 2}, data: make([]float64, 4)}
	for _, tt := range []struct {
		call *Call
		want string
	}{
		{&Call{Func: "matmul", Args: []Expr{&Ident{Name: "x"}}, Column: 3}, "column 3: matmul takes 2 arguments, got 1"},
		{&Call{Func: "layer_norm", Column: 1}, "column 1: layer_norm takes 3 to 4 arguments, got 0"},
		{&Call{Func: "softmax", Args: []Expr{&Ident{Name: "x"}}, Column: 2}, "column 2: unknown function softmax"},
	} {
		_, err := Infer(tt.call, map[string]Shape{"x": x.shape}, nil)
		if err == nil || err.Error() != tt.want {
			t.Errorf("Infer(%v) error %v, want %q", tt.call, err, tt.want)
		}
		_, err = Eval(tt.call, map[string]tn{"x": x}, Ops[tn](&dense{}))
		if err == nil || err.Error() != tt.want {
			t.Errorf("Eval(%v) error %v, want %q", tt.call, err, tt.want)
		}
	}
}
