package main

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"text/tabwriter"
	"time"

	"github.com/hashicorp/go-hclog"
	"github.com/knadh/koanf/parsers/yaml"
	"github.com/knadh/koanf/providers/file"
	"github.com/knadh/koanf/v2"
	"github.com/spf13/cobra"
	"github.com/spf13/pflag"
	"golang.org/x/sync/errgroup"

	"github.com/kadapt/kadapt/host/atomicfile"
	"github.com/kadapt/kadapt/host/lifecycle"
	"github.com/kadapt/kadapt/host/runlock"
	"github.com/kadapt/kadapt/host/train"
	"github.com/kadapt/kadapt/plugins"
)

func init() {
	addCommand(newSweepCmd)
}

// allMethods are the six methods of the paper, in its table's order.
var allMethods = []string{"kadaptation", "adapter", "lora", "compacter", "finetune", "linearprobe"}

// exitClaimed is a `sweep worker --no-wait`'s status when another live process holds
// the point (EX_CANTCREAT of sysexits.h: its run directory is someone else's).
const exitClaimed = 73

func newSweepCmd() *cobra.Command {
	cmd := &cobra.Command{
		Use:   "sweep [SPEC | --demo | --datasets x,y] [--plugins a,b] [--seeds 0,1,2] [-j N] [-- run flags]",
		Short: "run a sweep spec (a grid of runs) here, or plan, watch, submit it to Slurm or Kubernetes",
		Long: `Run a sweep spec (a grid of runs) on this machine, jobs at a time, or plan, watch
or submit it to Slurm or Kubernetes (the subcommands).

SPEC is a YAML sweep spec (docs/sweeps.md); --demo is the bundled one. --plugins,
--datasets, --seeds, --runs-dir and run flags after -- adjust it (or, with no spec,
build one).`,
		Args: cobra.ArbitraryArgs, // SPEC, then run flags after --: resolve checks them
	}
	fs := cmd.Flags()
	src := addSpecFlags(fs)
	jobs := fs.IntP("jobs", "j", 1, "runs at once")
	jsonOut := fs.Bool("json", false, "when the sweep ends, print each point's state (as `sweep status --json`) as one JSON array")
	cmd.RunE = func(cmd *cobra.Command, args []string) error {
		// A mistyped subcommand reaches here as a SPEC file that does not exist.
		if len(args) > 0 && !fileExists(args[0]) {
			if s := cmd.SuggestionsFor(args[0]); len(s) > 0 {
				return usageErr("no spec file %q (did you mean sweep %s?)", args[0], strings.Join(s, " or sweep "))
			}
		}
		if *jobs < 1 {
			return usageErr("--jobs must be at least 1")
		}
		sp, err := src.resolve(fs, true)
		if err != nil {
			return err
		}
		if err := runLocal(cmd.Context(), sp, *jobs); err != nil {
			return err
		}
		if *jsonOut {
			pts, err := sp.plan()
			if err != nil {
				return err
			}
			return printSweepStatus(sp, pts, true)
		}
		return nil
	}
	cmd.AddCommand(newSweepPlanCmd(), newSweepStatusCmd(), newSweepSubmitCmd(), newSweepWorkerCmd())
	return cmd
}

// specSource is how a command names its spec: a file, --demo, or shorthand flags.
type specSource struct {
	demo                     *bool
	plugins, datasets, seeds *string
	runsDir                  *string
}

func addSpecFlags(fs *pflag.FlagSet) *specSource {
	return &specSource{
		demo:     fs.Bool("demo", false, "the bundled demo spec, host/sweeps/demo.yaml: the six methods and KAdaptation's bias-only ablation on the built-in MNIST task (`host sweep plan --demo` lists it)"),
		plugins:  fs.String("plugins", "", "comma-separated plugins: only these methods of the spec (without a spec: these, default all six)"),
		datasets: fs.String("datasets", "", "comma-separated datasets: replaces the spec's data.dataset"),
		seeds:    fs.String("seeds", "", "comma-separated seeds: replaces the spec's seeds"),
		runsDir:  fs.String("runs-dir", "", "where the run directories go (replaces the spec's runs_dir)"),
	}
}

