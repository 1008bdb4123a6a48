package main

import (
	"bytes"
	"context"
	"fmt"
	"os"
	"os/exec"
	"os/signal"
	"path/filepath"
	"sync"

	"github.com/hashicorp/go-hclog"
)

func init() {
	register("sweep", "run plugins × datasets × seeds, skipping finished runs and resuming interrupted ones", cmdSweep)
}

// allMethods are the six methods of the paper, in its table's order.
var allMethods = []string{"kadaptation", "adapter", "lora", "compacter", "finetune", "linearprobe"}

func cmdSweep(args []string) error {
	fs := newFlags("sweep", "sweep [--demo] [--plugins a,b] [--datasets x,y] [--seeds 0,1,2] [-j N] [-- run flags]")
	demo := fs.Bool("demo", false, "all six plugins on the built-in MNIST task, 3 seeds")
	plugins := fs.String("plugins", "", "comma-separated plugins (default: all six)")
	datasetsFlag := fs.String("datasets", "", "comma-separated datasets")
	seeds := fs.String("seeds", "0,1,2", "few-shot and training seeds")
	runsDir := fs.String("runs-dir", "runs", "where run directories go")
	jobs := fs.IntP("jobs", "j", 1, "runs at once")
	if err := fs.Parse(args); err != nil {
		return err
	}
	extra := fs.Args() // passed to every `host run`
	ps := splitList(*plugins)
	if len(ps) == 0 {
		ps = allMethods
	}
	ds := splitList(*datasetsFlag)
	if *demo {
		ds = []string{demoDataset}
	}
	if len(ds) == 0 {
		return usageErr("give --datasets or --demo")
	}
	ss := splitList(*seeds)
	if *jobs < 1 {
		return usageErr("--jobs must be at least 1")
	}
	self, err := os.Executable()
	if err != nil {
		return err
	}
	log := hclog.New(&hclog.LoggerOptions{Name: "sweep", Output: os.Stderr})
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt)
	defer stop()

	type job struct{ plugin, dataset, seed string }
	var todo []job
	for _, d := range ds {
		for _, p := range ps {
			for _, s := range ss {
				todo = append(todo, job{p, d, s})
			}
		}
	}
	sem := make(chan struct{}, *jobs)
	var mu sync.Mutex
	var failed []string
	var wg sync.WaitGroup
	for i, j := range todo {
		id := fmt.Sprintf("%s-%s-s%s", j.plugin, j.dataset, j.seed)
		dir := filepath.Join(*runsDir, id)
		if fileExists(filepath.Join(dir, "final.json")) {
			log.Info("finished already, skipping", "run", id)
			continue
		}
		runArgs := []string{"run", "--quiet", "--runs-dir", *runsDir}
		if fileExists(filepath.Join(dir, "config.json")) {
			runArgs = append(runArgs, "--resume", dir)
			log.Info("resuming", "run", id)
		} else {
			runArgs = append(runArgs, "--plugin", j.plugin, "--dataset", j.dataset, "--run-id", id,
				"--seed", j.seed, "--fewshot-seed", j.seed)
			runArgs = append(runArgs, extra...)
		}
		select {
		case sem <- struct{}{}:
		case <-ctx.Done():
			wg.Wait()
			return fmt.Errorf("interrupted; run the same sweep again to resume")
		}
		wg.Add(1)
		go func(i int, id string) {
			defer wg.Done()
			defer func() { <-sem }()
			log.Info("starting", "run", id, "of", fmt.Sprintf("%d/%d", i+1, len(todo)))
			cmd := exec.CommandContext(ctx, self, runArgs...)
			var out bytes.Buffer
			cmd.Stdout, cmd.Stderr = &out, &out
			if err := cmd.Run(); err != nil {
				mu.Lock()
				failed = append(failed, id)
				mu.Unlock()
				log.Error("run failed", "run", id, "error", err, "output", out.String())
				return
			}
			log.Info("done", "run", id, "result", string(bytes.TrimSpace(out.Bytes())))
		}(i, id)
	}
	wg.Wait()
	if len(failed) > 0 {
		return fmt.Errorf("%d run(s) failed: %v", len(failed), failed)
	}
	return nil
}
