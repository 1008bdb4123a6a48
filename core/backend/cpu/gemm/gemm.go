package gemm

import (
	"fmt"
	"os"
	"sync"

	"github.com/kadapt/kadapt/core/backend/cpu/internal/pool"
)

// microkernel is one register-blocked assembly kernel computing an mr×nr block of C
// from packed panels.
type microkernel struct {
	id     int
	name   string
	mr, nr int
}

// Cache blocking, in elements. KC·NR·4 bytes of a packed B micro-panel stay in the
// 32 KiB L1 while A micro-panels stream past (KC = 256 with NR = 32 fills half of it
// plus the A stream); an MC×KC block of packed A stays in L2; NC columns of packed B
// are shared by all threads from L3. Chosen by measurement on the development machine
// (package documentation).
var (
	blockK = 256
	blockM = 168
	blockN = 3072
)

// Work with fewer multiply-adds than this runs on the calling goroutine: 2^20 take
// ~10 µs on one core, and waking the workers and waiting for them costs a few
// microseconds even on an idle machine.
const parallelMinMACs = 1 << 20

var (
	available = kernels()
	active    *microkernel
)

func init() {
	if len(available) > 0 {
		active = available[0]
	}
	if name := os.Getenv("KADAPT_GEMM"); name != "" {
		if err := SetKernel(name); err != nil {
			fmt.Fprintf(os.Stderr, "KADAPT_GEMM: %v\n", err)
		}
	}
}

// Kernel names the microkernel in use ("avx512", "avx2"), or "" when this CPU or
// architecture has none and callers should use another implementation.
func Kernel() string {
	if active == nil {
		return ""
	}
	return active.name
}

// Kernels lists the microkernels this CPU can run, fastest first.
func Kernels() []string {
	var names []string
	for _, k := range available {
		names = append(names, k.name)
	}
	return names
}

// SetKernel selects a microkernel by name; "none" disables them all (Kernel then
// returns ""). It exists for tests and benchmarks that compare the paths and for the
// KADAPT_GEMM environment variable, and must not race with running products.
func SetKernel(name string) error {
	if name == "none" {
		active = nil
		return nil
	}
	for _, k := range available {
		if k.name == name {
			active = k
			return nil
		}
	}
	return fmt.Errorf("gemm: kernel %q is not available on this CPU (have %v, or none)", name, Kernels())
}

// Sgemm computes C = alpha·op(A)·op(B) + beta·C for row-major m×k op(A), k×n op(B)
// and m×n C, where op transposes when trans is set (A is then stored k×m). With beta = 0
// C is not read, so NaN in it does not propagate. It panics if no kernel is available.
func Sgemm(transA, transB bool, m, n, k int, alpha float32, a []float32, lda int, b []float32, ldb int, beta float32, c []float32, ldc int) {
	SgemmStrided(transA, transB, m, n, k, alpha, a, lda, 0, b, ldb, 0, nil, beta, c, ldc, 0, 1)
}

// SgemmStrided computes batch products C_i = alpha·op(A_i)·op(B_i) + beta·C_i + bias
// where A_i starts at a[i·strideA] (likewise B and C); a stride of 0 shares one operand
// across the batch. bias, if not nil, holds n values added to every row of every C_i
// (a linear layer's bias), as C's tiles are first written, so that it costs no pass of
// its own; the result is exactly that of C_i = beta·C_i + bias first and the product
// then accumulated with beta = 1. C_i must not overlap. Small products run in parallel
// across the batch, large ones one after another, each across all threads.
func SgemmStrided(transA, transB bool, m, n, k int, alpha float32,
	a []float32, lda, strideA int, b []float32, ldb, strideB int, bias []float32,
	beta float32, c []float32, ldc, strideC int, batch int) {
	sgemm(transA, transB, m, n, k, alpha, a, lda, b, ldb, bias, beta, c, ldc,
		layout{inner: batch, groups: 1, strideA: strideA, strideB: strideB, strideC: strideC})
}

