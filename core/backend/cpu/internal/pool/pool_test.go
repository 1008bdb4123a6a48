package pool

import (
	"sync"
	"sync/atomic"
	"testing"
)

func TestForRunsEveryTaskOnce(t *testing.T) {
	for _, c := range []struct{ p, n int }{{1, 5}, {2, 1}, {2, 0}, {3, 100}, {8, 7}, {4, 1000}} {
		counts := make([]atomic.Int32, c.n)
		For(c.p, c.n, func(task int) { counts[task].Add(1) })
		for i := range counts {
			if got := counts[i].Load(); got != 1 {
				t.Errorf("For(%d, %d): task %d ran %d times", c.p, c.n, i, got)
			}
		}
	}
}

// TestForConcurrentCallers has several goroutines share the workers at once, as the
// products of concurrent backends do: each call must still run all of its own tasks
// and return, whichever workers took its job.
func TestForConcurrentCallers(t *testing.T) {
	const callers, rounds, n = 6, 200, 17
	var wg sync.WaitGroup
	for c := 0; c < callers; c++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for r := 0; r < rounds; r++ {
				var sum atomic.Int64
				For(3, n, func(task int) { sum.Add(int64(task)) })
				if got := sum.Load(); got != n*(n-1)/2 {
					t.Errorf("a call's tasks summed to %d, want %d", got, n*(n-1)/2)
					return
				}
			}
		}()
	}
	wg.Wait()
}
