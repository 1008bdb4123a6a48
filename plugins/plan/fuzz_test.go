package plan

import (
	"encoding/json"
	"testing"
)

// FuzzResolve feeds plan JSON, which arrives from plugin binaries, to the
// validator: Resolve must return an expansion or a *ValidationError, never panic,
// and what it accepts stays within the budget and names only real sites.
func FuzzResolve(f *testing.F) {
	for _, p := range []Plan{kadaptation(8), lora(8, 2), adapter(8, 4), compacter(8, 4, 2),
		trainOnly(TrainableSpec{Mode: TrainPatterns, Patterns: []string{"blocks.*.ln1.*"}})} {
		raw, err := json.Marshal(p)
		if err != nil {
			f.Fatal(err)
		}
		f.Add(raw)
	}
	f.Add([]byte(`{"method":"x","params":[{"name":"big","shape":[8,268435456],"init":{"kind":"zeros"},"scope":"per_layer","trainable":true}],
"edits":[{"site":"blocks.*.attn.q","kind":"bias_delta","expr":"sum(big, 1)"}],"trainable":{"mode":"none"}}`))
	f.Add([]byte(`{"method":"x","edits":[{"site":"blocks.[","kind":"module_after","expr":"h+"}]}`))
	budget := Budget{Params: 1 << 20, Bytes: 64 << 20}
	f.Fuzz(func(t *testing.T, raw []byte) {
		var p Plan
		if err := json.Unmarshal(raw, &p); err != nil {
			return
		}
		bb := small
		bb.Budget = budget
		r, err := Resolve(p, bb)
		if err != nil {
			if _, ok := err.(*ValidationError); !ok {
				t.Fatalf("error of type %T: %v", err, err)
			}
			return
		}
		var elems int64
		for _, in := range r.Instances {
			elems += size(in.Spec.Shape)
		}
		if elems > budget.Params {
			t.Fatalf("accepted %d parameter elements over a budget of %d", elems, budget.Params)
		}
		sites := map[string]bool{}
		for _, s := range bb.Sites {
			sites[s.Name] = true
		}
		for _, e := range r.Edits {
			if !sites[e.Site.Name] {
				t.Fatalf("edit at unknown site %q", e.Site.Name)
			}
		}
		if _, err := CountTrainable(p, bb); err != nil {
			t.Fatalf("resolved, but counting failed: %v", err)
		}
	})
}
