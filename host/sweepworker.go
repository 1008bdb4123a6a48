package main

import (
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"time"

	"github.com/spf13/cobra"

	"github.com/kadapt/kadapt/host/atomicfile"
	"github.com/kadapt/kadapt/host/lifecycle"
	"github.com/kadapt/kadapt/host/progress"
	"github.com/kadapt/kadapt/host/runlock"
)

// exitError makes runMain exit with a particular status.
type exitError struct {
	code int
	err  error
}

func (e *exitError) Error() string { return e.err.Error() }
func (e *exitError) Unwrap() error { return e.err }

// workerPoll is how often a worker waiting on another writer looks again.
var workerPoll = 5 * time.Second

// pointRecord is point.json: which sweep point a run directory holds, so that a run id
// is never reused by a different configuration.
type pointRecord struct {
	Sweep  string         `json:"sweep"`
	Index  int            `json:"index"`
	ID     string         `json:"id"`
	Hash   string         `json:"hash"`
	Values map[string]any `json:"values"`
}

// newSweepWorkerCmd runs one point. SIGTERM (what Slurm and Kubernetes send before a
// kill) stops it at the next training step with a checkpoint and exit status
// lifecycle.ExitInterrupted; the next attempt resumes from there.
func newSweepWorkerCmd() *cobra.Command {
	cmd := &cobra.Command{
		Use:   "worker SPEC [--index I] [--no-wait]",
		Short: "run one point of a frozen spec (what Slurm tasks, Kubernetes pods and local sweeps run)",
		Args:  cobra.ArbitraryArgs, // checked below, naming what is missing
	}
	fs := cmd.Flags()
	index := fs.Int("index", -1, "the point to run (default: $JOB_COMPLETION_INDEX, then $SLURM_ARRAY_TASK_ID)")
	noWait := fs.Bool("no-wait", false, fmt.Sprintf("exit %d at once when another live process holds the point, instead of waiting for it to finish or die", exitClaimed))
	events := fs.Bool("progress-events", false, "report progress as machine-readable lines on stderr, for the local sweep that started this worker")
	if err := fs.MarkHidden("progress-events"); err != nil {
		panic(err)
	}
	cmd.RunE = func(cmd *cobra.Command, args []string) error {
		ctx := cmd.Context()
		if *events {
			progress.Stderr().UseEvents()
		}
		if len(args) != 1 {
			return usageErr("want one SPEC file")
		}
		if *index < 0 {
			for _, env := range []string{"JOB_COMPLETION_INDEX", "SLURM_ARRAY_TASK_ID"} {
				if v := os.Getenv(env); v != "" {
					n, err := strconv.Atoi(v)
					if err != nil {
						return usageErr("$%s=%q is not an index", env, v)
					}
					*index = n
					break
				}
			}
		}
		if *index < 0 {
			return usageErr("give --index, or run under a Kubernetes Indexed Job or a Slurm array ($JOB_COMPLETION_INDEX, $SLURM_ARRAY_TASK_ID)")
		}
		sp, err := loadSweepSpec(args[0])
		if err != nil {
			return err
		}
		pts, err := sp.plan()
		if err != nil {
			return err
		}
		p, err := pointAt(pts, *index, sp.Source)
		if err != nil {
			return err
		}
		log := newLogger("worker").With("point", p.Index, "run", p.ID)
		dir := filepath.Join(sp.RunsDir, p.ID)
		if fileExists(filepath.Join(dir, runFinalFile)) {
			log.Info("finished already")
			return nil
		}
		if err := os.MkdirAll(dir, 0o755); err != nil {
			return err
		}
		command := fmt.Sprintf("host sweep worker (point %d of %s)", p.Index, sp.Name)
		var lock *runlock.Lock
		for waited := false; ; waited = true {
			lock, err = lockRunDir(dir, command)
			var held *runlock.HeldError
			if !errors.As(err, &held) {
				break
			}
			if *noWait {
				return &exitError{code: exitClaimed, err: err}
			}
			if !waited {
				log.Info("another process is running this point; waiting for it to finish or die", "holder", held.Holder.String())
			}
			select {
			case <-ctx.Done():
				return lifecycle.Stopped(ctx, "while waiting for the point's other writer")
			case <-time.After(workerPoll):
			}
			if fileExists(filepath.Join(dir, runFinalFile)) {
				log.Info("finished by the other process")
				return nil
			}
		}
		if err != nil {
			return err
		}
		defer lock.Release()
		if fileExists(filepath.Join(dir, runFinalFile)) { // finished between the check and the lock
			log.Info("finished already")
			return nil
		}
		if err := claimPoint(dir, sp, p); err != nil {
			return err
		}
		os.Remove(filepath.Join(dir, runFailedFile))

		rc := p.Config
		at := runAt{Dir: dir, Lock: lock}
		switch {
		case fileExists(filepath.Join(dir, runConfigFile)) && hasCheckpoint(dir):
			// The directory's config.json, not the spec's: it holds what --search chose.
			if rc, err = readRunConfig(dir); err != nil {
				return err
			}
			at.Resume = true
			log.Info("resuming from the checkpoint of an earlier attempt")
		case fileExists(filepath.Join(dir, runConfigFile)):
			log.Info("an earlier attempt left no checkpoint: starting over")
		}
		resumeDir := ""
		if at.Resume {
			resumeDir = dir
		}
		if err := resolvePlugin(&rc, resumeDir, ""); err != nil {
			return recordFailure(dir, err)
		}
		meth, err := openMethod(rc, log)
		if err != nil {
			return recordFailure(dir, err)
		}
		defer meth.Close()
		s, err := runJob(ctx, rc, meth, log, at, false)
		if lifecycle.IsInterrupted(err) {
			return err // not a failure: the next attempt resumes
		}
		if err != nil {
			return recordFailure(dir, err)
		}
		fmt.Printf("point %d %s: %s %.2f%% at epoch %d (%s)\n", p.Index, p.ID, s.Metric, s.Accuracy, s.Epoch, s.Selection)
		return nil
	}
	return cmd
}

// claimPoint records which point the directory holds, refusing one that holds another.
func claimPoint(dir string, sp *sweepSpec, p sweepPoint) error {
	path := filepath.Join(dir, runPointFile)
	if raw, err := os.ReadFile(path); err == nil {
		var old pointRecord
		if err := json.Unmarshal(raw, &old); err != nil {
			return fmt.Errorf("%s: %v", path, err)
		}
		if old.Hash != p.Hash {
			return fmt.Errorf("%s holds another configuration (hash %s, this point's %s): two points share a run id; rename one method", dir, old.Hash, p.Hash)
		}
		return nil
	}
	return atomicfile.WriteJSON(path, pointRecord{Sweep: sp.Name, Index: p.Index, ID: p.ID, Hash: p.Hash, Values: p.Values})
}

// recordFailure writes failed.json for `sweep status`, and returns err.
func recordFailure(dir string, err error) error {
	host, _ := os.Hostname()
	if werr := atomicfile.WriteJSON(filepath.Join(dir, runFailedFile), failureRecord{Error: err.Error(), Host: host, PID: os.Getpid(), At: time.Now().UTC()}); werr != nil {
		return fmt.Errorf("%w (and recording the failure: %v)", err, werr)
	}
	return err
}
