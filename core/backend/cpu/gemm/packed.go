package gemm

import (
	"fmt"

	"github.com/kadapt/kadapt/core/backend/cpu/internal/pool"
)

// PackedB is a right-hand operand op(B) packed once into the microkernel's panels, for
// a matrix that many products use unchanged: a frozen weight is multiplied in every
// step of training and every batch of evaluation, and packing it each time costs as much
// as reading it (the x·Wᵀ form transposes it as well). Products given a PackedB skip
// B's packing entirely, and compute exactly what they would with B itself: the kernel
// sees the same panels in the same order.
//
// A PackedB belongs to the kernel and block sizes in use when it was packed; Current
// says whether they still are. The caller owns the question of whether B has changed
// since: a PackedB is a copy.
type PackedB struct {
	kern           *microkernel
	blockK, blockN int
	k, n           int
	// data holds NC-column blocks one after another, each as its KC slices one after
	// another, each slice as NR-wide panels of kc rows, exactly as serial packs them.
	data []float32
}

// PackB packs op(B), k×n (B stored n×k when transB), for SgemmPacked. It panics if no
// kernel is available.
func PackB(transB bool, k, n int, b []float32, ldb int) *PackedB {
	kern := active
	if kern == nil {
		panic("gemm: no microkernel on this CPU (check Kernel() before calling)")
	}
	if k < 0 || n < 0 {
		panic(fmt.Sprintf("gemm: PackB: negative size k=%d n=%d", k, n))
	}
	br, bc := k, n
	if transB {
		br, bc = n, k
	}
	checkOperand("B", b, br, bc, ldb, 0, 1, 0, 1)
	if blockN%kern.nr != 0 {
		panic(fmt.Sprintf("gemm: NC %d is not a multiple of the kernel's %d columns", blockN, kern.nr))
	}
	pb := &PackedB{kern: kern, blockK: blockK, blockN: blockN, k: k, n: n,
		data: make([]float32, roundUp(n, kern.nr)*k)}
	p := product{kern: kern, tB: transB, k: k, n: n, b: b, ldb: ldb}
	type block struct{ jc, nc, pc, kc int }
	var blocks []block
	for jc := 0; jc < n; jc += blockN {
		for pc := 0; pc < k; pc += blockK {
			blocks = append(blocks, block{jc, min(blockN, n-jc), pc, min(blockK, k-pc)})
		}
	}
	pool.For(pool.Threads(), len(blocks), func(i int) {
		bl := blocks[i]
		p.packB(pb.block(bl.jc, bl.nc, bl.pc, bl.kc), bl.pc, bl.kc, bl.jc, bl.nc)
	})
	return pb
}

// Current reports whether pb was packed for the kernel and block sizes in use now
// (SetKernel or a test's block sizes may have changed them since).
func (pb *PackedB) Current() bool {
	return pb.kern == active && pb.blockK == blockK && pb.blockN == blockN
}

// Bytes is the memory pb holds.
func (pb *PackedB) Bytes() int { return 4 * len(pb.data) }

// block returns the panels of columns [jc, jc+nc) and k steps [pc, pc+kc). Every NC
// block before jc is full and a multiple of NR wide, so it holds blockN·k elements.
func (pb *PackedB) block(jc, nc, pc, kc int) []float32 {
	off := jc*pb.k + roundUp(nc, pb.kern.nr)*pc
	return pb.data[off : off+roundUp(nc, pb.kern.nr)*kc]
}

// SgemmPacked is SgemmStrided with a shared, packed right-hand operand: C_i =
// alpha·op(A_i)·op(B) + beta·C_i + bias for i < batch, op(B) being k×n as packed. It
// panics if pb is not Current.
func SgemmPacked(transA bool, m int, alpha float32, a []float32, lda, strideA int, pb *PackedB,
	bias []float32, beta float32, c []float32, ldc, strideC int, batch int) {
	if !pb.Current() {
		panic("gemm: SgemmPacked: B was packed for another kernel or block sizes")
	}
	k, n := pb.k, pb.n
	if m < 0 || batch < 0 {
		panic(fmt.Sprintf("gemm: negative size m=%d batch=%d", m, batch))
	}
	if m == 0 || n == 0 || batch == 0 {
		return
	}
	ar, ac := m, k
	if transA {
		ar, ac = k, m
	}
	l := layout{inner: batch, groups: 1, strideA: strideA, strideC: strideC}
	checkOperand("A", a, ar, ac, lda, l.strideA, l.inner, l.groupA, l.groups)
	checkC(c, m, n, ldc, l, bias)
	bp := batched{
		pr: product{kern: pb.kern, tA: transA, m: m, n: n, k: k, alpha: alpha, beta: beta, lda: lda, ldc: ldc, pb: pb, bias: bias},
		a:  a, c: c, l: l,
	}
	bp.run(batch)
}