// resolve reads the spec named by the arguments and applies the adjusting flags.
// withRunFlags lets arguments after -- set run keys for every point.
func (s *specSource) resolve(fs *pflag.FlagSet, withRunFlags bool) (*sweepSpec, error) {
	args := fs.Args()
	var runFlags []string
	if at := fs.ArgsLenAtDash(); at >= 0 {
		if !withRunFlags {
			return nil, usageErr("run flags after -- belong to `host sweep SPEC` (the spec is what workers read)")
		}
		args, runFlags = args[:at], args[at:]
	}
	var sp *sweepSpec
	var err error
	switch {
	case len(args) > 1:
		return nil, usageErr("want one SPEC file, got %q", args)
	case len(args) == 1 && *s.demo:
		return nil, usageErr("give a SPEC file or --demo, not both")
	case len(args) == 1:
		if sp, err = loadSweepSpec(args[0]); err != nil {
			return nil, err
		}
	case *s.demo:
		if sp, err = parseSweepSpec(demoSpecName, demoSpecYAML); err != nil {
			return nil, err
		}
		sp.Name = "demo"
	default:
		if *s.datasets == "" {
			return nil, usageErr("give a SPEC file, --demo, or --datasets (with --plugins and --seeds) to build one")
		}
		sp = &sweepSpec{Source: "the sweep flags", Name: "sweep", RunsDir: "runs", Seeds: []any{0, 1, 2}, Fixed: map[string]any{}, Grid: map[string][]any{}}
		for _, p := range allMethods {
			sp.Methods = append(sp.Methods, methodSpec{Name: p, Plugin: p})
		}
	}
	if ps := splitList(*s.plugins); len(ps) > 0 {
		var keep []methodSpec
		for _, p := range ps {
			found := false
			for _, m := range sp.Methods {
				if m.Plugin == p || m.Name == p {
					keep, found = append(keep, m), true
				}
			}
			if !found && sp.Source == "the sweep flags" {
				keep, found = append(keep, methodSpec{Name: p, Plugin: p}), true
			}
			if !found {
				return nil, usageErr("--plugins: %s has no method %q", sp.Source, p)
			}
		}
		sp.Methods = keep
	}
	if ds := splitList(*s.datasets); len(ds) > 0 {
		delete(sp.Fixed, "data.dataset")
		sp.Grid["data.dataset"] = toAny(ds)
	}
	if ss := splitList(*s.seeds); len(ss) > 0 {
		sp.Seeds = nil
		for _, v := range ss {
			var n uint64
			if _, err := fmt.Sscan(v, &n); err != nil {
				return nil, usageErr("--seeds: %q is not a seed", v)
			}
			sp.Seeds = append(sp.Seeds, n)
		}
	}
	if *s.runsDir != "" {
		sp.RunsDir = *s.runsDir
	}
	if len(runFlags) > 0 {
		set, err := runFlagKeys(runFlags)
		if err != nil {
			return nil, err
		}
		for k, v := range set {
			sp.Fixed[k] = v
		}
	}
	return sp, nil
}

func toAny(ss []string) []any {
	out := make([]any, len(ss))
	for i, s := range ss {
		out[i] = s
	}
	return out
}

// runFlagKeys turns `host run` flags into the run keys they set.
func runFlagKeys(args []string) (map[string]any, error) {
	fs := pflag.NewFlagSet("sweep -- [run flags]", pflag.ContinueOnError)
	fs.Usage = func() {}
	fs.SetOutput(io.Discard)
	addRunFlags(fs)
	if err := fs.Parse(args); err != nil {
		return nil, usageErr("after --: %v", err)
	}
	if fs.NArg() > 0 {
		return nil, usageErr("after --: unexpected argument %q", fs.Arg(0))
	}
	set := map[string]any{}
	var err error
	fs.Visit(func(f *pflag.Flag) {
		switch key, ok := flagKeys[f.Name]; {
		case ok && (key == "plugin" || key == "run_id" || key == "runs_dir"):
			err = usageErr("after --: --%s is the sweep's to set (--plugins, --runs-dir)", f.Name)
		case ok:
			set[key] = f.Value.String()
		}
	})
	if err != nil {
		return nil, err
	}
	if path, _ := fs.GetString("config"); path != "" {
		fk := koanf.New(".")
		if err := fk.Load(file.Provider(path), yaml.Parser()); err != nil {
			return nil, fmt.Errorf("%s: %v", path, err)
		}
		if _, err := runKeys(fk.All(), path); err != nil {
			return nil, err
		}
		for k, v := range fk.All() {
			if _, byFlag := set[k]; !byFlag {
				set[k] = v
			}
		}
	}
	hps, _ := fs.GetStringArray("hp")
	for _, hp := range hps {
		name, value, ok := strings.Cut(hp, "=")
		if !ok || name == "" {
			return nil, usageErr("--hp %q: want NAME=VALUE", hp)
		}
		set["hp."+name] = value
	}
	return set, nil
}

