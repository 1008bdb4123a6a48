package train

import "math/rand/v2"

// batchCount is the number of batches an epoch of n examples trains: a last batch of
// one example is dropped when the epoch has others (BatchNorm needs two; PyTorch's
// drop_last would drop it too). The loss average, the schedule and epochBatches all
// use this one count.
func batchCount(n, batch int) int {
	batches := (n + batch - 1) / batch
	if batches > 1 && n%batch == 1 {
		batches--
	}
	return batches
}

// epochBatches cuts an epoch's order into batchCount batches, leaving out the first
// skip (trained before a mid-epoch checkpoint).
func epochBatches(order []int, batch, skip int) [][]int {
	n := len(order)
	out := make([][]int, batchCount(n, batch))
	for bi := range out {
		out[bi] = order[bi*batch : min((bi+1)*batch, n)]
	}
	return out[min(skip, len(out)):]
}

// permutation is the epoch's example order, a pure function of (seed, epoch) so a
// resumed run sees exactly the batches an uninterrupted one would.
func permutation(n int, seed uint64, epoch int) []int {
	rng := rand.New(rand.NewPCG(seed, uint64(epoch)+0x9e3779b9))
	return rng.Perm(n)
}