// SgemmGrouped is SgemmStrided over groups·inner products laid out on two axes: entry
// (g, j) of A starts at a[g·groupA + j·strideA], likewise B and C. One call then
// covers, say, every head of every sequence of a multi-head attention, whose heads lie
// side by side within a sequence's rows.
func SgemmGrouped(transA, transB bool, m, n, k int, alpha float32,
	a []float32, lda, strideA, groupA int, b []float32, ldb, strideB, groupB int,
	beta float32, c []float32, ldc, strideC, groupC int, inner, groups int) {
	if groups < 0 {
		panic(fmt.Sprintf("gemm: negative group count %d", groups))
	}
	sgemm(transA, transB, m, n, k, alpha, a, lda, b, ldb, nil, beta, c, ldc,
		layout{inner: inner, groups: groups, strideA: strideA, strideB: strideB, strideC: strideC,
			groupA: groupA, groupB: groupB, groupC: groupC})
}

// layout places a batch of inner·groups products: entry i is (i/inner, i%inner), and
// an operand's entry (g, j) starts g·group + j·stride elements in.
type layout struct {
	inner, groups             int
	strideA, strideB, strideC int
	groupA, groupB, groupC    int
}

func sgemm(transA, transB bool, m, n, k int, alpha float32, a []float32, lda int, b []float32, ldb int,
	bias []float32, beta float32, c []float32, ldc int, l layout) {
	batch := l.inner * l.groups
	kern := active
	if kern == nil {
		panic("gemm: no microkernel on this CPU (check Kernel() before calling)")
	}
	if m < 0 || n < 0 || k < 0 || batch < 0 {
		panic(fmt.Sprintf("gemm: negative size m=%d n=%d k=%d batch=%d", m, n, k, batch))
	}
	if m == 0 || n == 0 || batch == 0 {
		return
	}
	ar, ac := m, k
	if transA {
		ar, ac = k, m
	}
	br, bc := k, n
	if transB {
		br, bc = n, k
	}
	checkOperand("A", a, ar, ac, lda, l.strideA, l.inner, l.groupA, l.groups)
	checkOperand("B", b, br, bc, ldb, l.strideB, l.inner, l.groupB, l.groups)
	checkC(c, m, n, ldc, l, bias)
	bp := batched{
		pr: product{kern: kern, tA: transA, tB: transB, m: m, n: n, k: k, alpha: alpha, beta: beta, lda: lda, ldb: ldb, ldc: ldc, bias: bias},
		a:  a, b: b, c: c, l: l,
	}
	bp.run(batch)
}

// run computes the batch: small products in parallel across it, large ones one after
// another, each across all threads.
func (bp *batched) run(batch int) {
	m, n, k := bp.pr.m, bp.pr.n, bp.pr.k
	p, macs := pool.Threads(), m*n*k
	if p > 1 && batch > 1 && macs < 16*parallelMinMACs && batch*macs >= parallelMinMACs {
		// Products too small to split well (attention's heads) split across the batch.
		// Only this branch's copy is captured, so the serial path allocates nothing.
		shared := *bp
		pool.For(p, batch, func(i int) {
			q := shared.at(i)
			q.serial()
		})
		return
	}
	for i := 0; i < batch; i++ {
		q := bp.at(i)
		if p > 1 && macs >= parallelMinMACs {
			q.parallel(p)
		} else {
			q.serial()
		}
	}
}

// batched is a strided batch of products sharing sizes, transposes and scalars.
type batched struct {
	pr      product
	a, b, c []float32
	l       layout
}

func (bp *batched) at(i int) product {
	q := bp.pr
	g, j := i/bp.l.inner, i%bp.l.inner
	q.a, q.c = bp.a[g*bp.l.groupA+j*bp.l.strideA:], bp.c[g*bp.l.groupC+j*bp.l.strideC:]
	if q.pb == nil {
		q.b = bp.b[g*bp.l.groupB+j*bp.l.strideB:]
	}
	return q
}

// checkC checks C as checkOperand does, that its batch entries do not overlap, and
// that a bias has a value for each of its columns.
func checkC(c []float32, m, n, ldc int, l layout, bias []float32) {
	checkOperand("C", c, m, n, ldc, l.strideC, l.inner, l.groupC, l.groups)
	// A group's entries are disjoint when each lies below the last, or when they lie
	// side by side within C's rows (attention's heads, d columns each in rows of H·d);
	// groups when each lies below the last group's extent.
	stacked := l.strideC >= (m-1)*ldc+n
	sideBySide := l.strideC >= n && (l.inner-1)*l.strideC+n <= ldc
	if l.inner > 1 && !stacked && !sideBySide {
		panic(fmt.Sprintf("gemm: C's batch stride %d overlaps its %d×%d entries (ldc %d)", l.strideC, m, n, ldc))
	}
	if extent := (l.inner-1)*l.strideC + (m-1)*ldc + n; l.groups > 1 && l.groupC < extent {
		panic(fmt.Sprintf("gemm: C's group stride %d overlaps its groups of %d entries, %d elements each", l.groupC, l.inner, extent))
	}
	if bias != nil && len(bias) < n {
		panic(fmt.Sprintf("gemm: bias holds %d values for %d columns", len(bias), n))
	}
}