// freeze writes the spec where workers read it: <runs_dir>/.sweeps/NAME-HASH.yaml,
// named by its content, with runs_dir made absolute.
func freeze(sp *sweepSpec) (string, error) {
	abs, err := filepath.Abs(sp.RunsDir)
	if err != nil {
		return "", err
	}
	frozen := *sp
	frozen.RunsDir = abs
	data, err := frozen.specYAML()
	if err != nil {
		return "", err
	}
	dir := filepath.Join(abs, ".sweeps")
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return "", err
	}
	path := filepath.Join(dir, fmt.Sprintf("%s-%s.yaml", notIDChars.ReplaceAllString(sp.Name, "_"), contentHash(data)))
	if !fileExists(path) {
		if err := atomicfile.Write(path, data); err != nil {
			return "", err
		}
	}
	return path, nil
}

// --- plan and status ---

// points resolves the spec the arguments name and expands it: the prologue of every
// sweep command that looks at the points without running them.
func (s *specSource) points(fs *pflag.FlagSet) (*sweepSpec, []sweepPoint, error) {
	sp, err := s.resolve(fs, true)
	if err != nil {
		return nil, nil, err
	}
	pts, err := sp.plan()
	return sp, pts, err
}

func newSweepPlanCmd() *cobra.Command {
	cmd := &cobra.Command{
		Use:   "plan SPEC|--demo [--json]",
		Short: "list the runs a sweep spec expands to (index, run id, values)",
		Args:  cobra.ArbitraryArgs, // resolve checks them
	}
	fs := cmd.Flags()
	src := addSpecFlags(fs)
	jsonOut := fs.Bool("json", false, "the points as one JSON array, with each one's full run configuration")
	cmd.RunE = func(*cobra.Command, []string) error {
		sp, pts, err := src.points(fs)
		if err != nil {
			return err
		}
		return printSweepPlan(sp, pts, *jsonOut)
	}
	return cmd
}

func printSweepPlan(sp *sweepSpec, pts []sweepPoint, jsonOut bool) error {
	if jsonOut {
		return writeJSON(pts)
	}
	tw := tabwriter.NewWriter(os.Stdout, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "INDEX\tRUN ID\tVALUES")
	for _, p := range pts {
		fmt.Fprintf(tw, "%d\t%s\t%s\n", p.Index, p.ID, describeValues(p.Values))
	}
	tw.Flush()
	fmt.Printf("%d points of %s in %s\n", len(pts), sp.Source, sp.RunsDir)
	return nil
}

func writeJSON(v any) error {
	enc := json.NewEncoder(os.Stdout)
	enc.SetIndent("", "  ")
	return enc.Encode(v)
}

// pointState is what the runs directory says about a point.
type pointState struct {
	Index     int       `json:"index"`
	ID        string    `json:"id"`
	State     string    `json:"state"` // pending | running | finished | failed
	Host      string    `json:"host,omitempty"`
	PID       int       `json:"pid,omitempty"`
	Since     time.Time `json:"since,omitzero"`
	Heartbeat time.Time `json:"heartbeat,omitzero"`
	Error     string    `json:"error,omitempty"`  // failed: the error's last line
	Detail    string    `json:"detail,omitempty"` // finished: the score; pending: where it resumes
	Accuracy  *float64  `json:"accuracy,omitempty"`
}

// failureRecord is failed.json: why a worker's last attempt at a point failed.
type failureRecord struct {
	Error string    `json:"error"`
	Host  string    `json:"host"`
	PID   int       `json:"pid"`
	At    time.Time `json:"at"`
}

