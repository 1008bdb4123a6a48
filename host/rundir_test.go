package main

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/kadapt/kadapt/host/runlock"
)

// waitFor polls until cond holds, failing the test after d.
func waitFor(t *testing.T, d time.Duration, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(d)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out after %s waiting for %s", d, what)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// TestRunDirHasOneWriter: a second writer is refused with the holder's name; a run
// killed before its first checkpoint starts over on --resume; a killed writer's
// temporary files are removed; run ids cannot leave the runs directory.
func TestRunDirHasOneWriter(t *testing.T) {
	if testing.Short() {
		t.Skip("trains the demo task")
	}
	dir := t.TempDir()
	run := filepath.Join(dir, "runs", "x")
	// Only a final checkpoint, 20 epochs after config.json appears: the first run is
	// frozen (SIGSTOP) well before it, so a live holder meets the second writer.
	first := exec.Command(filepath.Join(binaries(t), "host"), "run", "--plugin", "lora", "--epochs", "20",
		"--checkpoint-every", "0", "--run-id", "x", "--quiet")
	first.Dir = dir
	if err := first.Start(); err != nil {
		t.Fatal(err)
	}
	defer first.Process.Kill()
	waitFor(t, 3*time.Minute, "the first run's lock and config.json", func() bool {
		return fileExists(filepath.Join(run, runlock.Name)) && fileExists(filepath.Join(run, "config.json"))
	})
	if err := first.Process.Signal(syscall.SIGSTOP); err != nil {
		t.Fatal(err)
	}

	out, err := host(t, dir, "run", "--resume", run, "--quiet")
	if err == nil {
		t.Fatalf("a second writer was let in:\n%s", out)
	}
	for _, want := range []string{"being written by host run", fmt.Sprintf("pid %d", first.Process.Pid)} {
		if !strings.Contains(out, want) {
			t.Errorf("the refusal does not say %q:\n%s", want, out)
		}
	}

	first.Process.Kill()
	first.Wait()
	if hasCheckpoint(run) {
		t.Fatal("the first run checkpointed before it was killed; the test proves nothing")
	}
	leftover := filepath.Join(run, ".checkpoint.safetensors.data-123.tmp")
	pending := filepath.Join(run, ".final.json8674665223082153551") // an atomicfile write never committed
	for _, p := range []string{leftover, pending} {
		if err := os.WriteFile(p, []byte("half a result"), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	out, err = host(t, dir, "run", "--resume", run, "--quiet")
	if err != nil {
		t.Fatalf("resuming a run killed before its first checkpoint: %v\n%s", err, out)
	}
	if !strings.Contains(out, "starting the run from the beginning") {
		t.Errorf("the resume does not say it starts over:\n%s", out)
	}
	metrics, _ := os.ReadFile(filepath.Join(run, "metrics.jsonl"))
	if n := strings.Count(string(metrics), "\n"); n != 20 || !strings.HasPrefix(string(metrics), `{"epoch":1,`) {
		t.Errorf("metrics.jsonl after the restart has %d lines, want epochs 1 to 20:\n%s", n, metrics)
	}
	for _, gone := range []string{leftover, pending, filepath.Join(run, runlock.Name)} {
		if fileExists(gone) {
			t.Errorf("%s is still there after the run", gone)
		}
	}

	for _, id := range []string{"../../escape", "a/b", ".."} {
		out, err := host(t, dir, "run", "--plugin", "lora", "--run-id", id, "--dry-run", "--classes", "5")
		if err == nil || !strings.Contains(out, "run_id") {
			t.Errorf("--run-id %q: %v\n%s", id, err, out)
		}
	}
}