// checkOperand checks that s holds an operand's rows×cols entries, ld apart, for
// groups of inner batch entries (stride apart within a group, group apart between).
func checkOperand(name string, s []float32, rows, cols, ld, stride, inner, group, groups int) {
	if rows == 0 || cols == 0 || inner == 0 || groups == 0 {
		return
	}
	if ld < cols {
		panic(fmt.Sprintf("gemm: %s's leading dimension %d is below its %d columns", name, ld, cols))
	}
	need := (groups-1)*group + (inner-1)*stride + (rows-1)*ld + cols
	if len(s) < need {
		if groups == 1 {
			panic(fmt.Sprintf("gemm: %s holds %d elements, %d×%d (ld %d, batch %d, stride %d) needs %d",
				name, len(s), rows, cols, ld, inner, stride, need))
		}
		panic(fmt.Sprintf("gemm: %s holds %d elements, %d×%d (ld %d, %d groups of %d, strides %d and %d) needs %d",
			name, len(s), rows, cols, ld, groups, inner, group, stride, need))
	}
}

// product is one C = alpha·op(A)·op(B) + beta·C.
type product struct {
	kern          *microkernel
	tA, tB        bool
	m, n, k       int
	alpha, beta   float32
	a, b, c       []float32
	lda, ldb, ldc int
	// pb, when set, is op(B) already packed: b and ldb are unused.
	pb *PackedB
	// bias, when set, is added to every row of C (BiasRows).
	bias []float32
}

// workspace holds packed panels. Workspaces are kept on a free list for the life of
// the process, not in a sync.Pool: a training step runs thousands of products, and a
// pool emptied by every garbage collection would reallocate megabytes of panels per
// step, which in turn triggers the next collection.
type workspace struct{ a, b []float32 }

var workspaces struct {
	mu   sync.Mutex
	free []*workspace
}

func getWorkspace() *workspace {
	workspaces.mu.Lock()
	defer workspaces.mu.Unlock()
	if n := len(workspaces.free); n > 0 {
		ws := workspaces.free[n-1]
		workspaces.free = workspaces.free[:n-1]
		return ws
	}
	return new(workspace)
}

func putWorkspace(ws *workspace) {
	workspaces.mu.Lock()
	workspaces.free = append(workspaces.free, ws)
	workspaces.mu.Unlock()
}

// grow returns s resized to n, reallocating with headroom so that a workspace serving
// products of varying sizes settles at the largest after a few calls.
func grow(s []float32, n int) []float32 {
	if cap(s) < n {
		return make([]float32, n, max(n, 2*cap(s)))
	}
	return s[:n]
}

func roundUp(x, to int) int { return (x + to - 1) / to * to }

// scaleC handles k = 0 and alpha = 0, where BLAS leaves only beta·C (and zero for beta
// = 0 whatever C held), plus the bias.
func (p *product) scaleC() {
	if p.bias != nil {
		p.startTile(0, p.m, 0, p.n)
		return
	}
	for i := 0; i < p.m; i++ {
		row := p.c[i*p.ldc : i*p.ldc+p.n]
		if p.beta == 0 {
			clear(row)
		} else if p.beta != 1 {
			for j := range row {
				row[j] *= p.beta
			}
		}
	}
}

// startTile sets rows [i, i+mm) and columns [j, j+nn) of C to beta·C + bias before the
// first KC slice accumulates onto them with beta = 1. The tile is then in L1 when the
// kernel reads it back.
func (p *product) startTile(i, mm, j, nn int) {
	BiasRows(p.c[i*p.ldc+j:], p.ldc, mm, p.bias[j:j+nn], p.beta)
}

// BiasRows sets each of the first rows rows of c (ldc apart, len(bias) wide) to
// beta·row + bias, or to bias alone for beta = 0 without reading the row. It is the
// bias of SgemmStrided, which applies it to each tile of C; a product that runs
// elsewhere applies it to C first and then accumulates with beta = 1, which gives the
// same values.
func BiasRows(c []float32, ldc, rows int, bias []float32, beta float32) {
	for r := 0; r < rows; r++ {
		row := c[r*ldc : r*ldc+len(bias)]
		switch beta {
		case 0:
			copy(row, bias)
		case 1:
			for x, b := range bias {
				row[x] += b
			}
		default:
			for x, b := range bias {
				row[x] = beta*row[x] + b
			}
		}
	}
}

