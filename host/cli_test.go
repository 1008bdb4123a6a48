package main

import (
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"unicode"
	"unicode/utf8"

	"github.com/spf13/cobra"
	"github.com/spf13/pflag"

	"github.com/kadapt/kadapt/datasets"
	"github.com/kadapt/kadapt/host/train"
)

// newFlags is a bare flag set, for tests that parse run flags outside a command.
func newFlags(name, _ string) *pflag.FlagSet {
	fs := pflag.NewFlagSet(name, pflag.ContinueOnError)
	fs.SetOutput(io.Discard)
	return fs
}

// hostRun runs the built host with extra environment variables and returns its
// stdout, stderr and exit status.
func hostRun(t *testing.T, env []string, args ...string) (stdout, stderr string, code int) {
	t.Helper()
	cmd := exec.Command(filepath.Join(binaries(t), "host"), args...)
	cmd.Dir = t.TempDir()
	cmd.Env = append(os.Environ(), env...)
	var out, errOut bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &errOut
	err := cmd.Run()
	var exit *exec.ExitError
	switch {
	case errors.As(err, &exit):
		code = exit.ExitCode()
	case err != nil:
		t.Fatalf("host %v: %v", args, err)
	}
	return out.String(), errOut.String(), code
}

// commandPaths lists every command of the tree, subcommands included, as argument
// lists: the commands a user can reach, each of which must have working help.
func commandPaths() [][]string {
	var paths [][]string
	var walk func(c *cobra.Command, path []string)
	walk = func(c *cobra.Command, path []string) {
		paths = append(paths, path)
		for _, sub := range c.Commands() {
			walk(sub, append(append([]string(nil), path...), sub.Name()))
		}
	}
	walk(newRootCmd(), nil)
	return paths
}

func TestEveryCommandsHelpGoesToStdoutAndExitsZero(t *testing.T) {
	for _, path := range commandPaths() {
		name := strings.Join(append([]string{"host"}, path...), " ")
		for _, args := range [][]string{
			append(append([]string(nil), path...), "--help"),
			append(append([]string(nil), path...), "-h"),
			append([]string{"help"}, path...),
		} {
			t.Run(strings.Join(args, " "), func(t *testing.T) {
				stdout, stderr, code := hostRun(t, nil, args...)
				if code != 0 || stderr != "" {
					t.Fatalf("exit %d, stderr %q; want 0 and nothing", code, stderr)
				}
				if !strings.Contains(stdout, "Usage:") || !strings.Contains(stdout, name) {
					t.Fatalf("stdout has no usage of %s:\n%s", name, stdout)
				}
			})
		}
	}
}

// TestOneLineHelpIsLowerCase: every command's one-line help, cobra's completion
// commands' included, reads the same way in a command list.
func TestOneLineHelpIsLowerCase(t *testing.T) {
	for _, path := range commandPaths() {
		c, _, err := newRootCmd().Find(path)
		if err != nil {
			t.Fatal(err)
		}
		if r, _ := utf8.DecodeRuneInString(c.Short); c.Short == "" || unicode.IsUpper(r) {
			t.Errorf("host %s: one-line help %q is empty or starts with a capital", strings.Join(path, " "), c.Short)
		}
	}
}

