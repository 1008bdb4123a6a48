package main

import (
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strings"

	"github.com/kadapt/kadapt/host/atomicfile"
	"github.com/kadapt/kadapt/host/runlock"
	"github.com/kadapt/kadapt/host/train"
	"github.com/kadapt/kadapt/plugins"
)

// A run directory has one writer: `host run`, `host run --resume` and a sweep worker
// all take its lock (host/runlock) before writing anything in it.

// checkRunID refuses run ids that are not a single path element, so a run never
// writes outside its runs directory.
func checkRunID(id string) error {
	if id == "" {
		return nil
	}
	if id == "." || id == ".." || strings.ContainsAny(id, `/\`+"\x00") || filepath.Base(id) != id {
		return usageErr("run_id %q: must be a single directory name (no '/', '\\\\', '.' or '..')", id)
	}
	return nil
}

// lockRunDir takes dir's writer lock and removes what an interrupted writer left
// half-written (atomic writes' temporary files), which only a lock holder may do.
func lockRunDir(dir, command string) (*runlock.Lock, error) {
	if fi, err := os.Stat(dir); err != nil {
		return nil, err
	} else if !fi.IsDir() {
		return nil, fmt.Errorf("%s: not a run directory", dir)
	}
	lock, err := runlock.Acquire(dir, runlock.Options{Command: command})
	if err != nil {
		return nil, err
	}
	if err := removeTempFiles(dir); err != nil {
		lock.Release()
		return nil, err
	}
	go func() {
		// Another process judged this one dead (no heartbeat for the timeout: a long
		// suspension, a lost NFS server) and took the directory over. Writing on would
		// interleave two runs in it, so stop at once, writing nothing more.
		<-lock.Lost()
		fmt.Fprintf(os.Stderr, "host: %s was taken over by another writer after this process missed its heartbeats; stopping without writing more\n", dir)
		plugins.CleanupClients()
		os.Exit(1)
	}()
	return lock, nil
}

// The files of a run directory besides train's checkpoint and metrics
// (train.CheckpointPath, train.MetricsPath).
const (
	runConfigFile = "config.json" // the RunConfig the run started with
	runPlanFile   = "plan.json"   // the resolved plan
	runFinalFile  = "final.json"  // the summary, written last: a run that has it is finished
	runFailedFile = "failed.json" // a sweep worker's record of the point's last failure
	runPointFile  = "point.json"  // the sweep point the directory belongs to
)

// removeTempFiles deletes the temporaries of host/atomicfile and the safetensors
// writer that a killed writer left behind.
func removeTempFiles(dir string) error {
	entries, err := os.ReadDir(dir)
	if err != nil {
		return err
	}
	for _, e := range entries {
		n := e.Name()
		if e.Type().IsRegular() && atomicfile.IsTemp(n) {
			if err := os.Remove(filepath.Join(dir, n)); err != nil && !os.IsNotExist(err) {
				return err
			}
		}
	}
	return nil
}

func hasCheckpoint(dir string) bool { return fileExists(train.CheckpointPath(dir)) }

// checkRunDir says what is wrong with a path given as a run directory that is none (a
// mistyped path, or a folder that host run did not make), where reading its files
// would say only "open DIR/config.json: no such file or directory".
func checkRunDir(dir string) error {
	st, err := os.Stat(dir)
	switch {
	case errors.Is(err, fs.ErrNotExist):
		return fmt.Errorf("%s: no such run directory", dir)
	case err != nil:
		return err
	case !st.IsDir():
		return fmt.Errorf("%s is a file, not a run directory", dir)
	case !fileExists(filepath.Join(dir, runConfigFile)):
		return fmt.Errorf("%s is not a run directory: it has no %s, which host run writes as it starts", dir, runConfigFile)
	}
	return nil
}

// readRunConfig reads the configuration a run directory was started with.
func readRunConfig(dir string) (RunConfig, error) {
	p := filepath.Join(dir, runConfigFile)
	raw, err := os.ReadFile(p)
	if err != nil {
		return RunConfig{}, err
	}
	var rc RunConfig
	if err := json.Unmarshal(raw, &rc); err != nil {
		return RunConfig{}, fmt.Errorf("%s: %v", p, err)
	}
	return rc, nil
}