// serial runs the BLIS loop nest on the calling goroutine: for each NC column block
// and KC slice, pack that B block once and every MC row block of A, and sweep the
// microkernel over them.
func (p *product) serial() {
	if p.k == 0 || p.alpha == 0 {
		p.scaleC()
		return
	}
	mr, nr := p.kern.mr, p.kern.nr
	mc := max(blockM/mr, 1) * mr
	directA := p.inPlaceA()
	directB := !p.tB && p.pb == nil && p.inPlace(p.b, p.ldb, p.n, nr)
	ws := getWorkspace()
	defer putWorkspace(ws)
	for jc := 0; jc < p.n; jc += blockN {
		nc := min(blockN, p.n-jc)
		for pc := 0; pc < p.k; pc += blockK {
			kc := min(blockK, p.k-pc)
			var bv panels
			switch {
			case p.pb != nil:
				bv = panels{s: p.pb.block(jc, nc, pc, kc), step: nr * kc, stride: nr}
			case directB:
				bv = panels{s: p.b[pc*p.ldb+jc:], step: nr, stride: p.ldb}
			default:
				ws.b = grow(ws.b, roundUp(nc, nr)*kc)
				p.packB(ws.b, pc, kc, jc, nc)
				bv = panels{s: ws.b, step: nr * kc, stride: nr}
			}
			for ic := 0; ic < p.m; ic += mc {
				mcur := min(mc, p.m-ic)
				var av panels
				switch {
				case directA && p.tA:
					av = panels{s: p.a[pc*p.lda+ic:], step: mr, stride: p.lda}
				case directA:
					av = panels{s: p.a[ic*p.lda+pc:], step: mr * p.lda, stride: p.lda, rows: true}
				default:
					ws.a = grow(ws.a, roundUp(mcur, mr)*kc)
					p.packA(ws.a, ic, mcur, pc, kc)
					av = panels{s: ws.a, step: mr * kc, stride: mr}
				}
				p.macro(av, bv, ic, ic, ic+mcur, jc, jc, jc+nc, kc, pc == 0)
			}
		}
	}
}

// inPlaceMax bounds, in elements, the operands that serial reads in place instead of
// packing: 64 KiB stays in L1 and L2 across the product, whereas a strided read of a
// large operand touches a new cache set (and often a new page) every k step, where
// packing streams it once.
const inPlaceMax = 1 << 14

// inPlaceA is inPlace for A: a transposed A holds each k step's values contiguously,
// and a plain (row-major) one is read row by row by the RowA kernels, which need the
// same bound with the roles of rows and k swapped.
func (p *product) inPlaceA() bool {
	mr := p.kern.mr
	if p.tA {
		return p.inPlace(p.a, p.lda, p.m, mr)
	}
	return p.m*p.lda <= inPlaceMax && (roundUp(p.m, mr)-1)*p.lda+p.k <= len(p.a)
}

// inPlace reports whether serial may read an operand in place: it holds each k step's
// values contiguously (k rows of ld elements, cols of them used), it is small, and the
// kernel's reads stay inside the slice. The last panel is read at full width, past the
// last used row or column into whatever follows; those values reach only the rows or
// columns of an edge tile that are never copied out.
func (p *product) inPlace(s []float32, ld, cols, width int) bool {
	return p.k*ld <= inPlaceMax && (p.k-1)*ld+roundUp(cols, width) <= len(s)
}

// panels is where the microkernel finds one operand in a macro sweep: the panel of
// rows (or columns) q·width onwards starts at s[q·step] and holds one k step's width
// values contiguously every stride elements. Packed panels have step width·kc and
// stride width; an operand read in place has step width and its leading dimension as
// the stride. With rows set (A only), the panel is row-major instead: its rows are
// stride apart and a row's k steps contiguous, so step is width·stride.
type panels struct {
	s            []float32
	step, stride int
	rows         bool
}