func TestUsageErrorsExitTwoWithAHint(t *testing.T) {
	cases := [][]string{
		{"bogus"},
		{"help", "bogus"},
		{"data"},
		{"data", "bogus"},
		{"sweep", "plna"}, // a mistyped subcommand, not a spec file
		{"data", "fetch"},
		{"data", "fetch", "a", "b", "--root", "x"},
		{"config"},
		{"completion"},
		{"completion", "tcsh"},
		{"completion", "bash", "extra"},
		{"plugins", "bogus"},
		{"plugins", "show"},
		{"report"},
		{"export", "--out", "x"},
		{"run", "extra"},
		{"run", "--epochs", "x"},
		{"run", "--epochs", "0"},
		{"run", "--batch-size", "1"}, // panicked in the head's batch norm
		{"run", "--optimizer", "adam"},
		{"run", "--head-init", "ones"},
		{"run", "--format", "tar"},
		{"run", "--nesterov=maybe"},
		{"run", "--shots", "-1"}, // ran on the whole training split
		{"run", "--val-fraction", "1"},
		{"run", "--plugin", "lora", "--hp", "rnak=4", "--dry-run"}, // exited 1, like a failed run
		{"run", "--plugin", "lora", "--hp", "r=four", "--dry-run"},
		{"config", "show", "--schedule", "linear"},
		{"sweep", "-j", "x"},
		{"sweep", "-j", "0", "--demo"},
		{"sweep", "plan", "--demo", "--", "--bogus"},
		{"sweep", "submit", "--demo", "--executor", "pbs"},
		{"sweep", "worker"},
		{"bench", "--steps", "x"},
		{"bench", "--batch", "1"}, // panicked in the head's batch norm
		{"pretrain", "--positives", "pairs"},
		{"version", "extra"},
		{"--log-level", "loud", "version"},
	}
	for _, path := range commandPaths() {
		cases = append(cases, append(append([]string(nil), path...), "--no-such-flag"))
	}
	for _, args := range cases {
		t.Run(strings.Join(args, " "), func(t *testing.T) {
			stdout, stderr, code := hostRun(t, nil, args...)
			lines := strings.Split(strings.TrimSpace(stderr), "\n")
			if code != 2 || len(lines) != 2 || !strings.Contains(lines[1], "--help` for usage") {
				t.Fatalf("exit %d, stderr:\n%s\nwant exit 2, the error and a one-line hint", code, stderr)
			}
			if stdout != "" {
				t.Fatalf("a usage error printed to stdout:\n%s", stdout)
			}
		})
	}
	t.Run("a near miss is named", func(t *testing.T) {
		for args, want := range map[string]string{"rnu": "did you mean run?", "data lst": "did you mean list?", "sweep plna": "did you mean sweep plan?"} {
			if _, stderr, _ := hostRun(t, nil, strings.Fields(args)...); !strings.Contains(stderr, want) {
				t.Errorf("host %s: %q, want %q", args, stderr, want)
			}
		}
	})
	t.Run("a bad hyperparameter is named with where it was set", func(t *testing.T) {
		for _, tc := range []struct {
			env, args []string
			want      string
		}{
			{nil, []string{"--hp", "rnak=4"}, `--hp: plugin "lora": unknown hyperparameter "rnak" (lora has: r, alpha`},
			{[]string{"KADAPT_HP__R=four"}, nil, `environment variable KADAPT_HP__R: plugin "lora": hyperparameter "r": "four" is not a valid int`},
		} {
			// Without --dry-run: the check comes before the model and data load.
			_, stderr, code := hostRun(t, tc.env, append([]string{"run", "--plugin", "lora"}, tc.args...)...)
			if code != 2 || !strings.Contains(stderr, tc.want) || !strings.Contains(stderr, "`host plugins show lora`") {
				t.Errorf("%v %v: exit %d, stderr:\n%s\nwant exit 2 and %q", tc.env, tc.args, code, stderr, tc.want)
			}
		}
	})
	t.Run("the hint names the command", func(t *testing.T) {
		_, stderr, _ := hostRun(t, nil, "sweep", "plan", "--no-such-flag")
		if !strings.Contains(stderr, "host sweep plan: unknown flag: --no-such-flag") || !strings.Contains(stderr, "Run `host sweep plan --help`") {
			t.Fatalf("stderr:\n%s", stderr)
		}
	})
}

