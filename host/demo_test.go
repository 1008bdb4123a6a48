package main

import (
	"strings"
	"testing"
)

func effectiveConfig(t *testing.T, args ...string) RunConfig {
	t.Helper()
	fs := newFlags("run", "run")
	addRunFlags(fs)
	if err := fs.Parse(args); err != nil {
		t.Fatal(err)
	}
	rc, _, err := loadRunConfig(fs)
	if err != nil {
		t.Fatal(err)
	}
	return rc
}

// "auto" settles per dataset and is never what config.json records; an explicit
// choice wins on the demo too.
func TestAutoSettingsResolvePerDataset(t *testing.T) {
	for _, tc := range []struct {
		args         []string
		sel, augment string
	}{
		{nil, "last", "digits"},                        // the built-in demo
		{[]string{"--dataset", "cifar-10"}, "val", ""}, // none is "": the hash of runs from before the setting stays
		{[]string{"--select", "val", "--augment", "none"}, "val", ""},
		{[]string{"--dataset", "cifar-10", "--select", "last"}, "last", ""},
	} {
		rc := effectiveConfig(t, tc.args...)
		if rc.Train.Select != tc.sel || rc.Data.Augment != tc.augment {
			t.Errorf("%v: select %q, augment %q; want %q, %q", tc.args, rc.Train.Select, rc.Data.Augment, tc.sel, tc.augment)
		}
	}
}

func TestUnknownAugmentationIsNamed(t *testing.T) {
	// An unknown word is refused with the configuration, before anything loads.
	fs := newFlags("run", "run")
	addRunFlags(fs)
	if err := fs.Parse([]string{"--augment", "mixup"}); err != nil {
		t.Fatal(err)
	}
	if _, _, err := loadRunConfig(fs); err == nil || !strings.Contains(err.Error(), "data.augment") || !strings.Contains(err.Error(), "mixup") {
		t.Fatalf("err %v, want one naming data.augment and mixup", err)
	}
	rc := effectiveConfig(t, "--augment", "digits", "--dataset", "cifar-10")
	if _, _, err := buildTask(rc, nil, nil); err == nil || !strings.Contains(err.Error(), "data.augment digits") {
		t.Fatalf("digit distortions on cifar-10: err %v, want one naming data.augment", err)
	}
}
