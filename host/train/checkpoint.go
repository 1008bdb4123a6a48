package train

import (
	"context"
	"crypto/sha256"
	"encoding/binary"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"math"
	"path/filepath"
	"sort"
	"strconv"
	"strings"

	"github.com/kadapt/kadapt/backbones/safetensors"
	"github.com/kadapt/kadapt/core"
	"github.com/kadapt/kadapt/core/optim"
	"github.com/kadapt/kadapt/host/jsondiff"
)

// CheckpointPath is where the run directory runDir keeps its checkpoint: the loop
// writes it there, and resume, export and a sweep's status look for it there.
func CheckpointPath(runDir string) string { return filepath.Join(runDir, "checkpoint.safetensors") }

// checkpoint layout: every trainable parameter under its name, BatchNorm running
// statistics, the optimizer's state under "optim.", and the loop state in metadata.
func saveCheckpoint(path string, m Model, o optim.Optimizer, st *state) error {
	tensors := map[string]safetensors.Tensor{}
	put := func(name string, t *core.Tensor) {
		d := make([]float32, t.Size())
		t.Backend().Download(d, t)
		tensors[name] = safetensors.Tensor{Shape: append([]int(nil), t.Shape()...), Data: d}
	}
	for _, p := range m.Trainable() {
		put("param."+p.Name, p.Value)
	}
	bn := m.Head().BN
	put("buffer.head.bn.running_mean", bn.RunningMean)
	put("buffer.head.bn.running_var", bn.RunningVar)
	ot, ometa := o.StateDict()
	for k, t := range ot {
		put("optim."+k, t)
	}
	for name, d := range st.bestWeights {
		tensors["best."+name] = safetensors.Tensor{Shape: []int{len(d)}, Data: d}
	}
	meta := map[string]string{}
	for k, v := range ometa {
		meta["optim."+k] = v
	}
	hist, _ := json.Marshal(historyJSON(st.history))
	sel, _ := json.Marshal(jsonSafe(st.selected))
	meta["epoch"] = strconv.Itoa(st.epoch)
	meta["step"] = strconv.Itoa(st.step)
	meta["batch"] = strconv.Itoa(st.batch)
	meta["epoch_loss"] = strconv.FormatFloat(st.epochLoss, 'g', -1, 64)
	meta["best"] = strconv.FormatFloat(st.best, 'g', -1, 64)
	meta["best_loss"] = strconv.FormatFloat(st.bestLoss, 'g', -1, 64)
	meta["since_best"] = strconv.Itoa(st.sinceBest)
	meta["history"] = string(hist)
	meta["selected"] = string(sel)
	meta["config"] = string(st.identity)
	meta[checksumKey] = checkpointDigest(tensors, meta)
	return safetensors.WriteFile(path, tensors, meta)
}

// checksumKey is the metadata entry holding checkpointDigest.
const checksumKey = "sha256"

// checkpointDigest is the SHA-256 of everything a checkpoint holds except the digest
// itself: each tensor's name, shape and float32 bits in name order, then each metadata
// key and value in key order, every field length-prefixed. A flipped byte anywhere is
// found before anything is loaded.
func checkpointDigest(tensors map[string]safetensors.Tensor, meta map[string]string) string {
	h := sha256.New()
	buf := make([]byte, 0, 1<<16)
	flush := func() { h.Write(buf); buf = buf[:0] }
	field := func(s string) {
		buf = binary.LittleEndian.AppendUint64(buf, uint64(len(s)))
		buf = append(buf, s...)
		flush()
	}
	names := make([]string, 0, len(tensors))
	for n := range tensors {
		names = append(names, n)
	}
	sort.Strings(names)
	for _, n := range names {
		t := tensors[n]
		field(n)
		buf = binary.LittleEndian.AppendUint64(buf, uint64(len(t.Shape)))
		for _, d := range t.Shape {
			buf = binary.LittleEndian.AppendUint64(buf, uint64(d))
		}
		buf = binary.LittleEndian.AppendUint64(buf, uint64(len(t.Data)))
		for _, v := range t.Data {
			if len(buf)+4 > cap(buf) {
				flush()
			}
			buf = binary.LittleEndian.AppendUint32(buf, math.Float32bits(v))
		}
		flush()
	}
	keys := make([]string, 0, len(meta))
	for k := range meta {
		if k != checksumKey {
			keys = append(keys, k)
		}
	}
	sort.Strings(keys)
	for _, k := range keys {
		field(k)
		field(meta[k])
	}
	return hex.EncodeToString(h.Sum(nil))
}