// parallel is serial's loop nest with each KC slice split into two phases across
// threads: pack all of A's rows and the B block into shared buffers, then compute C in
// tiles of MC rows by a share of the columns, handed out dynamically.
func (pr *product) parallel(threads int) {
	p := new(product) // the tasks' closures share it; the caller's stays on its stack
	*p = *pr
	if p.k == 0 || p.alpha == 0 {
		p.scaleC()
		return
	}
	mr, nr := p.kern.mr, p.kern.nr
	mc := max(blockM/mr, 1) * mr
	ws := getWorkspace()
	defer putWorkspace(ws)
	aPanels := (p.m + mr - 1) / mr
	// Packing tasks cover ~32 KiB each: enough to amortise a task, small enough to balance.
	aPer := max(1, 8192/(mr*blockK))
	aTasks := (aPanels + aPer - 1) / aPer
	// Row blocks of equal size (at most MC), so that tiles cost alike: 400 rows are
	// 140+140+120, not 168+168+64.
	mBlocks := (p.m + mc - 1) / mc
	mc = roundUp((p.m+mBlocks-1)/mBlocks, mr)
	mBlocks = (p.m + mc - 1) / mc
	for jc := 0; jc < p.n; jc += blockN {
		nc := min(blockN, p.n-jc)
		bPanels := (nc + nr - 1) / nr
		bPer := max(1, 8192/(nr*blockK))
		bTasks := (bPanels + bPer - 1) / bPer
		if p.pb != nil {
			bTasks = 0
		}
		// Enough column chunks that every thread gets eight tiles or so: with fewer,
		// the last tile to finish leaves the other threads idle for a large fraction.
		nChunks := min(max(1, (8*threads+mBlocks-1)/mBlocks), bPanels)
		for pc := 0; pc < p.k; pc += blockK {
			kc := min(blockK, p.k-pc)
			ws.a = grow(ws.a, aPanels*mr*kc)
			ap, bp := ws.a, []float32(nil)
			if p.pb != nil {
				bp = p.pb.block(jc, nc, pc, kc)
			} else {
				ws.b = grow(ws.b, bPanels*nr*kc)
				bp = ws.b
			}
			pool.For(threads, aTasks+bTasks, func(t int) {
				if t < aTasks {
					lo := t * aPer * mr
					hi := min(lo+aPer*mr, p.m)
					p.packA(ap[lo*kc:], lo, hi-lo, pc, kc)
					return
				}
				t -= aTasks
				lo := t * bPer * nr
				hi := min(lo+bPer*nr, nc)
				p.packB(bp[lo*kc:], pc, kc, jc+lo, hi-lo)
			})
			first := pc == 0
			pool.For(threads, mBlocks*nChunks, func(t int) {
				ib, jb := t/nChunks, t%nChunks
				i0 := ib * mc
				i1 := min(i0+mc, p.m)
				q0, q1 := jb*bPanels/nChunks, (jb+1)*bPanels/nChunks
				j0, j1 := jc+q0*nr, min(jc+q1*nr, jc+nc)
				p.macro(panels{s: ap[i0*kc:], step: mr * kc, stride: mr}, panels{s: bp[q0*nr*kc:], step: nr * kc, stride: nr}, i0, i0, i1, j0, j0, j1, kc, first)
			})
		}
	}
}

// macro sweeps the microkernel over rows [i0, i1) and columns [j0, j1) of C, with av's
// panels from row ia and bv's from column jb onwards. The B micro-panel is the outer loop
// so it stays in L1 while A's micro-panels stream from L2. Tiles cut by the matrix edge
// go through a local buffer.
func (p *product) macro(av, bv panels, ia, i0, i1, jb, j0, j1, kc int, first bool) {
	kern := p.kern
	mr, nr := kern.mr, kern.nr
	beta, accumulate := p.beta, 1
	biasNow := first && p.bias != nil
	if !first || biasNow {
		beta = 1
	} else if beta == 0 {
		accumulate = 0
	}
	ldc := p.ldc
	for j := j0; j < j1; j += nr {
		bpan := &bv.s[(j-jb)/nr*bv.step]
		nn := min(nr, j1-j)
		for i := i0; i < i1; i += mr {
			apan := &av.s[(i-ia)/mr*av.step]
			mm := min(mr, i1-i)
			if biasNow {
				p.startTile(i, mm, j, nn)
			}
			if mm == mr && nn == nr {
				kern.call(kc, apan, av.stride, av.rows, bpan, bv.stride, &p.c[i*ldc+j], ldc, p.alpha, beta, accumulate)
				continue
			}
			var tile [maxTile]float32
			kern.call(kc, apan, av.stride, av.rows, bpan, bv.stride, &tile[0], nr, p.alpha, 0, 0)
			for r := 0; r < mm; r++ {
				dst := p.c[(i+r)*ldc+j : (i+r)*ldc+j+nn]
				src := tile[r*nr : r*nr+nn]
				if accumulate == 0 {
					copy(dst, src)
					continue
				}
				for x, v := range src {
					dst[x] = v + beta*dst[x]
				}
			}
		}
	}
}

