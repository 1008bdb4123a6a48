package main

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// TestModelFolderErrorsThroughRun: what `host run` says about a model folder that is
// missing, or that lacks the tokenizer the default text head needs — each names the
// path, what a model folder holds, and the way out.
func TestModelFolderErrorsThroughRun(t *testing.T) {
	root := elevaterDataset(t)
	noTokenizer := clipFolder(t)
	for _, name := range []string{"vocab.json", "merges.txt"} {
		if err := os.Remove(filepath.Join(noTokenizer, name)); err != nil {
			t.Fatal(err)
		}
	}
	missing := filepath.Join(t.TempDir(), "clip-vit-base-patch32")
	for _, tc := range []struct {
		model string
		want  []string
	}{
		{missing, []string{missing + ": no such file or folder", "model.safetensors", "config.json", "vocab.json"}},
		{noTokenizer, []string{noTokenizer, "neither vocab.json and merges.txt nor tokenizer.json", "--head-init zeros", "a model folder holds"}},
	} {
		out, err := host(t, t.TempDir(), "run", "--plugin", "linearprobe", "--model", tc.model, "--dataset", "cifar-10",
			"--data-root", root, "--shots", "2", "--epochs", "1")
		if err == nil {
			t.Fatalf("--model %s: ran\n%s", tc.model, out)
		}
		for _, w := range tc.want {
			if !strings.Contains(out, w) {
				t.Errorf("--model %s: output does not say %q:\n%s", tc.model, w, out)
			}
		}
	}
}

// TestMistypedDatasetThroughRun: a --dataset that is not in the registry is read as
// an image folder; when there is none either, the error says the name is unknown and
// offers the nearest ones (it said only "image folder: open …/train: no such file").
func TestMistypedDatasetThroughRun(t *testing.T) {
	root := t.TempDir()
	out, err := host(t, t.TempDir(), "run", "--plugin", "linearprobe", "--dataset", "cifar10", "--data-root", root, "--epochs", "1")
	if err == nil {
		t.Fatalf("ran:\n%s", out)
	}
	for _, w := range []string{`unknown dataset "cifar10"`, "did you mean cifar-10", "there is no " + filepath.Join(root, "train")} {
		if !strings.Contains(out, w) {
			t.Errorf("output does not say %q:\n%s", w, out)
		}
	}
}

// TestNotARunDirectory: export and run --resume given a path that is no run directory
// say so (they said "open DIR/config.json: no such file or directory", or stat's
// error).
func TestNotARunDirectory(t *testing.T) {
	missing := filepath.Join(t.TempDir(), "runs", "x")
	empty := t.TempDir()
	for _, tc := range []struct {
		args []string
		want string
	}{
		{[]string{"export", missing, "--out", t.TempDir()}, missing + ": no such run directory"},
		{[]string{"export", empty, "--out", t.TempDir()}, empty + " is not a run directory: it has no config.json"},
		{[]string{"run", "--resume", missing}, "--resume: " + missing + ": no such run directory"},
		{[]string{"run", "--resume", empty}, "--resume: " + empty + " is not a run directory"},
	} {
		if out, err := host(t, t.TempDir(), tc.args...); err == nil || !strings.Contains(out, tc.want) {
			t.Errorf("host %v: %v\n%s\nwant it to say %q", tc.args, err, out, tc.want)
		}
	}
}

// TestSweepChecksPluginsFirst: a sweep whose spec names a plugin that is not there,
// or a hyperparameter its plugin does not have, fails before any worker starts (each
// point's worker failed in turn, after loading its model), naming the point.
func TestSweepChecksPluginsFirst(t *testing.T) {
	for _, tc := range []struct {
		args []string
		want string
		code int
	}{
		{[]string{"--plugins", "lorax"}, `point 0 (lorax-mnist-demo-s0-`, 1},
		{[]string{"--plugins", "lora", "--", "--hp", "rnak=3"}, `unknown hyperparameter "rnak"`, 2},
	} {
		runs := filepath.Join(t.TempDir(), "runs")
		args := append([]string{"sweep", "--datasets", "mnist-demo", "--seeds", "0", "--runs-dir", runs}, tc.args...)
		_, stderr, code := hostRun(t, nil, args...)
		if code != tc.code || !strings.Contains(stderr, tc.want) {
			t.Errorf("host %v: exit %d, stderr:\n%s\nwant exit %d and %q", args, code, stderr, tc.code, tc.want)
		}
		if entries, _ := os.ReadDir(runs); len(entries) > 0 {
			t.Errorf("host %v left %d entries in the runs directory", args, len(entries))
		}
	}
}
