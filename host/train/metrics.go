package train

import (
	"encoding/json"
	"fmt"
	"math"
	"os"
	"path/filepath"

	"github.com/kadapt/kadapt/host/atomicfile"
)

// MetricsPath is the run directory's metrics.jsonl, one line per finished epoch.
func MetricsPath(runDir string) string { return filepath.Join(runDir, "metrics.jsonl") }

func appendMetrics(path string, em EpochMetrics) error {
	f, err := os.OpenFile(path, os.O_APPEND|os.O_WRONLY|os.O_CREATE, 0o644)
	if err != nil {
		return err
	}
	line, _ := json.Marshal(jsonSafe(em))
	if _, err := f.Write(append(line, '\n')); err != nil {
		f.Close()
		return err
	}
	if err := f.Sync(); err != nil {
		f.Close()
		return err
	}
	return f.Close()
}

// jsonSafe writes -1 for a score that was not computed (no validation split, or a
// test pass skipped), since JSON has no NaN.
func jsonSafe(em EpochMetrics) EpochMetrics {
	if math.IsNaN(em.Val) {
		em.Val = -1
	}
	if math.IsNaN(em.ValLoss) {
		em.ValLoss = -1
	}
	if math.IsNaN(em.Test) {
		em.Test = -1
	}
	return em
}

// truncateMetrics keeps the first `epochs` lines: epochs after the checkpoint are
// re-run on resume and must not be reported twice.
func truncateMetrics(path string, epochs int) error {
	data, err := os.ReadFile(path)
	if err != nil && !os.IsNotExist(err) {
		return err
	}
	keep, lines := 0, 0
	for i, c := range data {
		if c == '\n' {
			lines++
			if lines == epochs {
				keep = i + 1
				break
			}
		}
	}
	if lines < epochs {
		return fmt.Errorf("%s: %d lines but the checkpoint is at epoch %d", path, lines, epochs)
	}
	return atomicfile.Write(path, data[:keep])
}
