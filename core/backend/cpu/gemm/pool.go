package gemm

import (
	"runtime"
	"sync"
	"sync/atomic"
)

// A job is n tasks handed out by an atomic counter, so that a worker the operating
// system descheduled (the machine is often shared) simply takes fewer tasks instead of
// holding everyone up at the barrier.
type job struct {
	n    int64
	next atomic.Int64
	fn   func(task int)
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

// pool is a set of long-lived worker goroutines that block on a channel between
// products rather than spinning, so that nothing burns CPU while the rest of a training
// step (elementwise ops, the optimizer) runs.
var pool struct {
	mu      sync.Mutex
	started int
	jobs    chan *job
}

// ensureWorkers starts workers until there are at least n.
func ensureWorkers(n int) {
	pool.mu.Lock()
	defer pool.mu.Unlock()
	if pool.jobs == nil {
		pool.jobs = make(chan *job, 256)
	}
	for ; pool.started < n; pool.started++ {
		go func() {
			for j := range pool.jobs {
				j.work()
				j.wg.Done()
			}
		}()
	}
}

// parallelFor runs fn(0..n-1) on up to p goroutines, the caller among them. Tasks must
// not call parallelFor themselves: the workers never wait on each other, which is what
// rules out deadlock when several goroutines multiply at once.
func parallelFor(p, n int, fn func(task int)) {
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
	for i := 0; i < p-1; i++ {
		pool.jobs <- j
	}
	j.work()
	j.wg.Wait()
}

// threads is how many goroutines a product may use.
func threads() int { return runtime.GOMAXPROCS(0) }
