package ref

import (
	"fmt"
	"math"

	"github.com/kadapt/kadapt/core"
)

func (*backend) Binary(op core.BinaryOp, dst, a, b *core.Tensor) {
	d, av, bv := vals(dst, "Binary", "dst"), vals(a, "Binary", "a"), vals(b, "Binary", "b")
	out, err := core.BroadcastShape(a.Shape(), b.Shape())
	if err != nil || !out.Equal(dst.Shape()) {
		panic(fmt.Sprintf("ref: Binary %v: dst %v is not the broadcast of a %v and b %v", op, dst, a, b))
	}
	sa, sb := core.BroadcastStrides(a.Shape(), out), core.BroadcastStrides(b.Shape(), out)
	for i := range d {
		x, y := av[offset(i, out, sa)], bv[offset(i, out, sb)]
		switch op {
		case core.Add:
			d[i] = x + y
		case core.Sub:
			d[i] = x - y
		case core.Mul:
			d[i] = x * y
		case core.Div:
			d[i] = x / y
		case core.Maximum:
			d[i] = math.Max(x, y)
		case core.Equal:
			d[i] = 0
			if x == y {
				d[i] = 1
			}
		default:
			panic(fmt.Sprintf("ref: Binary: unknown op %d", op))
		}
	}
}
