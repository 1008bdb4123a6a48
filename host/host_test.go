package main

import (
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/kadapt/kadapt/host/lifecycle"
)

var (
	buildOnce sync.Once
	buildDir  string
	buildErr  error
)

// binaries builds the host and the six plugins once per test binary, laid out as
// `make build` lays them out (bin/host, bin/plugins/*).
func binaries(t *testing.T) string {
	t.Helper()
	if _, err := exec.LookPath("go"); err != nil {
		t.Skip("no go toolchain on PATH")
	}
	buildOnce.Do(func() {
		buildDir, buildErr = os.MkdirTemp("", "kadapt-host-test-")
		if buildErr != nil {
			return
		}
		args := [][]string{{"build", "-o", filepath.Join(buildDir, "host"), "."}}
		for _, m := range allMethods {
			args = append(args, []string{"build", "-o", filepath.Join(buildDir, "plugins", "kadapt-plugin-"+m), "../plugins/cmd/" + m})
		}
		for _, a := range args {
			if out, err := exec.Command("go", a...).CombinedOutput(); err != nil {
				buildErr = err
				buildDir = string(out)
				return
			}
		}
	})
	if buildErr != nil {
		t.Fatalf("build: %v\n%s", buildErr, buildDir)
	}
	return buildDir
}

func host(t *testing.T, dir string, args ...string) (string, error) {
	t.Helper()
	cmd := exec.Command(filepath.Join(binaries(t), "host"), args...)
	cmd.Dir = dir
	out, err := cmd.CombinedOutput()
	return string(out), err
}

// TestDryRunCountsThroughPlugins checks the paper's trainable-parameter counts end to
// end: real plugin processes, plans over gRPC, validation and counting in the host.
func TestDryRunCountsThroughPlugins(t *testing.T) {
	const classes = 10
	head := int64(513 * classes)
	for _, tc := range []struct {
		plugin string
		want   int64
	}{
		{"kadaptation", 50176}, {"adapter", 1208064}, {"lora", 147456},
		{"compacter", 48384}, {"finetune", 87849216}, {"linearprobe", 0},
	} {
		out, err := host(t, t.TempDir(), "run", "--plugin", tc.plugin, "--backbone", "clip-vit-b32", "--classes", "10", "--dry-run", "--json")
		if err != nil {
			t.Fatalf("%s: %v\n%s", tc.plugin, err, out)
		}
		var got struct {
			Trainable int64 `json:"trainable_params"`
		}
		if err := json.Unmarshal([]byte(out[strings.Index(out, "{"):]), &got); err != nil {
			t.Fatalf("%s: %v\n%s", tc.plugin, err, out)
		}
		if got.Trainable != tc.want+head {
			t.Errorf("%s: trainable_params %d, want %d + %d", tc.plugin, got.Trainable, tc.want, head)
		}
	}
}