func statusOf(runsDir string, p sweepPoint) pointState {
	dir := filepath.Join(runsDir, p.ID)
	st := pointState{Index: p.Index, ID: p.ID, State: "pending"}
	var fin Summary
	if raw, err := os.ReadFile(filepath.Join(dir, runFinalFile)); err == nil && json.Unmarshal(raw, &fin) == nil {
		st.State, st.Accuracy = "finished", &fin.Accuracy
		st.Detail = fmt.Sprintf("%s %.2f%% at epoch %d", fin.Metric, fin.Accuracy, fin.Epoch)
		return st
	}
	lk := runlock.Inspect(dir, runlock.DefaultTimeout)
	if lk.Held && !lk.Stale {
		st.State = "running"
		if lk.Holder != nil {
			st.Host, st.PID, st.Since, st.Heartbeat = lk.Holder.Host, lk.Holder.PID, lk.Holder.Started, lk.Holder.Heartbeat
		}
		return st
	}
	var fr failureRecord
	if raw, err := os.ReadFile(filepath.Join(dir, runFailedFile)); err == nil && json.Unmarshal(raw, &fr) == nil {
		st.State, st.Error, st.Host, st.Since = "failed", lastLine(fr.Error), fr.Host, fr.At
		return st
	}
	if lk.Stale {
		st.Detail = "its writer died (" + lk.Why + ")"
	}
	if hasCheckpoint(dir) {
		if raw, err := os.ReadFile(train.MetricsPath(dir)); err == nil {
			st.Detail = strings.TrimPrefix(st.Detail+"; ", "; ") + fmt.Sprintf("resumes after epoch %d", bytes.Count(raw, []byte("\n")))
		}
	}
	return st
}

// lockedBuffer is a bytes.Buffer that a worker's stdout and stderr, copied by two
// goroutines, can both write.
type lockedBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (l *lockedBuffer) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.Write(p)
}

func (l *lockedBuffer) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.String()
}

func lastLine(s string) string {
	lines := strings.Split(strings.TrimSpace(s), "\n")
	return strings.TrimSpace(lines[len(lines)-1])
}

func newSweepStatusCmd() *cobra.Command {
	cmd := &cobra.Command{
		Use:   "status SPEC|--demo [--json]",
		Short: "what the runs directory says about each point: pending, running, finished or failed",
		Args:  cobra.ArbitraryArgs, // resolve checks them
	}
	fs := cmd.Flags()
	src := addSpecFlags(fs)
	jsonOut := fs.Bool("json", false, "the points' states as one JSON array")
	cmd.RunE = func(*cobra.Command, []string) error {
		sp, pts, err := src.points(fs)
		if err != nil {
			return err
		}
		return printSweepStatus(sp, pts, *jsonOut)
	}
	return cmd
}

func printSweepStatus(sp *sweepSpec, pts []sweepPoint, jsonOut bool) error {
	states := make([]pointState, len(pts))
	count := map[string]int{}
	for i, p := range pts {
		states[i] = statusOf(sp.RunsDir, p)
		count[states[i].State]++
	}
	if jsonOut {
		return writeJSON(states)
	}
	tw := tabwriter.NewWriter(os.Stdout, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "INDEX\tRUN ID\tSTATE\tDETAIL")
	for _, s := range states {
		detail := s.Detail
		switch s.State {
		case "running":
			detail = fmt.Sprintf("on %s (pid %d) since %s, heartbeat %s ago", s.Host, s.PID, s.Since.Local().Format("2006-01-02 15:04:05"), time.Since(s.Heartbeat).Round(time.Second))
		case "failed":
			detail = fmt.Sprintf("on %s at %s: %s", s.Host, s.Since.Local().Format("2006-01-02 15:04:05"), s.Error)
		}
		fmt.Fprintf(tw, "%d\t%s\t%s\t%s\n", s.Index, s.ID, s.State, detail)
	}
	tw.Flush()
	fmt.Printf("%d points: %d finished, %d running, %d failed, %d pending (%s)\n", len(pts), count["finished"], count["running"], count["failed"], count["pending"], sp.RunsDir)
	return nil
}

// --- local executor ---

