package cpu

import (
	"fmt"
	"os"
	"runtime"
	"strconv"

	"gonum.org/v1/gonum/blas"
	"gonum.org/v1/gonum/blas/blas32"

	"github.com/kadapt/kadapt/core"
	"github.com/kadapt/kadapt/core/backend/cpu/gemm"
)

// systemBLAS is set by the openblas build tag: products then go through blas32 to the
// installed BLAS instead of the gemm package's kernels.
var systemBLAS bool

// GEMM names the implementation behind MatMul: "kadapt-avx512" or "kadapt-avx2" for
// the gemm package's kernels, "openblas" under that build tag, or "gonum" where this
// CPU or architecture has no kernel (or KADAPT_GEMM=none chose none).
func GEMM() string {
	switch {
	case systemBLAS:
		return "openblas"
	case gemm.Kernel() != "":
		return "kadapt-" + gemm.Kernel()
	default:
		return "gonum"
	}
}

// gonumBlock is gonum's Sgemm block size; it computes a product serially unless it
// spans at least gonumMinParBlocks blocks of C. Batched products smaller than that are
// parallelised here, across batch entries.
const (
	gonumBlock        = 64
	gonumMinParBlocks = 4
)

// macsPerElement converts multiply-adds into the element counts that workers weighs
// against parallelMin: with 16, batch entries are split across goroutines once they
// hold 2^19 multiply-adds together, ~30 µs on one core against ~1 µs per goroutine.
const macsPerElement = 16

// MatMul computes dst = alpha·op(a)·op(b) + beta·dst over the leading batch axes.
func (b *Backend) MatMul(dst, a, bt *core.Tensor, transA, transB bool, alpha, beta float32) {
	b.matMul(dst, a, bt, nil, transA, transB, alpha, beta)
}

// MatMulBias implements core.BiasedMatMul: the gemm kernels write each tile of dst
// starting from the bias, so it costs no pass over dst of its own.
func (b *Backend) MatMulBias(dst, a, bt, bias *core.Tensor, transA, transB bool, alpha, beta float32) {
	if n := dst.Shape()[dst.Rank()-1]; bias.Rank() != 1 || bias.Size() != n {
		panic(fmt.Sprintf("cpu: MatMulBias: bias %v for dst %v (want [%d])", bias.Shape(), dst.Shape(), n))
	}
	b.matMul(dst, a, bt, bias, transA, transB, alpha, beta)
}

func (b *Backend) matMul(dst, a, bt, biasT *core.Tensor, transA, transB bool, alpha, beta float32) {
	ds, as, bs := dst.Shape(), a.Shape(), bt.Shape()
	if len(ds) < 2 || len(as) < 2 || len(bs) < 2 {
		panic(fmt.Sprintf("cpu: MatMul: operands need at least two axes: dst %v, a %v, b %v", ds, as, bs))
	}
	m, n := ds[len(ds)-2], ds[len(ds)-1]
	am, k := as[len(as)-2], as[len(as)-1]
	if transA {
		am, k = k, am
	}
	bk, bn := bs[len(bs)-2], bs[len(bs)-1]
	if transB {
		bk, bn = bn, bk
	}
	if am != m || bn != n || bk != k {
		panic(fmt.Sprintf("cpu: MatMul: shapes do not match: dst %v = a %v (transposed %v) × b %v (transposed %v)",
			ds, as, transA, bs, transB))
	}
	batch := core.Shape(ds[:len(ds)-2]).Size()
	aBatch := core.Shape(as[:len(as)-2]).Size()
	bBatch := core.Shape(bs[:len(bs)-2]).Size()
	if (aBatch != batch && aBatch != 1) || (bBatch != batch && bBatch != 1) {
		panic(fmt.Sprintf("cpu: MatMul: batch axes of a %v and b %v must match dst %v or be absent", as, bs, ds))
	}
	d := b.f32(dst, "MatMul")
	ad, bd := b.in(a, "MatMul"), b.in(bt, "MatMul")
	var bias []float32
	if biasT != nil {
		bias = b.in(biasT, "MatMulBias")
	}
	if len(d) == 0 {
		return
	}
	kernels := !systemBLAS && gemm.Kernel() != ""
	if bias != nil && (!kernels || k == 0) {
		// Without the kernels' tile epilogue, the bias goes in first and the product
		// accumulates onto it, which is what the epilogue computes too.
		forEach(rowBiasKernel{d: d, bias: bias, beta: beta}, len(d)/n, n)
		beta, bias = 1, nil
	}
	if k == 0 {
		// An empty sum: BLAS implementations reject the zero leading dimension.
		if beta == 0 {
			fill(d, 0)
		} else {
			forEach(scaleKernel{d, beta}, len(d), 1)
		}
		return
	}
	g := gemmBatch{
		tA: blas.NoTrans, tB: blas.NoTrans,
		m: m, n: n, k: k, alpha: alpha, beta: beta,
		a: ad, b: bd, c: d,
		aStep: m * k, bStep: k * n,
	}
	if transA {
		g.tA = blas.Trans
	}
	if transB {
		g.tB = blas.Trans
	}
	if aBatch != batch {
		g.aStep = 0
	}
	if bBatch != batch {
		g.bStep = 0
	}
	if batch > 1 && !transA && g.aStep != 0 && g.bStep == 0 {
		// [batch, m, k] × shared [k, n] is one [batch·m, k] × [k, n] product.
		g.m *= batch
		batch = 1
	}
	if kernels {
		lda, ldb := g.k, g.n
		if transA {
			lda = g.m
		}
		if transB {
			ldb = g.k
		}
		if batch == 1 || g.bStep == 0 {
			if pb := b.packedB(b.buf(bt, "MatMul"), transB, g.k, g.n, bd, ldb); pb != nil {
				gemm.SgemmPacked(transA, g.m, alpha, ad, lda, g.aStep, pb, bias, beta, d, g.n, g.m*g.n, batch)
				return
			}
		}
		gemm.SgemmStrided(transA, transB, g.m, g.n, g.k, alpha, ad, lda, g.aStep, bd, ldb, g.bStep, bias, beta, d, g.n, g.m*g.n, batch)
		return
	}
	if batch == 1 {
		g.run(0, 1)
		return
	}
	blocks := ((m + gonumBlock - 1) / gonumBlock) * ((n + gonumBlock - 1) / gonumBlock)
	if batch == 1 || blocks >= gonumMinParBlocks {
		// The BLAS parallelises each product itself.
		g.run(0, batch)
		return
	}
	forEach(g, batch, max(1, m*n*k/macsPerElement))
}

