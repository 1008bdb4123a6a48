package main

import (
	"context"
	"errors"
	"fmt"
	"math"
	"os"

	"github.com/hashicorp/go-hclog"

	"github.com/kadapt/kadapt/core"
	"github.com/kadapt/kadapt/host/progress"
	"github.com/kadapt/kadapt/host/train"
)

// The ELEVATER protocol's search (as the paper ran it): 10-epoch trials scored on the
// validation split; first the learning rate with no weight decay, then the weight
// decay on a 97-point log grid from 1e-6 to 1e6 — 7 coarse points, then ±8, ±4, ±2
// and ±1 grid steps around the best so far.
var searchLRs = []float64{1e-6, 1e-5, 1e-4, 1e-3, 1e-2, 1e-1}

const (
	wdGridPoints  = 97
	searchEpochs  = 10
	wdCoarseEvery = 16
)

func wdGrid(i int) float64 { return math.Pow(10, -6+12*float64(i)/float64(wdGridPoints-1)) }

// paperSearch stops at the next step of a trial when ctx is cancelled; a search is
// not resumable (its trials are in a temporary directory), so nothing is kept.
func paperSearch(ctx context.Context, rc RunConfig, meth method, b core.Backend, task train.Task, names []string, log hclog.Logger, shown *progress.Display) (lr, wd float64, err error) {
	tmp, err := os.MkdirTemp("", "kadapt-search-")
	if err != nil {
		return 0, 0, err
	}
	defer os.RemoveAll(tmp)
	trials := 0
	// A trial's score is its last-epoch validation score, ties (the rule with a
	// handful of validation images) broken by lower validation loss.
	type score struct{ val, loss float64 }
	better := func(a, b score) bool { return a.val > b.val || (a.val == b.val && a.loss < b.loss) }
	trial := func(lr, wd float64) (score, error) {
		trc := rc
		trc.Train.LR, trc.Train.WeightDecay = lr, wd
		trc.Train.Epochs, trc.Train.Select, trc.Train.CheckpointEvery = searchEpochs, "last", 0
		worst := score{math.Inf(-1), math.Inf(1)}
		mdl, err := loadRunModel(b, trc)
		if err != nil {
			return worst, err
		}
		ttask := task
		ttask.Test = nil
		as, err := assemble(trc, meth, b, mdl, ttask, names, hclog.NewNullLogger(), shown)
		if err != nil {
			return worst, err
		}
		dir, err := os.MkdirTemp(tmp, "trial-")
		if err != nil {
			return worst, err
		}
		res, err := train.Run(b, as.model, as.task, trc.Train, train.Options{Dir: dir, Context: ctx})
		if errors.Is(err, train.ErrDiverged) {
			log.Info("search trial diverged", "lr", lr, "weight_decay", fmt.Sprintf("%.3g", wd))
			return worst, nil
		}
		if err != nil {
			return worst, err
		}
		trials++
		last := res.History[len(res.History)-1]
		s := score{last.Val, last.ValLoss}
		if math.IsNaN(s.val) || math.IsNaN(s.loss) {
			s = worst // diverged
		}
		log.Info("search trial", "n", trials, "lr", lr, "weight_decay", fmt.Sprintf("%.3g", wd), "val", fmt.Sprintf("%.4f", s.val), "val_loss", fmt.Sprintf("%.4f", s.loss))
		return s, nil
	}
	// At most: every learning rate, the coarse weight-decay grid, two points per
	// refinement step; a point already scored is counted without a trial.
	asked := 0
	searching := shown.Start("search", int64(len(searchLRs)+(wdGridPoints+wdCoarseEvery-1)/wdCoarseEvery+8))
	defer searching.End()
	counted := func(lr, wd float64, scoreOf func() (score, error)) (score, error) {
		v, err := scoreOf()
		asked++
		searching.Update(int64(asked), 0, fmt.Sprintf("lr %g weight decay %.3g", lr, wd))
		return v, err
	}
	bestLR, bestVal := searchLRs[0], score{math.Inf(-1), math.Inf(1)}
	for _, lr := range searchLRs {
		v, err := counted(lr, 0, func() (score, error) { return trial(lr, 0) })
		if err != nil {
			return 0, 0, err
		}
		if better(v, bestVal) {
			bestLR, bestVal = lr, v
		}
	}
	scores := map[int]score{}
	scoreAt := func(i int) (score, error) {
		return counted(bestLR, wdGrid(i), func() (score, error) {
			if v, ok := scores[i]; ok {
				return v, nil
			}
			v, err := trial(bestLR, wdGrid(i))
			scores[i] = v
			return v, err
		})
	}
	best := 0
	bestWD := score{math.Inf(-1), math.Inf(1)}
	for i := 0; i < wdGridPoints; i += wdCoarseEvery {
		v, err := scoreAt(i)
		if err != nil {
			return 0, 0, err
		}
		if better(v, bestWD) {
			best, bestWD = i, v
		}
	}
	for _, step := range []int{8, 4, 2, 1} {
		center := best
		for _, i := range []int{center - step, center + step} {
			if i < 0 || i >= wdGridPoints {
				continue
			}
			v, err := scoreAt(i)
			if err != nil {
				return 0, 0, err
			}
			if better(v, bestWD) {
				best, bestWD = i, v
			}
		}
	}
	log.Info("search done", "trials", trials, "lr", bestLR, "weight_decay", fmt.Sprintf("%.3g", wdGrid(best)), "val", fmt.Sprintf("%.4f", bestWD.val))
	return bestLR, wdGrid(best), nil
}
