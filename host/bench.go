package main

import (
	"fmt"
	"math/rand/v2"
	"os"
	"runtime"
	"runtime/pprof"
	"strings"
	"time"

	"github.com/spf13/cobra"

	"github.com/kadapt/kadapt/backbones"
	"github.com/kadapt/kadapt/core"
	"github.com/kadapt/kadapt/core/autograd"
	"github.com/kadapt/kadapt/core/backend/cpu"
	"github.com/kadapt/kadapt/core/optim"
	"github.com/kadapt/kadapt/host/adapt"
	"github.com/kadapt/kadapt/host/train"
)

func init() {
	addCommand(newBenchCmd)
}

// profiled is implemented by backends that can time their kernels (cuda with
// profile=1).
type profiled interface {
	ProfileReport() string
	ResetProfile()
}

// benchOptions are the flags of `host bench` (newBenchCmd).
type benchOptions struct {
	device     string
	backbone   string
	pluginName string
	batch      int
	steps      int
	classes    int
	precision  string
	cpuProfile string
	profile    bool
	jsonOut    bool
}

// benchReport is what --json prints: the setting and one result per mode.
type benchReport struct {
	Device          string        `json:"device"`
	Backbone        string        `json:"backbone"`
	Plugin          string        `json:"plugin"`
	Batch           int           `json:"batch"`
	Precision       string        `json:"precision"`
	TrainableParams int64         `json:"trainable_params"`
	Results         []benchResult `json:"results"`
}

// benchResult is one RESULT line: device memory where the backend tracks it, else the
// Go runtime's.
type benchResult struct {
	Mode            string   `json:"mode"`
	ImagesPerSecond float64  `json:"images_per_s"`
	PeakAllocGiB    *float64 `json:"peak_alloc_gib,omitempty"`
	PeakReservedGiB *float64 `json:"peak_reserved_gib,omitempty"`
	HostSysGiB      *float64 `json:"host_sys_gib,omitempty"`
	Profile         string   `json:"profile,omitempty"`
}

func newBenchCmd() *cobra.Command {
	cmd := &cobra.Command{
		Use:   "bench [--device cpu|cuda] [--backbone clip-vit-b32] [--plugin lora] [--batch 8] [--steps 3] [--cpuprofile FILE]",
		Short: "measure training-step and inference throughput and peak memory (random weights)",
		Args:  noArgs,
	}
	fs := cmd.Flags()
	var o benchOptions
	fs.StringVar(&o.device, "device", "cpu", deviceHelp)
	fs.StringVar(&o.backbone, "backbone", "clip-vit-b32", "architecture preset ("+presetNames()+")")
	fs.StringVar(&o.pluginName, "plugin", "lora", "the method plugin whose plan is measured (host plugins lists them)")
	fs.IntVar(&o.batch, "batch", 8, "images per step")
	fs.IntVar(&o.steps, "steps", 3, "timed steps after two warm-up steps")
	fs.IntVar(&o.classes, "classes", 10, "head size")
	fs.StringVar(&o.precision, "precision", "fp32", "fp32, tf32 or bf16 (GPU backends)")
	fs.StringVar(&o.cpuProfile, "cpuprofile", "", "write a Go CPU profile of the measured steps (warm-up included) to `FILE`, for go tool pprof")
	fs.BoolVar(&o.profile, "profile", false, "time each kernel (waits after every launch, so throughput drops) and print where the time goes (GPU backends)")
	fs.BoolVar(&o.jsonOut, "json", false, "print the setting and the results as one JSON object instead of RESULT lines")
	cmd.RunE = func(*cobra.Command, []string) error {
		return bench(o)
	}
	return cmd
}

