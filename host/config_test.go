package main

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// TestBadValueNamesItsSource: a value that does not parse, or that the run refuses,
// is reported with where it came from — the YAML file and key, the environment
// variable as spelt, or the flag — since settings merge from all three.
func TestBadValueNamesItsSource(t *testing.T) {
	dir := t.TempDir()
	yamlPath := filepath.Join(dir, "run.yaml")
	if err := os.WriteFile(yamlPath, []byte("train:\n  epochs: many\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		name string
		args []string
		env  map[string]string
		want string // "" means accepted
	}{
		{"yaml type", []string{"--config", yamlPath}, nil, yamlPath + `, key train.epochs: train.epochs: "many" is not an integer`},
		{"yaml overridden by a flag", []string{"--config", yamlPath, "--epochs", "3"}, nil, ""},
		{"env type", nil, map[string]string{"KADAPT_TRAIN__LR": "fast"}, `environment variable KADAPT_TRAIN__LR: train.lr: "fast" is not a number`},
		{"env empty", nil, map[string]string{"KADAPT_TRAIN__EPOCHS": ""}, "environment variable KADAPT_TRAIN__EPOCHS: train.epochs must be positive, got 0"},
		{"env value", nil, map[string]string{"KADAPT_TRAIN__OPTIMIZER": "adamx"}, `environment variable KADAPT_TRAIN__OPTIMIZER: train.optimizer must be one of sgd, adamw, got "adamx"`},
		{"env bool", nil, map[string]string{"KADAPT_TRAIN__NESTEROV": "maybe"}, `environment variable KADAPT_TRAIN__NESTEROV: train.nesterov: "maybe" is not true or false`},
		{"env overridden by a flag", []string{"--lr", "0.1"}, map[string]string{"KADAPT_TRAIN__LR": "fast"}, ""},
		{"env unknown key", nil, map[string]string{"KADAPT_TRAIN__LRR": "0.1"}, "environment variable KADAPT_TRAIN__LRR"},
		{"flag value", []string{"--optimizer", "adamx"}, nil, `--optimizer: train.optimizer must be one of sgd, adamw, got "adamx"`},
	} {
		t.Run(tc.name, func(t *testing.T) {
			for k, v := range tc.env {
				t.Setenv(k, v)
			}
			fs := newFlags("run", "")
			addRunFlags(fs)
			if err := fs.Parse(tc.args); err != nil {
				t.Fatal(err)
			}
			_, _, err := loadRunConfig(fs)
			switch {
			case tc.want == "" && err != nil:
				t.Fatalf("%v", err)
			case tc.want != "" && (err == nil || !strings.Contains(err.Error(), tc.want)):
				t.Fatalf("error %v\nwant it to contain %s", err, tc.want)
			}
		})
	}
}

// TestSweepBadValueNamesItsPlace: in a sweep spec the error names the file, the
// point, and the section and key that hold the bad value.
func TestSweepBadValueNamesItsPlace(t *testing.T) {
	spec := "fixed:\n  train.lr: fast\nmethods: [lora]\n"
	sp, err := parseSweepSpec("study.yaml", []byte(spec))
	if err != nil {
		t.Fatal(err)
	}
	_, err = sp.plan()
	want := `study.yaml: methods[0] (lora) at …: fixed: train.lr: "fast" is not a number`
	if err == nil || !strings.Contains(err.Error(), `fixed: train.lr: "fast" is not a number`) || !strings.HasPrefix(err.Error(), "study.yaml: ") {
		t.Fatalf("error %v\nwant like %s", err, want)
	}
}
