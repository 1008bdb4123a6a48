package main

import (
	"context"
	"encoding/json"
	"fmt"
	"maps"
	"math"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"time"

	"github.com/hashicorp/go-hclog"
	"github.com/spf13/cobra"
	"github.com/spf13/pflag"

	"github.com/kadapt/kadapt/backbones"
	"github.com/kadapt/kadapt/core"
	"github.com/kadapt/kadapt/core/autograd"
	"github.com/kadapt/kadapt/host/adapt"
	"github.com/kadapt/kadapt/host/atomicfile"
	"github.com/kadapt/kadapt/host/data"
	"github.com/kadapt/kadapt/host/lifecycle"
	"github.com/kadapt/kadapt/host/progress"
	"github.com/kadapt/kadapt/host/runlock"
	"github.com/kadapt/kadapt/host/train"
	"github.com/kadapt/kadapt/plugins"
	"github.com/kadapt/kadapt/plugins/plan"
)

func init() {
	addCommand(newRunCmd)
}

// Summary is the outcome of a run, printed and written to final.json.
type Summary struct {
	Plugin        string `json:"plugin"`
	PluginVersion string `json:"plugin_version,omitempty"`
	// PluginBinarySHA256 tells apart builds of one plugin version whose code differs.
	PluginBinarySHA256 string `json:"plugin_binary_sha256,omitempty"`
	// HP is every hyperparameter of the plugin as the run used it, defaults included,
	// so runs are grouped by what ran, not by what was typed.
	HP       map[string]string `json:"hp,omitempty"`
	Dataset  string            `json:"dataset"`
	Backbone string            `json:"backbone"`
	// BackboneSHA256 identifies the pretrained weights (the built-in backbone's too),
	// so runs on different weights of one architecture are never pooled.
	BackboneSHA256  string  `json:"backbone_sha256,omitempty"`
	Metric          string  `json:"metric"`
	Accuracy        float64 `json:"accuracy"` // the test score at the selected epoch, in percent
	TrainableParams int64   `json:"trainable_params"`
	HeadParams      int64   `json:"head_params"`
	// HeadInit is the head initialisation applied: head_init text falls back to random
	// on a backbone without a text tower.
	HeadInit    string  `json:"head_init,omitempty"`
	PE          float64 `json:"pe"`
	Epoch       int     `json:"epoch"`
	Selection   string  `json:"selection"`
	Seed        uint64  `json:"seed"`
	FewShotSeed int     `json:"fewshot_seed"`
	Shots       int     `json:"shots"`
	RunDir      string  `json:"run_dir"`
	Seconds     float64 `json:"seconds"`
	// Movement is the training diagnostic: per trainable group, its relative change
	// and first and last gradient norms (train.Movement).
	Movement *train.Movement `json:"movement,omitempty"`
}

// PE is the paper's performance-efficiency score: acc · exp(−log10(M/10⁸ + 1)) for M
// trainable parameters, in the unit of acc.
func PE(acc float64, params int64) float64 {
	return acc * math.Exp(-math.Log10(float64(params)/1e8+1))
}

// runOptions are the flags of `host run` that are not configuration keys.
type runOptions struct {
	dryRun, jsonOut, quiet bool
	classes                int
	resume                 string
}

func newRunCmd() *cobra.Command {
	cmd := &cobra.Command{
		Use:   "run --plugin NAME [flags]",
		Short: "adapt a backbone with a method plugin and evaluate it (the main job)",
		Args:  noArgs,
	}
	fs := cmd.Flags()
	addRunFlags(fs)
	var o runOptions
	fs.BoolVar(&o.dryRun, "dry-run", false, "print the plan and trainable_params without weights or data")
	fs.IntVar(&o.classes, "classes", 0, "number of classes, for --dry-run")
	fs.BoolVar(&o.jsonOut, "json", false, "print the result as one JSON object")
	fs.StringVar(&o.resume, "resume", "", "continue the run in this directory (runs/<id>)")
	fs.BoolVar(&o.quiet, "quiet", false, "no progress output")
	completeRunFlags(cmd)
	cmd.RunE = func(cmd *cobra.Command, _ []string) error {
		return cmdRun(cmd.Context(), fs, o)
	}
	return cmd
}

