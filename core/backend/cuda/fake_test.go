//go:build cuda

package cuda

// A recording driver lets every Backend method run without a GPU. It computes
// nothing, but it checks each call the way the hardware would punish a mistake:
// kernel names and parameter types against the signatures in kernels/*.cu, grid and
// block limits, device pointers against live allocations and copy sizes against
// buffer sizes, and each cuBLAS call's furthest element against its buffers.

import (
	"fmt"
	"regexp"
	"strings"
	"testing"

	"github.com/kadapt/kadapt/core"
	"github.com/kadapt/kadapt/core/backendtest"
)

type fakeDriver struct {
	sigs     map[string]signature
	next     uintptr
	live     map[uintptr]int // base -> bytes
	launches map[string]int
	gemms    int
	// bf16Gemms counts the products given bfloat16 operands.
	bf16Gemms int
	// zeroed counts the bytes memset32 has filled.
	zeroed int64
	errs   []string
}

func newFakeDriver(t *testing.T) *fakeDriver {
	t.Helper()
	src, err := kernelSource()
	if err != nil {
		t.Fatal(err)
	}
	sigs, err := kernelSignatures(src)
	if err != nil {
		t.Fatal(err)
	}
	return &fakeDriver{sigs: sigs, next: 1 << 20, live: map[uintptr]int{}, launches: map[string]int{}}
}

var kernelDecl = regexp.MustCompile(`extern "C" __global__ void (\w+)\(([^)]*)\)`)

// signature is a kernel's parameter list: C types spelled as args records them, and
// names.
type signature struct {
	kinds string
	names []string
}

// kernelSignatures reads each extern "C" kernel's parameter list from the source.
func kernelSignatures(src string) (map[string]signature, error) {
	sigs := map[string]signature{}
	for _, m := range kernelDecl.FindAllStringSubmatch(src, -1) {
		var kinds []byte
		var names []string
		for _, p := range strings.Split(m[2], ",") {
			p = strings.Join(strings.Fields(p), " ")
			names = append(names, p[strings.LastIndexAny(p, " *")+1:])
			switch {
			case strings.Contains(p, "*"):
				kinds = append(kinds, 'p')
			case strings.HasPrefix(p, "Idx "):
				kinds = append(kinds, 'x')
			case strings.HasPrefix(p, "unsigned long long "):
				kinds = append(kinds, 'u')
			case strings.HasPrefix(p, "long long "):
				kinds = append(kinds, 'l')
			case strings.HasPrefix(p, "int "):
				kinds = append(kinds, 'i')
			case strings.HasPrefix(p, "float "):
				kinds = append(kinds, 'f')
			default:
				return nil, fmt.Errorf("kernel %s: parameter %q has a type the packer does not know", m[1], p)
			}
		}
		if _, dup := sigs[m[1]]; dup {
			return nil, fmt.Errorf("kernel %s is defined twice", m[1])
		}
		sigs[m[1]] = signature{string(kinds), names}
	}
	return sigs, nil
}

func (f *fakeDriver) errorf(format string, a ...any) {
	if len(f.errs) < 20 {
		f.errs = append(f.errs, fmt.Sprintf(format, a...))
	}
}

// span checks that [p, p+bytes) lies in one live allocation.
func (f *fakeDriver) span(what string, p uintptr, bytes int) {
	size, ok := f.live[p]
	switch {
	case !ok:
		f.errorf("%s: %#x is not a live allocation", what, p)
	case bytes > size:
		f.errorf("%s: %d bytes at %#x overrun its %d-byte allocation", what, bytes, p, size)
	}
}

func (f *fakeDriver) alloc(bytes int) (uintptr, error) {
	p := f.next
	f.next += uintptr(bytes+255) &^ 255
	f.live[p] = bytes
	return p, nil
}

func (f *fakeDriver) free(p uintptr) error {
	f.span("free", p, 0)
	delete(f.live, p)
	return nil
}

func (f *fakeDriver) memset32(p uintptr, v uint32, n int) error {
	f.zeroed += 4 * int64(n)
	if n > 0 {
		f.span("memset", p, 4*n)
	}
	return nil
}

func (f *fakeDriver) upload(p uintptr, src []float32) error {
	if len(src) > 0 {
		f.span("upload", p, 4*len(src))
	}
	return nil
}

