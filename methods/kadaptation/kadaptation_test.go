package kadaptation

import (
	"testing"

	"github.com/kadapt/kadapt/plugins/plan"
)

func backbone(width int) plan.Backbone {
	return plan.StandardViT(plan.ViTConfig{Name: "test", Layers: 2, Width: width, Heads: 1, MLPDim: 2 * width, Patch: 4, Image: 8, EmbedDim: 6})
}

// n must divide the width; where it does not, the largest divisor below it is used, so
// the paper's n = 32 serves backbones narrower than ViT-B's 768.
func TestNIsLoweredToADivisorOfTheWidth(t *testing.T) {
	for _, tc := range []struct{ width, n, want int }{
		{768, 32, 32}, // the paper's: no change
		{768, 5, 4},
		{60, 32, 30},
		{64, 48, 32},
		{7, 32, 7},
		{7, 6, 1}, // a prime width leaves one factor
	} {
		c := Default()
		c.N = tc.n
		p, err := Method.Build(backbone(tc.width), c)
		if err != nil {
			t.Fatalf("width %d, n %d: %v", tc.width, tc.n, err)
		}
		m := tc.width / tc.want
		want := map[string][]int{"q.slow.a": {tc.want, tc.want, 1}, "q.fast.u": {tc.want, m, 1}, "v.fast.v": {tc.want, 1, m}}
		for _, ps := range p.Params {
			if w, ok := want[ps.Name]; ok {
				if len(ps.Shape) != 3 || ps.Shape[0] != w[0] || ps.Shape[1] != w[1] || ps.Shape[2] != w[2] {
					t.Errorf("width %d, n %d: %s has shape %v, want %v", tc.width, tc.n, ps.Name, ps.Shape, w)
				}
				delete(want, ps.Name)
			}
		}
		if len(want) > 0 {
			t.Errorf("width %d, n %d: no parameters %v", tc.width, tc.n, want)
		}
		if err := plan.Validate(p, backbone(tc.width)); err != nil {
			t.Errorf("width %d, n %d: %v", tc.width, tc.n, err)
		}
	}
	for _, n := range []int{0, -3} {
		c := Default()
		c.N = n
		if _, err := Method.Build(backbone(60), c); err == nil {
			t.Errorf("n = %d planned", n)
		}
	}
}