func TestVersion(t *testing.T) {
	flag, stderr, code := hostRun(t, nil, "--version")
	if code != 0 || stderr != "" {
		t.Fatalf("--version: exit %d, stderr %q", code, stderr)
	}
	cmd, _, _ := hostRun(t, nil, "version")
	if flag != cmd {
		t.Fatalf("--version printed\n%s\nhost version printed\n%s", flag, cmd)
	}
	for _, want := range []string{"kadapt host (devel)", "build tags: ", "cpu gemm: "} {
		if !strings.Contains(flag, want) {
			t.Fatalf("--version lacks %q:\n%s", want, flag)
		}
	}
}

func sorted(s []string) []string {
	s = slices.Clone(s)
	slices.Sort(s)
	return s
}

func TestCompletionScripts(t *testing.T) {
	for _, shell := range []string{"bash", "zsh", "fish", "powershell"} {
		t.Run(shell, func(t *testing.T) {
			stdout, stderr, code := hostRun(t, nil, "completion", shell)
			if code != 0 || stderr != "" || !strings.Contains(stdout, "host") || len(stdout) < 1000 {
				t.Fatalf("exit %d, stderr %q, %d bytes of script", code, stderr, len(stdout))
			}
		})
	}
	// The shells ask the binary itself for candidates: subcommands and flags.
	stdout, _, code := hostRun(t, nil, "__complete", "sweep", "")
	if code != 0 || !strings.Contains(stdout, "plan") || !strings.Contains(stdout, "worker") {
		t.Fatalf("completing `host sweep `: exit %d\n%s", code, stdout)
	}
	stdout, _, _ = hostRun(t, nil, "__complete", "run", "--optim")
	if !strings.Contains(stdout, "--optimizer") {
		t.Fatalf("completing `host run --optim`:\n%s", stdout)
	}
	// Flag values and arguments come from the tables the commands check them against.
	for _, c := range []struct {
		args []string
		want []string
	}{
		{[]string{"run", "--optimizer", ""}, train.Optimizers},
		{[]string{"config", "show", "--head-init", ""}, hostChoices["head_init"]},
		{[]string{"--log-level", ""}, logLevels},
		{[]string{"run", "--plugin", ""}, allMethods},
		{[]string{"plugins", "show", ""}, allMethods},
		{[]string{"bench", "--backbone", ""}, presetList()},
		{[]string{"data", "fetch", ""}, datasetNames()[1:]},
		{[]string{"sweep", "submit", "--executor", ""}, executors},
	} {
		stdout, _, _ := hostRun(t, nil, append([]string{"__complete"}, c.args...)...)
		got := strings.Split(strings.TrimSpace(stdout), "\n")
		got = got[:len(got)-1] // the directive
		if !slices.Equal(sorted(got), sorted(c.want)) {
			t.Errorf("completing host %v: %v, want %v", c.args, got, c.want)
		}
	}
}