func cmdRun(ctx context.Context, fs *pflag.FlagSet, o runOptions) error {
	rc, _, err := loadRunConfig(fs)
	if err != nil {
		return err
	}
	log := newLogger("host")
	if o.quiet || o.jsonOut {
		quietDefault(log)
	}
	var at runAt
	if o.resume != "" {
		if err := resumeFlagsIgnored(fs); err != nil {
			return err
		}
		if err := checkRunDir(o.resume); err != nil {
			return fmt.Errorf("--resume: %w", err)
		}
		lock, err := lockRunDir(o.resume, "host run --resume")
		if err != nil {
			return fmt.Errorf("--resume: %w", err)
		}
		defer lock.Release()
		if rc, err = readRunConfig(o.resume); err != nil {
			return fmt.Errorf("--resume: %w", err)
		}
		at = runAt{Dir: o.resume, Resume: hasCheckpoint(o.resume), Lock: lock}
		if !at.Resume {
			log.Warn("no checkpoint yet: starting the run from the beginning", "dir", o.resume)
		}
	}
	if !o.dryRun && fs.Changed("classes") {
		return usageErr("--classes: only a --dry-run takes the class count; a run reads it from the dataset")
	}
	override := ""
	if at.Dir != "" && fs.Changed("plugin-sha256") {
		override, _ = fs.GetString("plugin-sha256")
	}
	if err := resolvePlugin(&rc, at.Dir, override); err != nil {
		if at.Dir != "" {
			return fmt.Errorf("--resume %s: %w", at.Dir, err)
		}
		return err
	}
	meth, err := openMethod(rc, log)
	if err != nil {
		return err
	}
	defer meth.Close()
	if err := checkHyperparameters(rc, meth.Describe()); err != nil {
		return err
	}
	if o.dryRun {
		return dryRunPlan(rc, meth, o.classes, o.jsonOut)
	}
	s, err := runJob(ctx, rc, meth, log, at, o.quiet || o.jsonOut)
	if err != nil {
		return err
	}
	if o.jsonOut {
		enc := json.NewEncoder(os.Stdout)
		enc.SetIndent("", "  ")
		return enc.Encode(s)
	}
	fmt.Printf("%s on %s (%s): %s %.2f%% at epoch %d (%s)\n", s.Plugin, s.Dataset, s.Backbone, s.Metric, s.Accuracy, s.Epoch, s.Selection)
	fmt.Printf("trainable_params: %d (head %d)\npe: %.2f\nrun_dir: %s\n", s.TrainableParams, s.HeadParams, s.PE, s.RunDir)
	return nil
}

// checkHyperparameters refuses an unknown hyperparameter, or a value of the wrong
// type, as the usage error it is (a bad flag value), before any weights load, and
// names where it was set: the plugin checks the same values again, but only after
// the model and data are loaded, and without knowing the flag, file or variable.
func checkHyperparameters(rc RunConfig, d plugins.Description) error {
	for _, name := range slices.Sorted(maps.Keys(rc.HP)) {
		_, err := plugins.ParseValues(d, map[string]string{name: rc.HP[name]})
		if err == nil {
			continue
		}
		if rc.setBy != nil && rc.setBy("hp."+name) != "" {
			err = fmt.Errorf("%s: %w", rc.setBy("hp."+name), err)
		}
		return asUsage(fmt.Errorf("%w; `host plugins show %s` lists its hyperparameters", err, d.Name))
	}
	return nil
}

// dryRunPlan asks the plugin for its plan on a described (not loaded) backbone.
func dryRunPlan(rc RunConfig, meth method, classes int, jsonOut bool) error {
	bb, cfg, err := dryRunBackbone(rc)
	if err != nil {
		return err
	}
	bb.Budget = rc.Limits.budget()
	p, err := meth.Plan(bb, rc.HP)
	if err != nil {
		return err
	}
	n, err := plan.CountTrainable(p, bb)
	if err != nil {
		return err
	}
	feat := cfg.EmbedDim
	if feat == 0 {
		feat = cfg.Width
	}
	head := int64(0)
	if classes > 0 {
		head = int64(feat+1) * int64(classes)
	}
	if jsonOut {
		enc := json.NewEncoder(os.Stdout)
		enc.SetIndent("", "  ")
		return enc.Encode(map[string]any{"plugin": rc.Plugin, "backbone": cfg.Name, "plan": p,
			"adapter_params": n, "head_params": head, "trainable_params": n + head})
	}
	out, _ := json.MarshalIndent(p, "", "  ")
	fmt.Printf("plan of %s on %s:\n%s\n", rc.Plugin, cfg.Name, out)
	fmt.Printf("adapter_params: %d\nhead_params: %d (%d·%d)\ntrainable_params: %d\n", n, head, feat+1, classes, n+head)
	return nil
}