func historyJSON(h []EpochMetrics) []EpochMetrics {
	out := make([]EpochMetrics, len(h))
	for i, e := range h {
		out[i] = jsonSafe(e)
	}
	return out
}

// loadCheckpoint verifies the checkpoint at path — its digest, that it was written
// under the same Identity, that its loop state is one this run can reach — and only
// then loads it into m, o and st. batches is the number of steps an epoch.
func loadCheckpoint(path string, m Model, o optim.Optimizer, st *state, cfg Config, batches int) error {
	f, err := safetensors.Open(path)
	if err != nil {
		return fmt.Errorf("resume: %w", err)
	}
	defer f.Close()
	tensors := map[string]safetensors.Tensor{}
	for _, n := range f.Names() {
		info, _ := f.Info(n)
		d, err := f.Float32s(n)
		if err != nil {
			return fmt.Errorf("resume: %s: %w", path, err)
		}
		tensors[n] = safetensors.Tensor{Shape: info.Shape, Data: d}
	}
	meta := f.Metadata()
	sum, ok := meta[checksumKey]
	if !ok {
		return fmt.Errorf("resume: %s has no checksum (written by a kadapt before checkpoints had one, or not a kadapt checkpoint): it cannot be verified", path)
	}
	if got := checkpointDigest(tensors, meta); got != sum {
		return fmt.Errorf("resume: %s is corrupt: its contents hash to SHA-256 %s, but it was written with %s", path, got, sum)
	}
	key, was, now, differ, err := jsondiff.First([]byte(meta["config"]), st.identity)
	if err != nil {
		return fmt.Errorf("resume: %s: metadata \"config\": %v", path, err)
	}
	if differ {
		return fmt.Errorf("resume: %s was written with %s = %s, but the run's configuration now says %s: a run's configuration cannot change between a stop and its resumption (start a new run instead)", path, key, was, now)
	}
	loaded := state{sel: st.sel, identity: st.identity}
	if err := loaded.parseMeta(meta); err != nil {
		return fmt.Errorf("resume: %s: %w", path, err)
	}
	if err := loaded.check(cfg, batches); err != nil {
		return fmt.Errorf("resume: %s: %w", path, err)
	}
	get := func(name string, size int) ([]float32, error) {
		t, ok := tensors[name]
		if !ok {
			return nil, fmt.Errorf("resume: %s: no tensor %q", path, name)
		}
		if len(t.Data) != size {
			return nil, fmt.Errorf("resume: %s: tensor %q has %d values, the model wants %d", path, name, len(t.Data), size)
		}
		return t.Data, nil
	}
	weights := weightTensors(m)
	for name, t := range weights {
		if _, err := get(name, t.Size()); err != nil {
			return err
		}
	}
	ostate := map[string][]float32{}
	ometa := map[string]string{}
	loaded.bestWeights = map[string][]float32{}
	for n, t := range tensors {
		switch {
		case strings.HasPrefix(n, "optim."):
			ostate[n[len("optim."):]] = t.Data
		case strings.HasPrefix(n, "best."):
			w, ok := weights[n[len("best."):]]
			if !ok || w.Size() != len(t.Data) {
				return fmt.Errorf("resume: %s: tensor %q matches no weight of the model", path, n)
			}
			loaded.bestWeights[n[len("best."):]] = t.Data
		}
	}
	for k, v := range meta {
		if strings.HasPrefix(k, "optim.") {
			ometa[k[len("optim."):]] = v
		}
	}
	if err := o.LoadStateDict(ostate, ometa); err != nil {
		return fmt.Errorf("resume: %s: %w", path, err)
	}
	for name, t := range weights {
		d, _ := get(name, t.Size())
		t.Backend().Upload(t, d)
	}
	*st = loaded
	return nil
}

// parseMeta reads the loop state from a checkpoint's metadata.
func (s *state) parseMeta(meta map[string]string) error {
	ints := map[string]*int{"epoch": &s.epoch, "step": &s.step, "since_best": &s.sinceBest, "batch": &s.batch}
	for _, k := range []string{"epoch", "step", "since_best", "batch"} {
		v, err := strconv.Atoi(meta[k])
		if err != nil {
			return fmt.Errorf("metadata %q: %v", k, err)
		}
		*ints[k] = v
	}
	floats := map[string]*float64{"best": &s.best, "best_loss": &s.bestLoss, "epoch_loss": &s.epochLoss}
	for _, k := range []string{"best", "best_loss", "epoch_loss"} {
		v, err := strconv.ParseFloat(meta[k], 64)
		if err != nil {
			return fmt.Errorf("metadata %q: %v", k, err)
		}
		*floats[k] = v
	}
	if err := json.Unmarshal([]byte(meta["history"]), &s.history); err != nil {
		return fmt.Errorf("metadata \"history\": %v", err)
	}
	if err := json.Unmarshal([]byte(meta["selected"]), &s.selected); err != nil {
		return fmt.Errorf("metadata \"selected\": %v", err)
	}
	return nil
}