// TestJSONOfEveryReportingCommand checks that --json prints exactly one JSON document
// on stdout, whatever goes to stderr.
func TestJSONOfEveryReportingCommand(t *testing.T) {
	runs := t.TempDir()
	reported := mixedRuns(t)
	dataset := datasets.Registry()[0].Name
	file := []byte("hello")
	sum := sha256.Sum256(file)
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path != "/"+dataset+"/a.txt" {
			http.NotFound(w, r)
			return
		}
		w.Write(file)
	}))
	defer srv.Close()
	camera, err := filepath.Abs("../backbones/preprocess/testdata/camera.png")
	if err != nil {
		t.Fatal(err)
	}
	// In order: export reads the run that run writes.
	cases := []struct {
		name string
		args []string
	}{
		{"version", []string{"version", "--json"}},
		{"config show", []string{"config", "show", "--epochs", "3", "--json"}},
		{"plugins", []string{"plugins", "--json"}},
		{"plugins show", []string{"plugins", "show", "lora", "--json"}},
		{"data list", []string{"data", "list", "--json"}},
		{"data fetch", []string{"data", "fetch", dataset, "--root", t.TempDir(), "--base-url", srv.URL, "--insecure", "--files", "a.txt:5:" + hex.EncodeToString(sum[:]), "--json"}},
		{"sweep plan", []string{"sweep", "plan", "--demo", "--json"}},
		{"sweep status", []string{"sweep", "status", "--demo", "--runs-dir", runs, "--json"}},
		{"sweep", []string{"sweep", "--datasets", "mnist-demo", "--plugins", "linearprobe", "--seeds", "0", "--runs-dir", runs, "--json", "--", "--epochs", "1"}},
		{"report", []string{"report", reported, "--out", filepath.Join(t.TempDir(), "r"), "--json"}},
		{"run --dry-run", []string{"run", "--plugin", "lora", "--dry-run", "--classes", "5", "--json"}},
		{"bench", []string{"bench", "--backbone", "clip-vit-b32", "--batch", "2", "--steps", "1", "--json"}},
		{"run", []string{"run", "--plugin", "lora", "--epochs", "1", "--runs-dir", runs, "--run-id", "r", "--json"}},
		{"export", []string{"export", filepath.Join(runs, "r"), "--out", t.TempDir(), "--json"}},
		{"zeroshot", []string{"zeroshot", "--model", clipFolder(t), "--classes", "cat,dog", "--images", camera, "--json"}},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			stdout, stderr, code := hostRun(t, nil, c.args...)
			if code != 0 {
				t.Fatalf("exit %d:\n%s", code, stderr)
			}
			dec := json.NewDecoder(strings.NewReader(stdout))
			var doc any
			if err := dec.Decode(&doc); err != nil {
				t.Fatalf("stdout is not JSON: %v\n%s", err, stdout)
			}
			if err := dec.Decode(&doc); err != io.EOF {
				t.Fatalf("stdout holds more than one JSON document (%v):\n%s", err, stdout)
			}
		})
	}
}

func TestLogLevelFromFlagAndEnvironment(t *testing.T) {
	// A dry run starts a plugin: go-plugin logs that at debug, and the plugin's own
	// go-plugin server logs its address at debug, relayed under the method's name.
	dryRun := []string{"run", "--plugin", "lora", "--dry-run"}
	cases := []struct {
		name      string
		env       []string
		flag      string
		wantDebug bool
	}{
		{"default info", nil, "", false},
		{"environment", []string{"KADAPT_LOG_LEVEL=debug"}, "", true},
		{"flag", nil, "debug", true},
		{"flag wins", []string{"KADAPT_LOG_LEVEL=debug"}, "warn", false},
		{"flag wins the other way", []string{"KADAPT_LOG_LEVEL=error"}, "DEBUG", true},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			args := dryRun
			if c.flag != "" {
				args = append([]string{"--log-level", c.flag}, dryRun...)
			}
			_, stderr, code := hostRun(t, c.env, args...)
			if code != 0 {
				t.Fatalf("exit %d:\n%s", code, stderr)
			}
			gotDebug := strings.Contains(stderr, "[DEBUG] host: starting plugin")
			relayed := strings.Contains(stderr, "[DEBUG] host.lora: plugin address")
			if gotDebug != c.wantDebug || relayed != c.wantDebug {
				t.Fatalf("host's debug lines %v, the plugin's %v, want %v:\n%s", gotDebug, relayed, c.wantDebug, stderr)
			}
			// A relayed line has the host's time and the method's name once.
			if strings.Contains(stderr, "@module") || strings.Contains(stderr, "timestamp=") || strings.Contains(stderr, "kadapt-plugin-lora.") {
				t.Fatalf("a relayed plugin line repeats its name or time:\n%s", stderr)
			}
		})
	}
	t.Run("a bad level names its source", func(t *testing.T) {
		_, stderr, code := hostRun(t, []string{"KADAPT_LOG_LEVEL=loud"}, "version")
		if code != 2 || !strings.Contains(stderr, `$KADAPT_LOG_LEVEL "loud": want one of trace, debug, info, warn, error, off`) {
			t.Fatalf("exit %d:\n%s", code, stderr)
		}
	})
}
