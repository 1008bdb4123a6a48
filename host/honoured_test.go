package main

import (
	"os"
	"strings"
	"testing"

	"github.com/hashicorp/go-hclog"

	"github.com/kadapt/kadapt/backbones"
	"github.com/kadapt/kadapt/core/backend/cpu"
	"github.com/kadapt/kadapt/host/train"
)

func TestRunRefusesSettingsItCannotHonour(t *testing.T) {
	for _, tc := range []struct {
		args []string
		env  map[string]string
		want string // "" means accepted
	}{
		{nil, nil, ""},
		{[]string{"--optimizer", "adamw", "--schedule", "cosine", "--warmup-epochs", "2"}, nil, ""},
		{[]string{"--schedule", "step"}, map[string]string{"KADAPT_TRAIN__STEP_EVERY": "5", "KADAPT_TRAIN__STEP_GAMMA": "0.5"}, ""},
		{[]string{"--backbone", "clip-vit-b32"}, nil, `--backbone (backbone): "clip-vit-b32" names an architecture`},
		{[]string{"--model-config", "c.json"}, nil, "--model-config (model_config)"},
		{[]string{"--data-root", "/data"}, nil, "--data-root (data.root)"},
		{[]string{"--format", "mnist"}, nil, "--format (data.format)"},
		{[]string{"--head-init", "zeros", "--templates", "t.txt"}, nil, "--templates (data.templates)"},
		{[]string{"--optimizer", "adamw", "--momentum", "0.5"}, nil, "--momentum (train.momentum): applies to sgd, not adamw"},
		{[]string{"--optimizer", "adamw", "--nesterov"}, nil, "--nesterov (train.nesterov)"},
		{[]string{"--warmup-epochs", "3"}, nil, "--warmup-epochs (train.warmup_epochs): applies to the cosine schedule, not constant"},
		{nil, map[string]string{"KADAPT_TRAIN__STEP_EVERY": "3"}, "environment variable KADAPT_TRAIN__STEP_EVERY (train.step_every): applies to the step schedule"},
		{[]string{"--schedule", "cosine"}, map[string]string{"KADAPT_TRAIN__STEP_GAMMA": "0.5"}, "environment variable KADAPT_TRAIN__STEP_GAMMA (train.step_gamma): applies to the step schedule, not cosine"},
		{nil, map[string]string{"KADAPT_TRAIN__WARMUP_EPOCHS": "3"}, "environment variable KADAPT_TRAIN__WARMUP_EPOCHS (train.warmup_epochs): applies to the cosine schedule, not constant"},
		{[]string{"--search", "paper", "--lr", "0.1"}, nil, "--lr (train.lr): --search paper chooses it"},
		{[]string{"--search", "paper"}, nil, ""}, // train.select is auto, resolved: not a choice
		{[]string{"--search", "paper", "--dataset", "cifar-10", "--data-root", "/data"}, nil, ""},
		{[]string{"--search", "paper", "--select", "last"}, nil, "--select (train.select): --search paper chooses it"},
	} {
		for k, v := range tc.env {
			os.Setenv(k, v)
		}
		fs := newFlags("run", "")
		addRunFlags(fs)
		if err := fs.Parse(tc.args); err != nil {
			t.Fatal(err)
		}
		rc, _, err := loadRunConfig(fs)
		for k := range tc.env {
			os.Unsetenv(k)
		}
		if err != nil {
			t.Fatal(err)
		}
		err = checkHonoured(rc)
		switch {
		case tc.want == "" && err != nil:
			t.Errorf("%v: %v, want it accepted", tc.args, err)
		case tc.want != "" && (err == nil || !strings.Contains(err.Error(), tc.want)):
			t.Errorf("%v: %v, want an error naming %q", tc.args, err, tc.want)
		}
	}
}

func TestResumeRefusesNewSettings(t *testing.T) {
	fs := newFlags("run", "")
	addRunFlags(fs)
	fs.Bool("quiet", false, "")
	if err := fs.Parse([]string{"--quiet", "--epochs", "80", "--hp", "r=8"}); err != nil {
		t.Fatal(err)
	}
	err := resumeFlagsIgnored(fs)
	if err == nil || !strings.Contains(err.Error(), "--epochs, --hp would be ignored") {
		t.Errorf("got %v, want an error naming --epochs and --hp", err)
	}
}

// TestHeadInitRecordsWhatItApplied: on a backbone without a text tower (the built-in
// one) head_init text falls back to zeros; the run must say so, and refuse prompt
// templates it has nothing to embed with.
func TestHeadInitRecordsWhatItApplied(t *testing.T) {
	b := cpu.New()
	task := train.Task{Classes: 5}
	names := []string{"5", "6", "7", "8", "9"}
	log := hclog.NewNullLogger()
	rc := RunConfig{HeadInit: "text"}
	head := train.NewHead(b, 8, 5)
	head.InitRandom(3)
	mode, err := initHead(head, rc, &backbones.Model{}, names, task, log)
	if err != nil || mode != "zeros" {
		t.Errorf("head_init text without a text tower: applied %q (%v), want zeros", mode, err)
	}
	w := make([]float32, 8*5)
	b.Download(w, head.W.Value)
	for i, v := range w {
		if v != 0 {
			t.Fatalf("head weight %d is %v after the zeros fallback", i, v)
		}
	}
	rc.Data.Templates = "prompts.txt"
	if _, err := initHead(train.NewHead(b, 8, 5), rc, &backbones.Model{}, names, task, log); err == nil || !strings.Contains(err.Error(), "--templates (data.templates)") {
		t.Errorf("templates without a text tower: %v, want an error naming --templates", err)
	}
}

// TestConfigIgnoresGEMMEnv: KADAPT_GEMM selects the CPU backend's matrix kernel and is
// read by core/backend/cpu/gemm, so the configuration must not reject it as an unknown
// key (it did, and `host run` refused to start).
func TestConfigIgnoresGEMMEnv(t *testing.T) {
	t.Setenv("KADAPT_GEMM", "avx2")
	fs := newFlags("run", "")
	addRunFlags(fs)
	if err := fs.Parse(nil); err != nil {
		t.Fatal(err)
	}
	if _, _, err := loadRunConfig(fs); err != nil {
		t.Fatalf("KADAPT_GEMM in the environment: %v", err)
	}
}