// runLocal runs the spec's unfinished points on this machine, jobs at a time, each
// as a `host sweep worker` child on the frozen spec: the same claim, resume and
// failure record as on a cluster, so a local sweep and cluster workers can share a
// runs directory.
// checkPlugins finds each point's plugin and checks the point's hyperparameters
// against its description before any worker starts, each plugin started once: a
// mistyped plugin or hyperparameter in the spec would otherwise fail every point
// that uses it, one worker after another, each after loading its model.
func checkPlugins(sp *sweepSpec, pts []sweepPoint, log hclog.Logger) error {
	described := map[string]plugins.Description{} // by what resolves the plugin
	for _, p := range pts {
		rc := p.Config
		key := strings.Join([]string{rc.Plugin, rc.PluginPath, rc.PluginSHA256}, "\x00")
		d, ok := described[key]
		if !ok {
			m, err := func() (method, error) {
				if err := resolvePlugin(&rc, "", ""); err != nil {
					return nil, err
				}
				return openMethod(rc, log)
			}()
			if err != nil {
				return fmt.Errorf("%s: point %d (%s): %w", sp.Source, p.Index, p.ID, err)
			}
			d = m.Describe()
			m.Close()
			described[key] = d
		}
		if err := checkHyperparameters(rc, d); err != nil {
			return fmt.Errorf("%s: point %d (%s): %w", sp.Source, p.Index, p.ID, err)
		}
	}
	return nil
}

func runLocal(ctx context.Context, sp *sweepSpec, jobs int) error {
	pts, err := sp.plan()
	if err != nil {
		return err
	}
	self, err := os.Executable()
	if err != nil {
		return err
	}
	log := newLogger("sweep")
	var todo []sweepPoint
	for _, p := range pts {
		switch st := statusOf(sp.RunsDir, p); st.State {
		case "finished":
			log.Info("finished already, skipping", "run", p.ID)
		case "running":
			log.Info("running elsewhere, skipping", "run", p.ID, "host", st.Host, "pid", st.PID)
		default:
			todo = append(todo, p)
		}
	}
	if err := checkPlugins(sp, todo, log); err != nil {
		return err
	}
	frozen, err := freeze(sp)
	if err != nil {
		return err
	}
	// One task for the sweep (its ETA from the points handled so far) and, while a
	// point runs, one for it, fed by its worker's progress events.
	shown := display(false)
	overall := shown.Start("sweep", int64(len(todo)))
	defer overall.End()
	overall.Update(0, 0, "")
	overall.Show()
	var mu sync.Mutex
	var failed, elsewhere []string
	handled := 0
	finish := func() {
		mu.Lock()
		handled++
		detail := ""
		if len(failed) > 0 {
			detail = fmt.Sprintf("%d failed", len(failed))
		}
		n := handled
		mu.Unlock()
		overall.Update(int64(n), 0, detail)
	}
	g := new(errgroup.Group)
	g.SetLimit(jobs)
	for _, p := range todo {
		if ctx.Err() != nil {
			break
		}
		g.Go(func() error {
			if ctx.Err() != nil {
				return nil
			}
			defer finish()
			log.Info("starting", "run", p.ID, "of", fmt.Sprintf("%d/%d", p.Index+1, len(pts)))
			// A worker stops with the sweep: SIGTERM (it checkpoints) when ctx ends, and
			// from the kernel if the sweep itself is killed.
			args := []string{"sweep", "worker", frozen, "--index", fmt.Sprint(p.Index), "--no-wait", "--progress-events"}
			if logLevelChosen {
				args = append(args, "--log-level", logLevel.String())
			}
			cmd := lifecycle.Command(ctx, self, args...)
			var out, result lockedBuffer
			events := shown.Forward(p.ID, &out)
			cmd.Stdout, cmd.Stderr = io.MultiWriter(&out, &result), events
			err := cmd.Run()
			events.Close()
			var exit *exec.ExitError
			switch {
			case err == nil:
				log.Info("done", "run", p.ID, "result", lastLine(result.String()))
			case errors.As(err, &exit) && exit.ExitCode() == exitClaimed:
				mu.Lock()
				elsewhere = append(elsewhere, p.ID)
				mu.Unlock()
				log.Info("claimed by another process, skipping", "run", p.ID, "why", lastLine(out.String()))
			case ctx.Err() != nil:
				log.Info("stopped", "run", p.ID)
			default:
				mu.Lock()
				failed = append(failed, p.ID)
				mu.Unlock()
				log.Error("run failed", "run", p.ID, "error", err, "output", out.String())
			}
			return nil
		})
	}
	g.Wait()
	if ctx.Err() != nil {
		return lifecycle.Stopped(ctx, "run the same sweep again to resume")
	}
	if len(failed) > 0 {
		return fmt.Errorf("%d run(s) failed: %v (`host sweep status` shows why)", len(failed), failed)
	}
	if len(elsewhere) > 0 {
		log.Info("some points are being run by other processes", "runs", elsewhere)
	}
	return nil
}