// maxTile bounds mr·nr over all microkernels.
const maxTile = 14 * 32

// packA copies rows [i0, i0+mc) and columns [p0, p0+kc) of op(A) into MR-row panels,
// each stored k-major (the MR values of one k step together) and zero-padded to MR
// rows, which is the order the microkernel broadcasts them in.
func (p *product) packA(dst []float32, i0, mc, p0, kc int) {
	packPanels(dst, p.kern.mr, p.a, p.lda, p.tA, i0, mc, p0, kc)
}

// packB copies rows [p0, p0+kc) and columns [j0, j0+nc) of op(B) into NR-column
// panels, each stored k-major and zero-padded to NR columns.
func (p *product) packB(dst []float32, p0, kc, j0, nc int) {
	packPanels(dst, p.kern.nr, p.b, p.ldb, !p.tB, j0, nc, p0, kc)
}

// packPanels is A's and B's packing alike: it copies positions [x0, x0+n) along the
// panel axis and [p0, p0+kc) along k of src into w-wide panels, each stored k-major
// and zero-padded to w. kMajor says src already holds one k step's positions
// contiguously (at src[k*ld + x]); otherwise they lie at src[x*ld + k] and are
// interleaved.
func packPanels(dst []float32, w int, src []float32, ld int, kMajor bool, x0, n, p0, kc int) {
	for q := 0; q*w < n; q++ {
		d := dst[q*w*kc : (q+1)*w*kc]
		c0 := x0 + q*w
		nn := min(w, x0+n-c0)
		if kMajor {
			for k := 0; k < kc; k++ {
				row := src[(p0+k)*ld+c0 : (p0+k)*ld+c0+nn]
				dk := d[k*w : k*w+w]
				copy(dk, row)
				clear(dk[nn:])
			}
			continue
		}
		interleave(d, w, src[c0*ld+p0:], ld, nn, kc)
		for j := nn; j < w; j++ {
			for k := 0; k < kc; k++ {
				d[k*w+j] = 0
			}
		}
	}
}

// interleave writes dst[k·width+r] = src[r·ld+k] for r < rows ≤ width and k < kc:
// it packs rows of a row-major matrix as the columns of a panel, which is how the
// transposed operand of x·Wᵀ and a non-transposed A are packed. Groups of eight rows
// go through the 8×8 assembly transpose (a 14-row panel as rows 0–7 and 6–13, the
// overlap written twice with the same values); the rest runs four rows at a time so
// that single-element stores become runs of four.
func interleave(dst []float32, width int, src []float32, ld, rows, kc int) {
	if blocks := kc / 8; blocks > 0 && rows >= 8 && hasTranspose8() {
		last := (blocks-1)*8*width + rows // bounds that the assembly relies on
		_ = dst[last-1]
		_ = src[(rows-1)*ld+blocks*8-1]
		for r := 0; r < rows; r += 8 {
			r = min(r, rows-8)
			transpose8(&dst[r], width, &src[r*ld], ld, blocks)
		}
		if blocks*8 == kc {
			return
		}
		k0 := blocks * 8
		interleaveGo(dst[k0*width:], width, src[k0:], ld, rows, kc-k0)
		return
	}
	interleaveGo(dst, width, src, ld, rows, kc)
}

func interleaveGo(dst []float32, width int, src []float32, ld, rows, kc int) {
	r := 0
	for ; r+4 <= rows; r += 4 {
		s0 := src[r*ld : r*ld+kc]
		s1 := src[(r+1)*ld : (r+1)*ld+kc]
		s2 := src[(r+2)*ld : (r+2)*ld+kc]
		s3 := src[(r+3)*ld : (r+3)*ld+kc]
		for k := range s0 {
			d := dst[k*width+r : k*width+r+4]
			d[0], d[1], d[2], d[3] = s0[k], s1[k], s2[k], s3[k]
		}
	}
	for ; r < rows; r++ {
		for k, v := range src[r*ld : r*ld+kc] {
			dst[k*width+r] = v
		}
	}
}