func (f *fakeDriver) download(dst []float32, p uintptr) (uint32, error) {
	if len(dst) > 0 {
		f.span("download", p, 4*len(dst))
	}
	clear(dst)
	return 0, nil
}

func (f *fakeDriver) sync() (uint32, error) { return 0, nil }

func (f *fakeDriver) copy(dst, src uintptr, n int) error {
	if n > 0 {
		f.span("copy dst", dst, 4*n)
		f.span("copy src", src, 4*n)
	}
	return nil
}

func (f *fakeDriver) launch(name string, gx, gy, gz, bx, by int, a *args) error {
	f.launches[name]++
	sig, ok := f.sigs[name]
	if !ok {
		f.errorf("launch of %s, which kernels/ does not define", name)
		return nil
	}
	if string(a.kinds) != sig.kinds || strings.Join(a.names, ",") != strings.Join(sig.names, ",") {
		f.errorf("%s: packed (%s) as %q, kernel takes (%s) as %q", name, strings.Join(a.names, ", "), a.kinds,
			strings.Join(sig.names, ", "), sig.kinds)
	}
	if gx < 1 || gy < 1 || gz < 1 || gx > maxGridX || gy > maxGridYZ || gz > maxGridYZ {
		f.errorf("%s: grid %d×%d×%d", name, gx, gy, gz)
	}
	// Warp shuffles with a full mask and the row kernels' warp mode assume whole warps.
	if bx*by > 1024 || bx%32 != 0 {
		f.errorf("%s: block %d×%d", name, bx, by)
	}
	for i, k := range a.kinds {
		if k != 'p' {
			continue
		}
		p := uintptr(leU64(a.buf[a.offs[i]:]))
		if _, live := f.live[p]; p != 0 && !live {
			f.errorf("%s: parameter %d is %#x, not a live allocation", name, i, p)
		}
	}
	return nil
}

// gemm checks that the furthest element each operand's walk reaches is inside it.
func (f *fakeDriver) gemm(g gemmPlan, tf32, bf16 bool, x, y, c uintptr, alpha, beta float32) error {
	f.gemms++
	in := 4
	if bf16 {
		in = 2
		f.bf16Gemms++
	}
	last := func(stride int64, ld, rows, cols int) int {
		if rows == 0 || cols == 0 || g.batch == 0 {
			return 0
		}
		if ld < rows {
			f.errorf("gemm: leading dimension %d below %d rows (%+v)", ld, rows, g)
		}
		return int(stride*int64(g.batch-1)) + (cols-1)*ld + rows
	}
	xr, xc := g.m, g.k
	if g.transX {
		xr, xc = xc, xr
	}
	yr, yc := g.k, g.n
	if g.transY {
		yr, yc = yc, yr
	}
	f.span("gemm X", x, in*last(g.strideX, g.ldx, xr, xc))
	f.span("gemm Y", y, in*last(g.strideY, g.ldy, yr, yc))
	f.span("gemm C", c, 4*last(g.strideC, g.ldc, g.m, g.n))
	return nil
}

func (f *fakeDriver) setTF32(bool) error                    { return nil }
func (f *fakeDriver) memInfo() (free, total int64, e error) { return 0, 0, nil }
func (f *fakeDriver) smCount() int                          { return 132 }
func (f *fakeDriver) describe() string                      { return "fake" }
func (f *fakeDriver) close()                                {}

// TestKernelCatalogue holds kernelNames and the kernel sources to each other.
func TestKernelCatalogue(t *testing.T) {
	src, err := kernelSource()
	if err != nil {
		t.Fatal(err)
	}
	sigs, err := kernelSignatures(src)
	if err != nil {
		t.Fatal(err)
	}
	listed := map[string]bool{}
	for _, n := range kernelNames {
		listed[n] = true
		if _, ok := sigs[n]; !ok {
			t.Errorf("kernel %s is listed but not defined in kernels/", n)
		}
	}
	for n := range sigs {
		if !listed[n] {
			t.Errorf("kernel %s is defined but not in kernelNames, so it is never loaded", n)
		}
	}
	if !strings.Contains(src, "__device__ unsigned int kd_status;") {
		t.Error("the kernels' status word kd_status is missing; loading would fail")
	}
}