// check refuses loop states that no run under cfg reaches: the checksum shows a
// checkpoint is as written, this shows it was written by this loop.
func (s *state) check(cfg Config, batches int) error {
	switch {
	case s.epoch < 0 || s.epoch > cfg.Epochs:
		return fmt.Errorf("metadata \"epoch\" = %d is outside 0..%d (train.epochs)", s.epoch, cfg.Epochs)
	case s.batch < 0 || s.batch > batches || (s.batch > 0 && s.epoch == cfg.Epochs):
		return fmt.Errorf("metadata \"batch\" = %d is not a step of epoch %d (%d steps an epoch)", s.batch, s.epoch+1, batches)
	case s.step != s.epoch*batches+s.batch:
		return fmt.Errorf("metadata \"step\" = %d, but epoch %d and batch %d make %d at %d steps an epoch", s.step, s.epoch, s.batch, s.epoch*batches+s.batch, batches)
	case len(s.history) != s.epoch:
		return fmt.Errorf("metadata \"history\" has %d epochs, the checkpoint is at epoch %d", len(s.history), s.epoch)
	case s.sinceBest < 0 || s.sinceBest > s.epoch:
		return fmt.Errorf("metadata \"since_best\" = %d is outside 0..%d", s.sinceBest, s.epoch)
	case math.IsNaN(s.epochLoss) || math.IsInf(s.epochLoss, 0) || s.epochLoss < 0 || (s.batch == 0 && s.epochLoss != 0):
		return fmt.Errorf("metadata \"epoch_loss\" = %v is not the summed loss of %d steps", s.epochLoss, s.batch)
	}
	for i, em := range s.history {
		if em.Epoch != i+1 || em.Step != (i+1)*batches {
			return fmt.Errorf("metadata \"history\": entry %d is epoch %d at step %d, want epoch %d at step %d", i, em.Epoch, em.Step, i+1, (i+1)*batches)
		}
	}
	if s.epoch == 0 {
		if !math.IsInf(s.best, -1) {
			return fmt.Errorf("metadata \"best\" = %v before any epoch ended", s.best)
		}
		return nil
	}
	if math.IsNaN(s.best) || math.IsInf(s.best, 0) {
		return fmt.Errorf("metadata \"best\" = %v is not a finite score", s.best)
	}
	if math.IsNaN(s.bestLoss) {
		return fmt.Errorf("metadata \"best_loss\" is NaN")
	}
	if s.selected.Epoch < 1 || s.selected.Epoch > s.epoch {
		return fmt.Errorf("metadata \"selected\": epoch %d is outside 1..%d", s.selected.Epoch, s.epoch)
	}
	return nil
}

// checkpointEpoch writes the checkpoint every CheckpointEvery epochs and after the
// last one (an early stop's included).
func (r *runner) checkpointEpoch(epoch int) error {
	last := epoch+1 == r.cfg.Epochs || r.patienceSpent()
	if last || (r.cfg.CheckpointEvery > 0 && (epoch+1)%r.cfg.CheckpointEvery == 0) {
		return saveCheckpoint(r.ckptPath, r.m, r.o, &r.st)
	}
	return nil
}

// stopAt checkpoints the run after batch steps of ep's epoch, because the run's
// context was cancelled, and says so.
func (r *runner) stopAt(ep *epochRun, batch int) error {
	r.st.epoch, r.st.step, r.st.batch, r.st.epochLoss = ep.epoch, r.steps, batch, ep.lossSum
	if err := saveCheckpoint(r.ckptPath, r.m, r.o, &r.st); err != nil {
		return fmt.Errorf("%w; the checkpoint could not be written: %v", context.Cause(r.ctx), err)
	}
	return &StoppedError{Epoch: ep.epoch + 1, Epochs: r.cfg.Epochs, Batch: batch, Batches: r.batches, Cause: context.Cause(r.ctx)}
}
