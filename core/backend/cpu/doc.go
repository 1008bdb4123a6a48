// Package cpu is kadapt's default compute backend: pure Go, float32 storage in Go
// slices, every op of core.Backend implemented directly on []float32.
//
// The package registers itself as "cpu" with core.RegisterBackend, so importing it
// (usually with a blank import) makes core.OpenBackend("cpu") work; New returns a
// fresh instance directly.
//
// # Matrix products
//
// MatMul runs on the gemm subpackage: packed, cache-blocked products around AVX-512 or
// AVX2+FMA assembly microkernels chosen at run time, pure Go with no cgo, 5–8× gonum's
// Sgemm on the ViT-B/32 shapes (docs/performance.md). Where the CPU or architecture
// has neither instruction set, or KADAPT_GEMM=none is set, products go through gonum's
// blas32 package instead: gonum's native Sgemm by default. Building with `-tags
// openblas` compiles openblas.go, which installs gonum's cgo binding to the system
// BLAS and routes every product there (gonum.org/v1/netlib, which go.mod records, so
// only the library itself is needed):
//
//	apt-get install libopenblas-dev   # or your platform's OpenBLAS package
//
// and build with cgo enabled and the library named, since the binding leaves linking
// to the user:
//
//	CGO_LDFLAGS=-lopenblas go build -tags openblas ./...
//
// GEMM (and `host version`) names the implementation in use.
//
// A weight multiplied again with no write in between (a frozen layer, in every step
// after the first) is served from a packed copy instead of being repacked into the
// kernel's panels on every product: each buffer carries a version that every op which
// may write it bumps (only MatMul's operands and Download read without bumping), and a
// copy is made at the second use at one version and dropped at the first use after a
// write, or when the buffer is released. Trainable weights, written by the optimizer
// between steps, are never copied. The copies are bounded by packCacheLimit (2 GiB;
// KADAPT_CPU_PACK_CACHE_MIB sets it, 0 turns the copies off);
// a frozen ViT-B/32 backbone takes about 0.7 GiB.
//
// A batched product whose operands are [batch, m, k] × [k, n] with a shared right-hand
// side is folded into one [batch·m, k] × [k, n] product, which is what every linear
// layer applied to [batch, tokens, dim] activations looks like; one large product keeps
// the blocking and threading effective. Other batched products run one product per
// batch entry; when each entry is too small to parallelise internally (attention's
// [tokens, head dim] products), the batch entries are split across threads instead.
//
// A linear layer's bias is added as each tile of the output is first written
// (core.BiasedMatMul), not by a pass of its own. Multi-head attention is fused
// (core.FusedAttention): each head's products read q, k and v where the projections
// wrote them, through strides, instead of permuting the heads out and back; the device
// option attention=composed ("cpu?attention=composed") keeps the composed path, which
// gives the same bits.
//
// # Memory pool
//
// Training allocates and releases the same activation and gradient shapes every step.
// Alloc therefore draws storage from a free list bucketed by size class (eight classes
// per power of two, so a buffer is at most 12.5% larger than asked for) and Release
// returns it there; an Alloc after a Release of the same size reuses the buffer and only
// zero-fills it. Go's garbage collector would otherwise see hundreds of megabytes of
// short-lived slices per step, and both the allocation and the GC's scanning and
// zeroing would show up in the step time. Pooled memory is never returned to the
// runtime on its own; Backend.Trim drops it when a caller knows the working set has
// shrunk (after training, before evaluation of a different model size).
//
// # Threading
//
// Elementwise ops, reductions, softmax, layer norm, permutes and the optimizer steps
// split their rows (or, for flat ops, their element range) across GOMAXPROCS
// goroutines when they touch more than parallelMin (32Ki) elements and run serially
// below that. The goroutines are the worker pool the matrix products use
// (internal/pool), whose threads poll briefly after each job, so an op that follows a
// product finds the other core still awake. Handing work to a worker and waiting for
// it costs on the order of a microsecond; below ~32Ki float32 elements the op itself takes only a few
// microseconds, so splitting would cost more than it saves. The serial path performs
// no heap allocation: kernels take slices and precomputed strides held in fixed-size
// arrays, and the closures that fan work out to goroutines are only created on the
// parallel path.
//
// Sums that feed a single scalar (losses, Σx², full reductions) are accumulated in
// float64 over fixed-size blocks and then added in block order, so the result does not
// depend on how many goroutines ran; row and column reductions accumulate in float64
// as well, which keeps them within float32 rounding of the float64 reference backend
// even over the 12,800 rows of a ViT-B/32 batch.
package cpu