func bench(opt benchOptions) error {
	switch {
	case opt.batch < 2:
		// The head's batch norm trains on batch statistics: one image has none.
		return usageErr("--batch must be at least 2, got %d", opt.batch)
	case opt.steps < 1:
		return usageErr("--steps must be at least 1, got %d", opt.steps)
	}
	dev := opt.device
	addOption := func(kv string) {
		sep := "?"
		if strings.Contains(dev, "?") {
			sep = "&"
		}
		dev += sep + kv
	}
	if opt.precision != "fp32" {
		addOption("precision=" + opt.precision)
	}
	if opt.profile {
		addOption("profile=1")
	}
	b, err := core.OpenBackend(dev)
	if err != nil {
		return err
	}
	cfg, err := backbones.Preset(opt.backbone)
	if err != nil {
		return err
	}
	log := newLogger("bench")
	rc := RunConfig{Plugin: opt.pluginName, HP: map[string]string{}}
	if err := resolvePlugin(&rc, "", ""); err != nil {
		return err
	}
	meth, err := openMethod(rc, log)
	if err != nil {
		return err
	}
	defer meth.Close()
	v, err := backbones.NewVision(b, cfg)
	if err != nil {
		return err
	}
	v.InitRandom(1)
	p, err := meth.Plan(adapt.Describe(v), nil)
	if err != nil {
		return err
	}
	a, err := adapt.Compile(v, p, 1)
	if err != nil {
		return err
	}
	feat := cfg.EmbedDim
	if feat == 0 {
		feat = cfg.Width
	}
	head := train.NewHead(b, feat, opt.classes)
	head.InitRandom(1)
	m := &adaptedModel{vision: v, head: head, trainable: a.Trainable}
	params := m.Trainable()
	o := optim.NewAdamW(b, []optim.Group{{Name: "all", Params: params}}, optim.DefaultAdamWConfig())

	rng := rand.New(rand.NewPCG(1, 2))
	// The images stay on the device across steps, as the PyTorch script's do, so both
	// time the model and not the host-to-device copy.
	px := make([]float32, opt.batch*cfg.Channels*cfg.ImageSize*cfg.ImageSize)
	for i := range px {
		px[i] = float32(rng.NormFloat64())
	}
	pixels := b.Alloc(core.Shape{opt.batch, cfg.Channels, cfg.ImageSize, cfg.ImageSize})
	b.Upload(pixels, px)
	lab := make([]float32, opt.batch)
	for i := range lab {
		lab[i] = float32(rng.IntN(opt.classes))
	}
	labels := b.Alloc(core.Shape{opt.batch})
	b.Upload(labels, lab)
	tp := autograd.NewTape(b)
	step := func() error {
		tp.Training = true
		x := tp.Const(pixels)
		loss := tp.CrossEntropy(head.Forward(tp, m.Features(tp, x)), labels, 0)
		tp.Backward(loss)
		o.Step(1e-4)
		o.ZeroGrad()
		tp.Reset()
		return b.Sync()
	}
	infer := func() error {
		prev := tp.SetGradEnabled(false)
		tp.Training = false
		head.Forward(tp, m.Features(tp, tp.Const(pixels)))
		tp.Reset()
		tp.SetGradEnabled(prev)
		return b.Sync()
	}
	mem, _ := b.(core.DeviceMemory)
	prof, _ := b.(profiled)
	devName := b.Name()
	if devName == "cpu" {
		devName += " (gemm " + cpu.GEMM() + ")"
	}
	report := benchReport{Device: devName, Backbone: cfg.Name, Plugin: opt.pluginName, Batch: opt.batch, Precision: opt.precision,
		TrainableParams: a.Count + int64(feat+1)*int64(opt.classes)}
	// measure times f after two warm-up calls (pools fill, kernels compile, cuBLAS
	// picks its algorithms) and prints one RESULT line, the format
	// tools/bench/torch_clip_bench.py prints too, so a script can pair them.
	measure := func(mode string, f func() error) error {
		// A ViT-B step on the CPU takes seconds: the bench would be silent for minutes.
		shown := display(false).Start("bench "+mode, int64(2+opt.steps))
		defer shown.End()
		for i := range 2 {
			if err := f(); err != nil {
				return err
			}
			shown.Update(int64(i+1), 0, "warm-up")
		}
		if mem != nil {
			mem.ResetPeak()
		}
		if prof != nil {
			prof.ResetProfile()
		}
		start := time.Now()
		for i := 0; i < opt.steps; i++ {
			if err := f(); err != nil {
				return err
			}
			shown.Update(int64(2+i+1), 0, "timed")
		}
		ips := float64(opt.batch*opt.steps) / time.Since(start).Seconds()
		shown.End() // before the RESULT line, so a bar never sits between it and the next
		r := benchResult{Mode: mode, ImagesPerSecond: ips}
		line := fmt.Sprintf("RESULT impl=kadapt mode=%s plugin=%s precision=%s batch=%d images_per_s=%.3g device=%s", mode, opt.pluginName, opt.precision, opt.batch, ips, opt.device)
		if mem != nil {
			alloc, reserved := float64(mem.PeakInUseBytes())/(1<<30), float64(mem.PeakBytes())/(1<<30)
			r.PeakAllocGiB, r.PeakReservedGiB = &alloc, &reserved
			line += fmt.Sprintf(" peak_alloc_gib=%.2f peak_reserved_gib=%.2f", alloc, reserved)
		} else {
			var ms runtime.MemStats
			runtime.ReadMemStats(&ms)
			sys := float64(ms.Sys) / (1 << 30)
			r.HostSysGiB = &sys
			line += fmt.Sprintf(" host_sys_gib=%.2f", sys)
		}
		if prof != nil {
			r.Profile = prof.ProfileReport()
		}
		report.Results = append(report.Results, r)
		if opt.jsonOut {
			return nil
		}
		fmt.Println(line)
		if r.Profile != "" {
			fmt.Printf("profile of %d %s steps:\n%s", opt.steps, mode, r.Profile)
		}
		return nil
	}
	if !opt.jsonOut {
		fmt.Printf("device %s  backbone %s  plugin %s  batch %d  precision %s  trainable %d\n", report.Device, report.Backbone, report.Plugin, report.Batch, report.Precision, report.TrainableParams)
	}
	if opt.cpuProfile != "" {
		f, err := os.Create(opt.cpuProfile)
		if err != nil {
			return fmt.Errorf("--cpuprofile: %w", err)
		}
		defer f.Close()
		if err := pprof.StartCPUProfile(f); err != nil {
			return fmt.Errorf("--cpuprofile %s: %w", opt.cpuProfile, err)
		}
		defer pprof.StopCPUProfile()
	}
	if err := measure("train", step); err != nil {
		return err
	}
	if err := measure("infer", infer); err != nil {
		return err
	}
	if opt.jsonOut {
		return writeJSON(report)
	}
	return nil
}