func TestBadInputNamesTheCulprit(t *testing.T) {
	dir := t.TempDir()
	hugeLayers := filepath.Join(dir, "huge")
	os.MkdirAll(hugeLayers, 0o755)
	os.WriteFile(filepath.Join(hugeLayers, "config.json"), []byte(`{"model_type": "vit", "num_hidden_layers": 1e9}`), 0o644)
	for _, tc := range []struct {
		args []string
		want string
	}{
		{[]string{"run", "--plugin", "nosuch", "--dry-run", "--backbone", "clip-vit-b32"}, `no plugin "nosuch"`},
		{[]string{"run", "--plugin", "lora", "--hp", "rank=3", "--dry-run", "--backbone", "clip-vit-b32"}, `unknown hyperparameter "rank"`},
		{[]string{"run", "--plugin", "kadaptation", "--hp", "n=5", "--hp", "targets=q,zz", "--dry-run", "--backbone", "clip-vit-b32"}, "zz"},
		{[]string{"run", "--plugin", "lora", "--optimizer", "adam", "--dry-run"}, "train.optimizer"},
		{[]string{"run", "--plugin", "lora", "--dry-run", "--backbone", "vit-huge"}, `unknown backbone "vit-huge"`},
		// Without --dry-run a preset has no weights: the built-in backbone trained
		// while config.json said clip-vit-b32.
		{[]string{"run", "--plugin", "lora", "--backbone", "clip-vit-b32", "--epochs", "1"}, `--backbone (backbone): "clip-vit-b32" names an architecture`},
		{[]string{"run", "--resume", "runs/x", "--epochs", "3"}, "--epochs would be ignored"},
		{[]string{"run", "--plugin", "lora", "--classes", "10"}, "--classes: only a --dry-run"},
		// 10⁹ layers were described to the plugin, one site each: out of memory.
		{[]string{"run", "--plugin", "lora", "--dry-run", "--model", hugeLayers}, `"num_hidden_layers"`},
	} {
		out, err := host(t, dir, tc.args...)
		if err == nil || !strings.Contains(out, tc.want) {
			t.Errorf("%v: err %v, output %q; want an error mentioning %q", tc.args, err, out, tc.want)
		}
	}
	// Test classes {dog, zebra} against train {cat, dog}: test labels were indexed
	// against the wrong list and scored after training; now an error before it.
	csvDir := filepath.Join(dir, "csv")
	os.MkdirAll(csvDir, 0o755)
	os.WriteFile(filepath.Join(csvDir, "train.csv"), []byte("a.png,cat\nb.png,dog\n"), 0o644)
	os.WriteFile(filepath.Join(csvDir, "test.csv"), []byte("c.png,dog\nd.png,zebra\n"), 0o644)
	if out, err := host(t, dir, "run", "--plugin", "linearprobe", "--format", "csv", "--dataset", "mine", "--data-root", csvDir,
		"--runs-dir", filepath.Join(dir, "runs")); err == nil || !strings.Contains(out, "zebra") || strings.Contains(out, "epoch") {
		t.Errorf("mismatched class lists: err %v, output %q", err, out)
	}
	yaml := filepath.Join(dir, "bad.yaml")
	os.WriteFile(yaml, []byte("train:\n  lr: 0.1\n  learning_rate: 0.2\n"), 0o644)
	if out, err := host(t, dir, "config", "show", "--config", yaml); err == nil || !strings.Contains(out, "train.learning_rate") || !strings.Contains(out, "bad.yaml") {
		t.Errorf("unknown YAML key: err %v, output %q", err, out)
	}
	cmd := exec.Command(filepath.Join(binaries(t), "host"), "config", "show", "--lr", "0.5")
	cmd.Env = append(os.Environ(), "KADAPT_TRAIN__EPOCHS=7")
	out, err := cmd.CombinedOutput()
	if err != nil || !strings.Contains(string(out), "epochs: 7") || !strings.Contains(string(out), "lr: 0.5") {
		t.Errorf("env and flag layering: err %v\n%s", err, out)
	}
}