// dryRunBackbone is what the plugin is shown on a dry run: the description a real run
// gives it (adapt.Describe of the loaded tower), from the architecture alone.
func dryRunBackbone(rc RunConfig) (plan.Backbone, backbones.Config, error) {
	cfg, err := describedConfig(rc)
	if err != nil {
		return plan.Backbone{}, cfg, err
	}
	v, err := backbones.Structure(cfg)
	if err != nil {
		return plan.Backbone{}, cfg, err
	}
	return adapt.Describe(v), v.Cfg, nil
}

// describedConfig is the architecture named by --backbone, --model's config, or the
// built-in backbone.
func describedConfig(rc RunConfig) (backbones.Config, error) {
	switch {
	case rc.Backbone != "":
		return backbones.Preset(rc.Backbone)
	case rc.ModelConfig != "":
		c, _, err := backbones.ReadHFConfig(rc.ModelConfig)
		return c, err
	case rc.Model != "":
		w, werr := backbones.ResolveWeightsPath(rc.Model)
		if p := filepath.Join(rc.Model, "config.json"); fileExists(p) {
			c, _, err := backbones.ReadHFConfig(p)
			if err != nil || werr != nil {
				return c, err // a folder with only a config describes the plan too
			}
			// The weights' header backs every size the plan is built on; no weights are read.
			return c, backbones.CheckVision(c, w, backbones.LoadOptions{})
		}
		if werr != nil {
			return backbones.Config{}, werr
		}
		c, _, err := backbones.InferConfig(w)
		return c, err
	}
	return builtinConfig()
}

func fileExists(p string) bool {
	_, err := os.Stat(p)
	return err == nil
}

// adaptedModel is the backbone with the plan compiled in, then the head.
type adaptedModel struct {
	vision    *backbones.Vision
	head      *train.Head
	trainable []*autograd.Var
}

func (m *adaptedModel) Features(tp *autograd.Tape, x *autograd.Var) *autograd.Var {
	return m.vision.Forward(tp, x).Embeds
}
func (m *adaptedModel) Head() *train.Head { return m.head }
func (m *adaptedModel) Trainable() []*autograd.Var {
	return append(append([]*autograd.Var(nil), m.trainable...), m.head.Params()...)
}

// probeModel trains the head on features computed once.
type probeModel struct{ head *train.Head }

func (m *probeModel) Features(_ *autograd.Tape, x *autograd.Var) *autograd.Var { return x }
func (m *probeModel) Head() *train.Head                                        { return m.head }
func (m *probeModel) Trainable() []*autograd.Var                               { return m.head.Params() }

// assembled is a model ready for train.Run: the plan compiled onto a freshly loaded
// tower, the head initialised, features cached for a frozen backbone.
type assembled struct {
	model      train.Model
	task       train.Task
	plan       plan.Plan
	vision     *backbones.Vision
	count      int64 // trainable parameters, head included
	headParams int64
	headInit   string // the head initialisation applied (initHead)
}

func assemble(rc RunConfig, meth method, b core.Backend, mdl *backbones.Model, task train.Task, names []string, log hclog.Logger, shown *progress.Display) (*assembled, error) {
	vision := mdl.Vision
	bb := adapt.Describe(vision)
	bb.Budget = rc.Limits.budget()
	p, err := meth.Plan(bb, rc.HP)
	if err != nil {
		return nil, err
	}
	a, err := adapt.CompileWithin(vision, p, rc.Train.Seed, bb.Budget)
	if err != nil {
		return nil, err
	}
	if rc.Adapter != "" {
		if err := applyPeftAdapter(vision, rc.Adapter); err != nil {
			return nil, err
		}
	}
	feat := vision.Cfg.EmbedDim
	if feat == 0 {
		feat = vision.Cfg.Width
	}
	head := train.NewHead(b, feat, task.Classes)
	headInit, err := initHead(head, rc, mdl, names, task, log)
	if err != nil {
		return nil, err
	}
	out := &assembled{model: &adaptedModel{vision: vision, head: head, trainable: a.Trainable}, task: task, plan: p,
		vision: vision, headParams: int64(feat+1) * int64(task.Classes), headInit: headInit}
	out.count = a.Count + out.headParams
	// Frozen features are computed once, unless the training images change each epoch.
	if _, redrawn := task.Train.(data.EpochSplit); !redrawn && len(a.Trainable) == 0 && len(p.Edits) == 0 {
		log.Info("frozen backbone: computing features once", "plugin", rc.Plugin)
		if out.task, err = cacheFeatures(vision, task, rc.Train.BatchSize, shown); err != nil {
			return nil, err
		}
		out.model = &probeModel{head: head}
	}
	return out, nil
}

