package main

import (
	"os"
	"strings"
	"testing"
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
		{nil, map[string]string{"KADAPT_TRAIN__STEP_EVERY": "3"}, "train.step_every: applies to the step schedule"},
		{[]string{"--schedule", "cosine"}, map[string]string{"KADAPT_TRAIN__STEP_GAMMA": "0.5"}, "train.step_gamma: applies to the step schedule, not cosine"},
		{[]string{"--search", "paper", "--lr", "0.1"}, nil, "--lr (train.lr): --search paper chooses it"},
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