// TestResumeAfterKill9 kills a training run with SIGKILL mid-way, resumes it, stops
// the resumed run with SIGTERM, resumes again, and checks that the result and every
// epoch's metrics equal those of an uninterrupted run with the same seed. Neither the
// killed nor the stopped host may leave its plugin running.
func TestResumeAfterKill9(t *testing.T) {
	if testing.Short() {
		t.Skip("trains the demo task twice")
	}
	dir := t.TempDir()
	common := []string{"run", "--plugin", "lora", "--epochs", "12", "--checkpoint-every", "1", "--seed", "3", "--json"}
	out, err := host(t, dir, append(common, "--run-id", "whole")...)
	if err != nil {
		t.Fatalf("%v\n%s", err, out)
	}
	var whole Summary
	if err := json.Unmarshal([]byte(out[strings.Index(out, "{"):]), &whole); err != nil {
		t.Fatalf("%v\n%s", err, out)
	}
	metrics := filepath.Join(dir, "runs", "killed", "metrics.jsonl")
	// start runs the host until metrics.jsonl has epochs lines, and returns it with
	// its plugin processes.
	start := func(epochs int, args ...string) (*exec.Cmd, *strings.Builder, []int) {
		cmd := exec.Command(filepath.Join(binaries(t), "host"), args...)
		cmd.Dir = dir
		var out strings.Builder
		cmd.Stdout, cmd.Stderr = &out, &out
		if err := cmd.Start(); err != nil {
			t.Fatal(err)
		}
		deadline := time.Now().Add(2 * time.Minute)
		for {
			data, _ := os.ReadFile(metrics)
			if strings.Count(string(data), "\n") >= epochs {
				break
			}
			if time.Now().After(deadline) {
				cmd.Process.Kill()
				t.Fatalf("the run never reached epoch %d\n%s", epochs, out.String())
			}
			time.Sleep(20 * time.Millisecond)
		}
		return cmd, &out, children(cmd.Process.Pid)
	}

	cmd, _, plugins := start(5, append(common, "--run-id", "killed")...)
	if err := cmd.Process.Signal(syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	cmd.Wait()
	if _, err := os.Stat(filepath.Join(dir, "runs", "killed", "final.json")); err == nil {
		t.Fatal("the run finished before it was killed; the test proves nothing")
	}
	if alive := waitExited(plugins, 5*time.Second); len(alive) > 0 {
		t.Errorf("plugin processes %v outlived their host by 5 s after kill -9", alive)
	}

	cmd, stopped, plugins := start(8, "run", "--resume", filepath.Join("runs", "killed"), "--json")
	if err := cmd.Process.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	err = cmd.Wait()
	var exit *exec.ExitError
	if !errors.As(err, &exit) || exit.ExitCode() != lifecycle.ExitInterrupted {
		t.Fatalf("after SIGTERM the host ended with %v, want exit status %d\n%s", err, lifecycle.ExitInterrupted, stopped)
	}
	if msg := stopped.String(); !strings.Contains(msg, "interrupted by SIGTERM") || !strings.Contains(msg, "checkpoint written") || !strings.Contains(msg, "--resume runs/killed") {
		t.Errorf("the message after SIGTERM does not say what happened and how to continue:\n%s", msg)
	}
	if _, err := os.Stat(filepath.Join(dir, "runs", "killed", "final.json")); err == nil {
		t.Fatal("the run finished before SIGTERM; the test proves nothing")
	}
	if alive := waitExited(plugins, 0); len(alive) > 0 {
		t.Errorf("plugin processes %v outlived a host stopped by SIGTERM", alive)
	}

	out, err = host(t, dir, "run", "--resume", filepath.Join("runs", "killed"), "--json")
	if err != nil {
		t.Fatalf("resume: %v\n%s", err, out)
	}
	var resumed Summary
	if err := json.Unmarshal([]byte(out[strings.Index(out, "{"):]), &resumed); err != nil {
		t.Fatalf("%v\n%s", err, out)
	}
	if resumed.Accuracy != whole.Accuracy || resumed.Epoch != whole.Epoch {
		t.Fatalf("resumed run: %.4f%% at epoch %d; uninterrupted: %.4f%% at epoch %d", resumed.Accuracy, resumed.Epoch, whole.Accuracy, whole.Epoch)
	}
	a, _ := os.ReadFile(filepath.Join(dir, "runs", "whole", "metrics.jsonl"))
	b, _ := os.ReadFile(filepath.Join(dir, "runs", "killed", "metrics.jsonl"))
	strip := func(s string) string { // timings differ; everything else must not
		var lines []string
		for _, l := range strings.Split(strings.TrimSpace(s), "\n") {
			var m map[string]any
			json.Unmarshal([]byte(l), &m)
			delete(m, "seconds")
			delete(m, "images_per_s")
			j, _ := json.Marshal(m)
			lines = append(lines, string(j))
		}
		return strings.Join(lines, "\n")
	}
	if strip(string(a)) != strip(string(b)) {
		t.Fatalf("metrics differ:\nuninterrupted:\n%s\nresumed:\n%s", a, b)
	}
}

// TestClosedStdoutStopsPlugins runs the host with its stdout a pipe nobody reads (as
// in `host run ... | true`): the host must end through its own exit path, which stops
// the plugin, instead of being killed by SIGPIPE.
func TestClosedStdoutStopsPlugins(t *testing.T) {
	bins := binaries(t)
	r, w, err := os.Pipe()
	if err != nil {
		t.Fatal(err)
	}
	r.Close()
	cmd := exec.Command(filepath.Join(bins, "host"), "run", "--plugin", "lora", "--backbone", "clip-vit-b32", "--classes", "10", "--dry-run")
	cmd.Dir = t.TempDir()
	cmd.Stdout = w
	cmd.Run()
	w.Close()
	if ws, ok := cmd.ProcessState.Sys().(syscall.WaitStatus); ok && ws.Signaled() {
		t.Fatalf("the host was killed by %v writing to a closed pipe, skipping its cleanup", ws.Signal())
	}
	if left := processesOf(filepath.Join(bins, "plugins", "kadapt-plugin-lora")); len(left) > 0 {
		t.Fatalf("plugin processes %v outlived the host", left)
	}
}

// TestKilledSweepStopsItsRuns kills a sweep with SIGKILL while its worker child
// trains: the worker must stop at its next step with a checkpoint, and its plugin
// with it.
func TestKilledSweepStopsItsRuns(t *testing.T) {
	if runtime.GOOS != "linux" {
		t.Skip("reads /proc; the parent death signal is Linux's")
	}
	dir := t.TempDir()
	sweep := exec.Command(filepath.Join(binaries(t), "host"), "sweep", "--demo", "--plugins", "lora", "--seeds", "0", "--", "--epochs", "100000", "--checkpoint-every", "0")
	sweep.Dir = dir
	var sweepOut strings.Builder
	sweep.Stdout, sweep.Stderr = &sweepOut, &sweepOut
	if err := sweep.Start(); err != nil {
		t.Fatal(err)
	}
	defer sweep.Process.Kill()
	var runDir string
	deadline := time.Now().Add(2 * time.Minute)
	for {
		found, _ := filepath.Glob(filepath.Join(dir, "runs", "lora-*", "metrics.jsonl"))
		if len(found) == 1 {
			if data, _ := os.ReadFile(found[0]); len(data) > 0 {
				runDir = filepath.Dir(found[0])
				break
			}
		}
		if time.Now().After(deadline) {
			t.Fatalf("the sweep's run never finished an epoch:\n%s", sweepOut.String())
		}
		time.Sleep(20 * time.Millisecond)
	}
	runs := children(sweep.Process.Pid)
	var procs []int
	for _, r := range runs {
		procs = append(procs, r)
		procs = append(procs, children(r)...)
	}
	if len(procs) != 2 {
		t.Fatalf("the sweep runs %v, want one worker and its plugin", procs)
	}
	sweep.Process.Signal(syscall.SIGKILL)
	sweep.Wait()
	if alive := waitExited(procs, 10*time.Second); len(alive) > 0 {
		t.Fatalf("processes %v outlived the killed sweep by 10 s", alive)
	}
	if _, err := os.Stat(filepath.Join(runDir, "checkpoint.safetensors")); err != nil {
		t.Fatalf("the stopped run left no checkpoint: %v\n%s", err, sweepOut.String())
	}
}

// procStat returns the state and parent of a process, from /proc; ok is false when it
// is gone.
func procStat(pid int) (state string, ppid int, ok bool) {
	stat, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return "", 0, false
	}
	// pid (comm) state ppid ...; comm may hold spaces and parentheses.
	f := strings.Fields(string(stat[bytes.LastIndexByte(stat, ')')+1:]))
	if len(f) < 2 {
		return "", 0, false
	}
	ppid, _ = strconv.Atoi(f[1])
	return f[0], ppid, f[0] != "Z" && f[0] != "X"
}

