package main

import (
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"strings"

	"github.com/kadapt/kadapt/host/atomicfile"
	"github.com/kadapt/kadapt/host/jsondiff"
	"github.com/kadapt/kadapt/plugins"
	"github.com/kadapt/kadapt/plugins/plan"
)

// resolvePlugin finds rc's plugin binary and fixes the SHA-256 it must have, so that
// the binary a run executes is always the one its config.json records. A new run
// records the binary's path and hash in rc (a pin the user set must match). A resumed
// run requires the recorded hash: a run directory names what it executes, so it must
// not be able to name another binary than the one the run started with. override
// (--plugin-sha256 given on resume) accepts another binary on purpose; the record is
// then updated in dir's config.json.
func resolvePlugin(rc *RunConfig, resumeDir, override string) error {
	path, err := plugins.Find(rc.Plugin, pluginDirs(rc.PluginPath))
	if err != nil {
		return err
	}
	if abs, err := filepath.Abs(path); err == nil {
		path = abs
	}
	sum, err := fileDigest(path)
	if err != nil {
		return fmt.Errorf("plugin %s: %v", path, err)
	}
	override = strings.ToLower(strings.TrimSpace(override))
	if resumeDir == "" {
		if pin := strings.ToLower(strings.TrimSpace(rc.PluginSHA256)); pin != "" && pin != sum {
			return fmt.Errorf("plugin %q (%s) has SHA-256 %s, not the pinned %s (plugin_sha256)", rc.Plugin, path, sum, pin)
		}
		rc.PluginBinary, rc.PluginSHA256 = path, sum
		return nil
	}
	config := filepath.Join(resumeDir, runConfigFile)
	want := override
	if want == "" {
		want = strings.ToLower(rc.PluginSHA256)
	}
	switch {
	case want == "":
		return fmt.Errorf("%s records no plugin SHA-256 (a run from an older kadapt): to resume it with %s, pass --plugin-sha256 %s", config, path, sum)
	case want != sum && override != "":
		return fmt.Errorf("plugin %q (%s) has SHA-256 %s, not the %s given with --plugin-sha256", rc.Plugin, path, sum, override)
	case want != sum:
		return fmt.Errorf("plugin %q (%s) has SHA-256 %s, but the run was started with a binary of SHA-256 %s (%s, recorded in %s): refusing to resume with another binary; if this one is meant, pass --plugin-sha256 %s",
			rc.Plugin, path, sum, want, rc.PluginBinary, config, sum)
	}
	if rc.PluginSHA256 != sum || rc.PluginBinary != path {
		rc.PluginBinary, rc.PluginSHA256 = path, sum
		if err := atomicfile.WriteJSON(config, rc); err != nil {
			return err
		}
	}
	return nil
}

// identity is what the run is, for its checkpoints (train.Options.Identity): the whole
// configuration except the plugin binary's record, which --plugin-sha256 may change.
func (rc RunConfig) identity() (json.RawMessage, error) {
	rc.PluginBinary, rc.PluginSHA256 = "", ""
	return json.Marshal(rc)
}

// samePlan compares the plan a resumed run's plugin makes now with the plan the run
// started with (plan.json): another binary, or the same one given other
// hyperparameters, would continue training a different method from the checkpoint.
func samePlan(dir string, fresh plan.Plan) error {
	path := filepath.Join(dir, runPlanFile)
	recorded, err := os.ReadFile(path)
	if err != nil {
		return fmt.Errorf("resume: %v", err)
	}
	now, err := json.Marshal(fresh)
	if err != nil {
		return err
	}
	key, was, is, differ, err := jsondiff.First(recorded, now)
	if err != nil {
		return fmt.Errorf("resume: %s: %v", path, err)
	}
	if differ {
		return fmt.Errorf("resume: the plugin's plan differs from the run's %s at %s: the run started with %s, the plugin now plans %s (another plugin binary or other hyperparameters): refusing to continue a different method", path, key, was, is)
	}
	return nil
}