// runAt is where a run writes. A zero runAt makes a new run directory from the
// configuration; otherwise Dir exists and the caller holds its Lock, and Resume says
// whether it has a checkpoint to continue from (without one the run starts over in it).
type runAt struct {
	Dir    string
	Resume bool
	Lock   *runlock.Lock
}

// runJob trains and evaluates one run. Cancelling ctx (a signal) stops the run at the
// next training step with a checkpoint, or before the run directory is written if
// training has not started; the error then satisfies lifecycle.IsInterrupted.
func runJob(ctx context.Context, rc RunConfig, meth method, log hclog.Logger, at runAt, quiet bool) (*Summary, error) {
	if err := checkHonoured(rc); err != nil {
		return nil, err
	}
	start := time.Now()
	b, err := core.OpenBackend(rc.Device)
	if err != nil {
		return nil, err
	}
	mdl, err := loadRunModel(b, rc)
	if err != nil {
		return nil, err
	}
	// What final.json records to tell this experiment from others, known before training.
	digest, err := weightsDigest(rc)
	if err != nil {
		return nil, err
	}
	hp, err := plugins.ParseValues(meth.Describe(), rc.HP)
	if err != nil {
		return nil, err
	}
	pluginDigest := rc.PluginSHA256 // resolvePlugin's: the binary running now
	task, names, err := buildTask(rc, mdl, log)
	if err != nil {
		return nil, err
	}
	if ctx.Err() != nil {
		return nil, lifecycle.Stopped(ctx, "stopped before training")
	}
	switch rc.Search {
	case "":
	case "paper":
		if at.Dir != "" {
			break // the search ran before the run directory existed; its result is in config.json
		}
		if task.Val == nil {
			return nil, usageErr("--search paper needs a validation split (data.val_fraction > 0)")
		}
		lr, wd, err := paperSearch(ctx, rc, meth, b, task, names, log, display(quiet))
		if lifecycle.IsInterrupted(err) {
			return nil, lifecycle.Stopped(ctx, "stopped during the --search paper trials, which are not resumable")
		}
		if err != nil {
			return nil, err
		}
		// The paper's final run: the chosen settings, trained on train+val, reported
		// at the last epoch.
		rc.Train.LR, rc.Train.WeightDecay, rc.Train.Select = lr, wd, "last"
		task.Train, task.Val = data.Concat(task.Train, task.Val), nil
		rc.Search = "paper (done: lr and weight_decay below were chosen by it)"
		if mdl, err = loadRunModel(b, rc); err != nil {
			return nil, err
		}
	default:
		if !strings.HasPrefix(rc.Search, "paper (done") {
			return nil, usageErr("search %q: want %s", rc.Search, oneOf(hostChoices["search"]))
		}
	}
	as, err := assemble(rc, meth, b, mdl, task, names, log, display(quiet))
	if err != nil {
		return nil, err
	}
	if ctx.Err() != nil {
		return nil, lifecycle.Stopped(ctx, "stopped before training")
	}
	dir := at.Dir
	if dir == "" {
		if dir, err = newRunDir(rc); err != nil {
			return nil, err
		}
		lock, err := lockRunDir(dir, "host run")
		if err != nil {
			return nil, err
		}
		defer lock.Release()
	}
	if !at.Resume {
		if err := atomicfile.WriteJSON(filepath.Join(dir, runConfigFile), rc); err != nil {
			return nil, err
		}
		if err := atomicfile.WriteJSON(filepath.Join(dir, runPlanFile), as.plan); err != nil {
			return nil, err
		}
	} else if err := samePlan(dir, as.plan); err != nil {
		return nil, err
	}
	identity, err := rc.identity()
	if err != nil {
		return nil, err
	}
	log.Info("run", "dir", dir, "plugin", rc.Plugin, "backbone", as.vision.Cfg.Name, "dataset", rc.Data.Dataset,
		"train", as.task.Train.Len(), "test", as.task.Test.Len(), "trainable_params", as.count)
	if err := meth.Event("run_start", map[string]any{"run_dir": dir, "trainable_params": as.count}); err != nil {
		log.Warn("plugin run_start event failed", "error", err)
	}
	shown := newProgress(quiet)
	res, err := train.Run(b, as.model, as.task, rc.Train, train.Options{Dir: dir, Resume: at.Resume, Progress: shown, Context: ctx, Identity: identity})
	shown.Close()
	if lifecycle.IsInterrupted(err) {
		return nil, fmt.Errorf("%w; continue with `host run --resume %s`", err, dir)
	}
	if err != nil {
		return nil, err
	}
	s := &Summary{Plugin: rc.Plugin, Dataset: rc.Data.Dataset, Backbone: as.vision.Cfg.Name, Metric: res.Metric,
		Accuracy: 100 * res.Score, TrainableParams: as.count, HeadParams: as.headParams, HeadInit: as.headInit, Epoch: res.Epoch, Selection: res.Selection,
		Seed: rc.Train.Seed, FewShotSeed: rc.Data.FewShotSeed, Shots: rc.Data.Shots, RunDir: dir, Seconds: time.Since(start).Seconds()}
	s.PE = PE(s.Accuracy, s.TrainableParams)
	s.PluginVersion, s.PluginBinarySHA256, s.HP, s.BackboneSHA256 = meth.Describe().Version, pluginDigest, hp.Raw(), digest
	s.Movement = res.Movement
	warnInert(log, res.Movement)
	if err := atomicfile.WriteJSON(filepath.Join(dir, runFinalFile), s); err != nil {
		return nil, err
	}
	if err := meth.Event("final_metrics", s); err != nil {
		log.Warn("plugin final_metrics event failed", "error", err)
	}
	if err := meth.Event("run_end", map[string]any{"run_dir": dir}); err != nil {
		log.Warn("plugin run_end event failed", "error", err)
	}
	return s, nil
}