// TestEveryMethodAgainstRecordingDriver drives the whole conformance suite through
// the recording driver. The numbers are meaningless (nothing is computed), so the
// suite's value checks fail by design; what must hold is that no method panics on
// valid input and that every launch and copy passes the driver's checks. Every kernel
// must be reached.
func TestEveryMethodAgainstRecordingDriver(t *testing.T) {
	for _, prec := range []Precision{FP32, BF16} {
		t.Run(prec.String(), func(t *testing.T) { checkEveryMethod(t, prec) })
	}
}

func checkEveryMethod(t *testing.T, prec Precision) {
	f := newFakeDriver(t)
	b, err := newBackend(f, "cuda:fake", Options{Precision: prec})
	if err != nil {
		t.Fatal(err)
	}
	failures := backendtest.Check(func() core.Backend { return b }, backendtest.DefaultTolerances())
	// The fused attention of core.FusedAttention is beyond the suite.
	qkv, probs := b.Alloc(core.Shape{2, 5, 6}), b.Alloc(core.Shape{2, 3, 5, 5})
	b.AttentionForward(qkv, probs, qkv, qkv, qkv, 3, true, 0.5)
	b.AttentionBackward(qkv, nil, qkv, qkv, qkv, qkv, qkv, probs, 3, 0.5, false, false, true)
	// So are core.FusedEpilogues.
	pre, bias, stat := b.Alloc(core.Shape{3, 7}), b.Alloc(core.Shape{7}), b.Alloc(core.Shape{3})
	b.BiasActivation(core.GELU, pre, pre, bias)
	b.AddLayerNorm(pre, pre, stat, stat, pre, pre, bias, bias, 1e-5)
	for _, x := range []*core.Tensor{qkv, probs, pre, bias, stat} {
		b.Release(x)
	}
	for _, fl := range failures {
		for _, e := range fl.Errors {
			if strings.Contains(e, "panic") {
				t.Errorf("%s: %s", fl.Case, firstLine(e))
			}
		}
	}
	for _, e := range f.errs {
		t.Error(e)
	}
	for _, n := range kernelNames {
		if f.launches[n] == 0 && (n != "k_to_bf16" || prec == BF16) {
			t.Errorf("kernel %s was never launched by the conformance cases", n)
		}
	}
	if f.gemms == 0 {
		t.Error("no cuBLAS call was made")
	}
	if (f.bf16Gemms > 0) != (prec == BF16) {
		t.Errorf("%d of %d products had bfloat16 operands under precision %v", f.bf16Gemms, f.gemms, prec)
	}
	// The pool must hand every buffer back: after the suite, nothing is in use.
	if b.inUse != 0 {
		t.Errorf("%d bytes still in use after every case released its tensors", b.inUse)
	}
}

func firstLine(s string) string {
	line, _, _ := strings.Cut(s, "\n")
	return line
}

// TestAllocatorReuses checks the caching allocator on the recording driver: released
// buffers come back for the same bucket, so a repeated step allocates nothing new.
func TestAllocatorReuses(t *testing.T) {
	f := newFakeDriver(t)
	b, err := newBackend(f, "cuda:fake", Options{})
	if err != nil {
		t.Fatal(err)
	}
	step := func() {
		var ts []*core.Tensor
		for _, s := range []core.Shape{{8, 768}, {8, 3072}, {1}, {8, 50, 768}, {8, 770}} {
			ts = append(ts, b.Alloc(s))
		}
		for _, x := range ts {
			b.Release(x)
		}
	}
	step()
	first := b.mallocs
	for range 3 {
		step()
	}
	if b.mallocs != first {
		t.Fatalf("steady state made %d new device allocations", b.mallocs-first)
	}
	x := b.Alloc(core.Shape{3})
	b.Release(x)
	defer func() {
		if recover() == nil {
			t.Error("a second Release of the same storage did not panic")
		}
	}()
	b.Release(x)
}

func TestAllocRejectsBadShapes(t *testing.T) {
	f := newFakeDriver(t)
	b, err := newBackend(f, "cuda:fake", Options{})
	if err != nil {
		t.Fatal(err)
	}
	for _, s := range []core.Shape{{-1, 3}, {1 << 20, 1 << 20, 1 << 20}} {
		func() {
			defer func() {
				r := recover()
				if r == nil || !strings.Contains(fmt.Sprint(r), "cuda: Alloc") {
					t.Errorf("Alloc(%v): recovered %v, want a cuda: Alloc panic", s, r)
				}
			}()
			b.Alloc(s)
		}()
	}
}
