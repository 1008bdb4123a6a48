package train

import (
	"os"
	"path/filepath"
	"testing"

	"github.com/kadapt/kadapt/backbones/safetensors"
	"github.com/kadapt/kadapt/core/backend/cpu"
	"github.com/kadapt/kadapt/core/optim"
)

// FuzzCheckpointMetadata feeds a real checkpoint with arbitrary metadata (a run
// directory is user-editable, and resume reads it): loading must return an error
// naming the key or a state, never panic.
func FuzzCheckpointMetadata(f *testing.F) {
	b := cpu.New()
	dir := f.TempDir()
	cfg := testConfig()
	cfg.Epochs = 2
	if _, err := Run(b, newMLP(b, 4, 16, 3, 1), testTask(), cfg, Options{Dir: dir}); err != nil {
		f.Fatal(err)
	}
	src, err := safetensors.Open(filepath.Join(dir, "checkpoint.safetensors"))
	if err != nil {
		f.Fatal(err)
	}
	tensors := map[string]safetensors.Tensor{}
	for _, n := range src.Names() {
		info, _ := src.Info(n)
		d, err := src.Float32s(n)
		if err != nil {
			f.Fatal(err)
		}
		tensors[n] = safetensors.Tensor{Shape: info.Shape, Data: d}
	}
	meta := src.Metadata()
	src.Close()
	f.Add(meta["epoch"], meta["step"], meta["since_best"], meta["best"], meta["best_loss"], meta["history"], meta["selected"], "optim.lr", "0.1")
	f.Add("-5", "0", "0", "NaN", "Inf", "[]", "{}", "optim.step", "x")
	f.Add("1", "99999999999999999999", "-1", "1e999", "-0", `[{"epoch": -3}]`, `null`, "optim.kind", "adamw")
	f.Fuzz(func(t *testing.T, epoch, step, sinceBest, best, bestLoss, history, selected, optimKey, optimValue string) {
		m := map[string]string{}
		for k, v := range meta {
			m[k] = v
		}
		m["epoch"], m["step"], m["since_best"], m["best"], m["best_loss"] = epoch, step, sinceBest, best, bestLoss
		m["history"], m["selected"] = history, selected
		m[optimKey] = optimValue
		// Resealed, so that the metadata reaches the checks behind the digest.
		m[checksumKey] = checkpointDigest(tensors, m)
		path := filepath.Join(t.TempDir(), "checkpoint.safetensors")
		if err := safetensors.WriteFile(path, tensors, m); err != nil {
			return // metadata safetensors cannot hold
		}
		model := newMLP(b, 4, 16, 3, 2)
		o := optim.NewSGD(b, ParamGroups(model.Trainable(), 1e-3), optim.SGDConfig{Momentum: 0.9})
		st := state{sel: "val", identity: []byte(meta["config"])}
		if err := loadCheckpoint(path, model, o, &st, cfg, batchCount(testTask().Train.Len(), cfg.BatchSize)); err != nil {
			return
		}
		// What Run does next with the loaded epoch.
		metrics := filepath.Join(filepath.Dir(path), "metrics.jsonl")
		if err := os.WriteFile(metrics, []byte("{\"epoch\":1}\n{\"epoch\":2}\n"), 0o644); err != nil {
			t.Fatal(err)
		}
		_ = truncateMetrics(metrics, st.epoch)
	})
}