// rowBiasKernel applies gemm.BiasRows to rows [lo, hi) of d, for the products that do
// not run on the gemm kernels.
type rowBiasKernel struct {
	d, bias []float32
	beta    float32
}

func (k rowBiasKernel) run(lo, hi int) {
	n := len(k.bias)
	gemm.BiasRows(k.d[lo*n:], n, hi-lo, k.bias, k.beta)
}

// gemmBatch is one product per batch entry; aStep or bStep is 0 for a shared operand.
type gemmBatch struct {
	tA, tB       blas.Transpose
	m, n, k      int
	alpha, beta  float32
	a, b, c      []float32
	aStep, bStep int
}

func (g gemmBatch) run(lo, hi int) {
	mk, kn, mn := g.m*g.k, g.k*g.n, g.m*g.n
	for i := lo; i < hi; i++ {
		a := blas32.General{Rows: g.m, Cols: g.k, Stride: g.k, Data: g.a[i*g.aStep : i*g.aStep+mk]}
		if g.tA == blas.Trans {
			a = blas32.General{Rows: g.k, Cols: g.m, Stride: g.m, Data: a.Data}
		}
		b := blas32.General{Rows: g.k, Cols: g.n, Stride: g.n, Data: g.b[i*g.bStep : i*g.bStep+kn]}
		if g.tB == blas.Trans {
			b = blas32.General{Rows: g.n, Cols: g.k, Stride: g.k, Data: b.Data}
		}
		c := blas32.General{Rows: g.m, Cols: g.n, Stride: g.n, Data: g.c[i*mn : (i+1)*mn]}
		blas32.Gemm(g.tA, g.tB, g.alpha, a, b, g.beta, c)
	}
}

// packCacheLimit bounds the memory a backend spends on packed weights. A frozen
// ViT-B/32 backbone needs about 0.7 GiB (its linear weights packed once for x·Wᵀ and
// once for the backward pass's dy·W). KADAPT_CPU_PACK_CACHE_MIB sets it, for a
// machine short of memory (0 turns the copies off) and for measuring what they buy.
var packCacheLimit = packCacheLimitFromEnv(os.Getenv("KADAPT_CPU_PACK_CACHE_MIB"), 2<<30)

func packCacheLimitFromEnv(mib string, def int64) int64 {
	if mib == "" {
		return def
	}
	n, err := strconv.ParseInt(mib, 10, 64)
	if err != nil || n < 0 || n > 1<<40 {
		fmt.Fprintf(os.Stderr, "KADAPT_CPU_PACK_CACHE_MIB: %q is not a size in MiB (0 or more); using %d MiB\n", mib, def>>20)
		return def
	}
	return n << 20
}

// packEntry is what a buffer remembers of its last use as a shared right-hand operand
// in one orientation: the shape and version it was seen at and, once it has been seen
// twice at the same version, its packed copy.
type packEntry struct {
	seen    bool
	k, n    int
	version uint64
	packed  *gemm.PackedB
}

// packedB returns op(B) packed, or nil to have the product pack B itself. The backend
// is not told which tensors are frozen; it sees it: a buffer gets a packed copy when
// it is multiplied a second time with no write in between (buffer.version), which a
// frozen weight is in every step after the first, and a trainable weight (updated in
// place between its uses in consecutive steps) never is, except across the batches of
// an evaluation pass. Every op that may write a buffer bumps its version, so a copy
// is never used stale, and one that goes stale is dropped at its next use.
func (b *Backend) packedB(buf *buffer, transB bool, k, n int, data []float32, ldb int) *gemm.PackedB {
	v := buf.version.Load()
	slot := 0
	if transB {
		slot = 1
	}
	buf.packMu.Lock()
	defer buf.packMu.Unlock()
	e := &buf.packs[slot]
	if !e.seen || e.version != v || e.k != k || e.n != n {
		*e = packEntry{seen: true, k: k, n: n, version: v}
		return nil
	}
	if e.packed != nil && e.packed.Current() {
		return e.packed
	}
	e.packed = nil
	if b.packedBytes.Load()+4*int64(k)*int64(n+64) > packCacheLimit {
		return nil
	}
	pb := gemm.PackB(transB, k, n, data, ldb)
	size := int64(pb.Bytes())
	b.packedBytes.Add(size)
	// Copies dropped for staleness or with a released buffer count until the garbage
	// collector has actually freed them, and so do those of buffers never released.
	runtime.AddCleanup(pb, func(size int64) { b.packedBytes.Add(-size) }, size)
	e.packed = pb
	return pb
}

// dropPacks forgets buf's packed copies: it is being released, and its next owner will
// write other values.
func (buf *buffer) dropPacks() {
	buf.packMu.Lock()
	buf.packs = [2]packEntry{}
	buf.packMu.Unlock()
}
