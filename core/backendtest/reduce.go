package backendtest

import (
	"fmt"

	"github.com/kadapt/kadapt/core"
)

func reduceCases() []testCase {
	var cs []testCase
	for _, xs := range []core.Shape{{17}, {3, 7}, {1, 5, 3}, {3, 1, 17}, {2, 3, 1, 7}, {2, 5, 3, 4}, {33, 257, 9}} {
		seen := map[string]bool{}
		for mask := range 1 << len(xs) {
			ds := xs.Clone()
			for ax := range ds {
				if mask&(1<<ax) != 0 {
					ds[ax] = 1
				}
			}
			if seen[ds.String()] {
				continue // reducing a size-1 axis is a no-op: same case
			}
			seen[ds.String()] = true
			for _, v := range []struct {
				name string
				op   core.ReduceOp
				acc  bool
			}{{"sum", core.ReduceSum, false}, {"sum_accumulate", core.ReduceSum, true}, {"max", core.ReduceMax, false}} {
				cs = append(cs, testCase{fmt.Sprintf("Reduce/%s/%v->%v", v.name, xs, ds), func(e *env) {
					x := e.uniform(xs, -1, 1)
					d := e.nan(ds)
					if v.acc {
						d = e.uniform(ds, -1, 1)
					}
					e.do(func(be core.Backend, t func(*pair) *core.Tensor) { be.Reduce(v.op, t(d), t(x), v.acc) })
					tol := e.tol.Reduce
					if v.op == core.ReduceSum {
						tol = tol.forSum(xs.Size() / ds.Size())
					}
					e.check("dst", d, tol)
				}})
			}
		}
	}
	return cs
}
