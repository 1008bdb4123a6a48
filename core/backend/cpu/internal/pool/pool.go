// Package pool is the CPU backend's worker threads: long-lived goroutines shared by the
// matrix products (package gemm) and the elementwise ops. Sharing them is what keeps an
// op that follows a product on both cores: the pool's threads poll for the next job
// for a while after each one, and when the elementwise ops started goroutines of their
// own instead, a polling thread could hold the second core while the op's new
// goroutine waited for it (the likely reason for the gain below). A ViT-B/32 LoRA step
// (host bench, batch 8, two threads, the two builds alternating) ran 1.06× faster in
// training and 1.04× in inference after the switch (docs/performance.md).
package pool

import (
	"runtime"
	"sync"
	"sync/atomic"
	"time"
)

// A job is n tasks handed out by an atomic counter, so that a worker the operating
// system descheduled (the machine is often shared) simply takes fewer tasks instead of
// holding everyone up at the barrier.
type job struct {
	n    int64
	next atomic.Int64
	fn   func(task int)
	// busy counts the workers still inside work, so that the caller can wait for them
	// briefly without parking (spinWait).
	busy atomic.Int32
	wg   sync.WaitGroup
}

func (j *job) work() {
	for {
		t := j.next.Add(1) - 1
		if t >= j.n {
			return
		}
		j.fn(int(t))
	}
}

// workers is a set of long-lived worker goroutines that block on a channel between
// products (after polling it for spinWait) rather than spinning, so that nothing burns
// CPU while the rest of a training step runs serially.
var workers struct {
	mu      sync.Mutex
	started int
	jobs    chan *job
}

// ensureWorkers starts workers until there are at least n.
func ensureWorkers(n int) {
	workers.mu.Lock()
	defer workers.mu.Unlock()
	if workers.jobs == nil {
		workers.jobs = make(chan *job, 256)
	}
	for ; workers.started < n; workers.started++ {
		go func() {
			for {
				j := nextJob()
				j.work()
				j.busy.Add(-1)
				j.wg.Done()
			}
		}()
	}
}

// For runs fn(0..n-1) on up to p goroutines, the caller among them. Tasks must not call
// For themselves: the workers never wait on each other, which is what rules out
// deadlock when several goroutines multiply at once.
func For(p, n int, fn func(task int)) {
	if p > n {
		p = n
	}
	if p <= 1 {
		for t := 0; t < n; t++ {
			fn(t)
		}
		return
	}
	ensureWorkers(p - 1)
	j := &job{n: int64(n), fn: fn}
	j.wg.Add(p - 1)
	j.busy.Store(int32(p - 1))
	for i := 0; i < p-1; i++ {
		workers.jobs <- j
	}
	j.work()
	pollFor(func() bool { return j.busy.Load() == 0 })
	j.wg.Wait()
}

// spinWait is how long a worker looks for the next job, and the caller for its workers
// to finish, before parking. A product runs two parallel phases per KC slice; parking
// between them costs each wake-up an OS futex call and, in a virtual machine, an
// interrupt to a halted vCPU, which on the 400-row q/k/v product (six phases in
// ~2.5 ms) measured a tenth of its time on two threads (~175 against ~197 GFLOP/s,
// docs/performance.md). Past this bound nothing spins, so idle threads still leave the
// cores to the rest of a step.
const spinWait = 50 * time.Microsecond

// pollFor calls done until it reports true or spinWait has passed, and says which. It
// reads the clock only every 64 calls: a clock read costs more than done, and reading
// it on every call put clock reads at 13% of the demo's CPU time (perf record).
func pollFor(done func() bool) bool {
	start := time.Now()
	for i := 1; ; i++ {
		if done() {
			return true
		}
		if i%64 == 0 && time.Since(start) >= spinWait {
			return false
		}
	}
}

// nextJob receives the next job, polling for spinWait before blocking.
func nextJob() *job {
	var j *job
	if pollFor(func() bool {
		select {
		case j = <-workers.jobs:
			return true
		default:
			return false
		}
	}) {
		return j
	}
	return <-workers.jobs
}

// Threads is how many goroutines an op may use.
func Threads() int { return runtime.GOMAXPROCS(0) }