// allPids lists the processes in /proc (none where there is no /proc).
func allPids() []int {
	entries, _ := os.ReadDir("/proc")
	var out []int
	for _, e := range entries {
		if pid, err := strconv.Atoi(e.Name()); err == nil {
			out = append(out, pid)
		}
	}
	return out
}

// children lists the live child processes of pid.
func children(pid int) []int {
	var out []int
	for _, p := range allPids() {
		if _, ppid, ok := procStat(p); ok && ppid == pid {
			out = append(out, p)
		}
	}
	return out
}

// processesOf lists the live processes running the executable at path.
func processesOf(path string) []int {
	var out []int
	for _, p := range allPids() {
		if exe, err := os.Readlink(fmt.Sprintf("/proc/%d/exe", p)); err == nil && exe == path {
			if _, _, ok := procStat(p); ok {
				out = append(out, p)
			}
		}
	}
	return out
}

// waitExited waits up to d for every process of pids to exit and returns those left.
func waitExited(pids []int, d time.Duration) []int {
	deadline := time.Now().Add(d)
	for {
		var alive []int
		for _, p := range pids {
			if _, _, ok := procStat(p); ok {
				alive = append(alive, p)
			}
		}
		if len(alive) == 0 || time.Now().After(deadline) {
			for _, p := range alive {
				syscall.Kill(p, syscall.SIGKILL)
			}
			return alive
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// TestOutOfTreePlugin builds examples/bitfit — its own module, using only the public
// SDK — drops it into a plugin directory and runs it through the host.
func TestOutOfTreePlugin(t *testing.T) {
	bins := binaries(t)
	pluginDir := t.TempDir()
	build := exec.Command("go", "build", "-o", filepath.Join(pluginDir, "kadapt-plugin-bitfit"), ".")
	build.Dir = filepath.Join("..", "examples", "bitfit")
	if out, err := build.CombinedOutput(); err != nil {
		t.Fatalf("building examples/bitfit: %v\n%s", err, out)
	}
	cmd := exec.Command(filepath.Join(bins, "host"), "run", "--plugin", "bitfit", "--backbone", "clip-vit-b32", "--classes", "10", "--dry-run", "--json")
	cmd.Env = append(os.Environ(), "KADAPT_PLUGIN_PATH="+pluginDir)
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("%v\n%s", err, out)
	}
	var got struct {
		Adapter int64 `json:"adapter_params"`
	}
	if err := json.Unmarshal(out[strings.Index(string(out), "{"):], &got); err != nil {
		t.Fatalf("%v\n%s", err, out)
	}
	// Every bias of CLIP ViT-B/32 that gets a gradient: per block q, v, out (3·768),
	// fc1 (3072), fc2 (768) and two LayerNorms (2·768); plus ln_pre (not the keys'
	// biases nor ln_post's, which nothing trains).
	if want := int64(12*(3*768+3072+768+2*768) + 768); got.Adapter != want {
		t.Fatalf("bitfit trains %d parameters, want %d", got.Adapter, want)
	}
}

// TestResumeTrustsNothingInTheRunDir tampers with a finished run's directory the ways
// issue 11 found and checks that each resume is refused with the file and field at
// fault: another plugin binary named in config.json (never executed), a swapped binary
// accepted with --plugin-sha256 but planning a different method, an edited plan.json,
// an edited learning rate, a flipped byte in the checkpoint.
func TestResumeTrustsNothingInTheRunDir(t *testing.T) {
	bins := binaries(t)
	base := t.TempDir()
	if out, err := host(t, base, "run", "--plugin", "lora", "--epochs", "2", "--run-id", "r", "--quiet"); err != nil {
		t.Fatalf("%v\n%s", err, out)
	}
	sha := func(path string) string {
		data, err := os.ReadFile(path)
		if err != nil {
			t.Fatal(err)
		}
		sum := sha256.Sum256(data)
		return hex.EncodeToString(sum[:])
	}
	var recorded RunConfig
	raw, _ := os.ReadFile(filepath.Join(base, "runs", "r", "config.json"))
	if err := json.Unmarshal(raw, &recorded); err != nil {
		t.Fatal(err)
	}
	lora := filepath.Join(bins, "plugins", "kadapt-plugin-lora")
	if recorded.PluginSHA256 != sha(lora) || recorded.PluginBinary != lora {
		t.Fatalf("config.json records plugin %q with SHA-256 %q; want %s, %s", recorded.PluginBinary, recorded.PluginSHA256, lora, sha(lora))
	}
	adapter := filepath.Join(bins, "plugins", "kadapt-plugin-adapter")
	marker := filepath.Join(t.TempDir(), "executed")
	script := filepath.Join(t.TempDir(), "evil")
	if err := os.WriteFile(script, []byte("#!/bin/sh\ntouch "+marker+"\n"), 0o755); err != nil {
		t.Fatal(err)
	}
	edit := func(dir, file, old, new string) {
		path := filepath.Join(dir, "runs", "r", file)
		data, _ := os.ReadFile(path)
		if !strings.Contains(string(data), old) {
			t.Fatalf("%s has no %q", file, old)
		}
		os.WriteFile(path, []byte(strings.Replace(string(data), old, new, 1)), 0o644)
	}
	for _, tc := range []struct {
		name   string
		tamper func(dir string)
		flags  []string
		want   []string
	}{
		{"a script named in config.json", func(dir string) { edit(dir, "config.json", `"plugin": "lora"`, `"plugin": "`+script+`"`) }, nil,
			[]string{"SHA-256", "refusing to resume with another binary", "--plugin-sha256 " + sha(script)}},
		{"another plugin accepted by hash", func(dir string) { edit(dir, "config.json", `"plugin": "lora"`, `"plugin": "`+adapter+`"`) }, []string{"--plugin-sha256", sha(adapter)},
			[]string{"plan.json at ", "refusing to continue a different method"}},
		{"an edited plan.json", func(dir string) { edit(dir, "plan.json", `"kind": "zeros"`, `"kind": "ones"`) }, nil,
			[]string{"plan.json at params[1].init.kind", `"ones"`, `"zeros"`}},
		{"an edited learning rate", func(dir string) { edit(dir, "config.json", `"lr": 0.01`, `"lr": 0.1`) }, nil,
			[]string{"checkpoint.safetensors was written with train.lr = 0.01", "now says 0.1"}},
		{"a flipped byte in the checkpoint", func(dir string) {
			path := filepath.Join(dir, "runs", "r", "checkpoint.safetensors")
			data, _ := os.ReadFile(path)
			data[len(data)-3] ^= 1
			os.WriteFile(path, data, 0o644)
		}, nil, []string{"checkpoint.safetensors is corrupt"}},
	} {
		dir := t.TempDir()
		if out, err := exec.Command("cp", "-r", filepath.Join(base, "runs"), dir).CombinedOutput(); err != nil {
			t.Fatalf("%v\n%s", err, out)
		}
		tc.tamper(dir)
		out, err := host(t, dir, append([]string{"run", "--resume", filepath.Join("runs", "r"), "--quiet"}, tc.flags...)...)
		if err == nil {
			t.Errorf("%s: resume succeeded\n%s", tc.name, out)
			continue
		}
		for _, w := range tc.want {
			if !strings.Contains(out, w) {
				t.Errorf("%s: the error does not say %q:\n%s", tc.name, w, out)
			}
		}
	}
	if _, err := os.Stat(marker); err == nil {
		t.Error("resume executed the binary config.json named")
	}
}