// warnInert names every trainable group that did not move: a method whose parameters
// are trainable in name only reports the accuracy of what did move.
func warnInert(log hclog.Logger, m *train.Movement) {
	for _, g := range m.Inert() {
		if g.Note != "" {
			log.Info("a trainable parameter group did not move, as expected", "group", g.Group, "why", g.Note)
			continue
		}
		log.Warn("a trainable parameter group did not move", "group", g.Group, "params", g.Params,
			"rel_change", fmt.Sprintf("%.3g", g.RelChange), "threshold", train.MovedThreshold,
			"grad_norm_first", fmt.Sprintf("%.3g", g.GradNormFirst), "grad_norm_last", fmt.Sprintf("%.3g", g.GradNormLast))
	}
}

func newRunDir(rc RunConfig) (string, error) {
	id := rc.RunID
	if err := checkRunID(id); err != nil {
		return "", err
	}
	if id == "" {
		id = fmt.Sprintf("%s-%s-%s-s%d-f%d", time.Now().UTC().Format("20060102-150405"), rc.Plugin,
			strings.ReplaceAll(rc.Data.Dataset, "/", "_"), rc.Train.Seed, rc.Data.FewShotSeed)
	}
	dir := filepath.Join(rc.RunsDir, id)
	if err := os.MkdirAll(rc.RunsDir, 0o755); err != nil {
		return "", err
	}
	if err := os.Mkdir(dir, 0o755); err != nil {
		if os.IsExist(err) {
			return "", fmt.Errorf("run directory %s exists: pass --resume %s to continue it, or another --run-id", dir, dir)
		}
		return "", err
	}
	return dir, nil
}

// cacheFeatures runs the frozen tower once over every split, shown as one task: on a
// full test split it is most of a linear probe's run.
func cacheFeatures(v *backbones.Vision, task train.Task, batch int, shown *progress.Display) (train.Task, error) {
	splits := []*data.Split{&task.Train, &task.Val, &task.Test}
	total := 0
	for _, split := range splits {
		if *split != nil {
			total += (*split).Len()
		}
	}
	features := shown.Start("features", int64(total))
	defer features.End()
	var err error
	before := 0 // examples of the splits already done
	for _, split := range splits {
		if *split == nil {
			continue
		}
		n := (*split).Len()
		if *split, err = data.Features(context.Background(), v, *split, batch, func(done, _ int) {
			features.Update(int64(before+done), 0, "")
		}); err != nil {
			return task, err
		}
		before += n
	}
	return task, nil
}
