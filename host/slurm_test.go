package main

import (
	"bytes"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/kadapt/kadapt/host/runlock"
)

// slurmCluster is a one-node Slurm cluster on this machine: munged, slurmctld and
// slurmd on loopback, every file of it in a temporary directory
// (shared/reference/slurm-one-node.md records what this machine needs).
type slurmCluster struct {
	dir string
	env []string // SLURM_CONF for the client commands
}

// startSlurm brings the cluster up, or skips the test when Slurm is not installed;
// under CI (CI=true), whose .ci/run installs it, absence is a failure.
func startSlurm(t *testing.T) *slurmCluster {
	t.Helper()
	unavailable := func(format string, a ...any) {
		t.Helper()
		msg := fmt.Sprintf(format, a...)
		if os.Getenv("CI") == "true" {
			t.Fatalf("%s (CI installs Slurm in .ci/run; this must not happen there)", msg)
		}
		t.Skip(msg)
	}
	var missing []string
	for _, c := range []string{"sbatch", "squeue", "scancel", "sinfo", "slurmctld", "slurmd", "munged", "munge", "unmunge"} {
		if _, err := exec.LookPath(c); err != nil {
			missing = append(missing, c)
		}
	}
	if len(missing) > 0 {
		unavailable("Slurm is not installed (no %s): `apt-get install -y slurm-wlm munge` runs this test", strings.Join(missing, ", "))
	}
	if runtime.GOOS != "linux" || os.Geteuid() != 0 {
		unavailable("the one-node Slurm cluster needs root on Linux (munged and slurmd)")
	}
	startMunge(t)

	c := &slurmCluster{dir: t.TempDir()}
	host, err := os.Hostname()
	if err != nil {
		t.Fatal(err)
	}
	node, _, _ := strings.Cut(host, ".")
	memMB := 1024
	if raw, err := os.ReadFile("/proc/meminfo"); err == nil {
		var kb int
		fmt.Sscanf(strings.TrimPrefix(strings.SplitN(string(raw), "\n", 2)[0], "MemTotal:"), "%d", &kb)
		memMB = max(kb/1024*8/10, memMB)
	}
	for _, d := range []string{"state", "spool"} {
		os.MkdirAll(filepath.Join(c.dir, d), 0o755)
	}
	conf := fmt.Sprintf(`ClusterName=kadapttest
SlurmctldHost=%[1]s(127.0.0.1)
SlurmctldPort=%[2]d
SlurmdPort=%[3]d
SlurmUser=root
AuthType=auth/munge
StateSaveLocation=%[4]s/state
SlurmdSpoolDir=%[4]s/spool
SlurmctldPidFile=%[4]s/slurmctld.pid
SlurmdPidFile=%[4]s/slurmd.pid
SlurmctldLogFile=%[4]s/slurmctld.log
SlurmdLogFile=%[4]s/slurmd.log
ProctrackType=proctrack/linuxproc
TaskPlugin=task/none
JobAcctGatherType=jobacct_gather/none
MpiDefault=none
SelectType=select/cons_tres
SelectTypeParameters=CR_Core
ReturnToService=2
KillWait=60
NodeName=%[1]s NodeAddr=127.0.0.1 CPUs=%[5]d RealMemory=%[6]d State=UNKNOWN
PartitionName=test Nodes=%[1]s Default=YES MaxTime=INFINITE State=UP
`, node, freePort(t), freePort(t), c.dir, runtime.NumCPU(), memMB)
	confPath := filepath.Join(c.dir, "slurm.conf")
	if err := os.WriteFile(confPath, []byte(conf), 0o644); err != nil {
		t.Fatal(err)
	}
	c.env = append(os.Environ(), "SLURM_CONF="+confPath)
	t.Cleanup(func() { c.stop(t) })
	for _, d := range []string{"slurmctld", "slurmd"} {
		if out, err := c.command(d).CombinedOutput(); err != nil {
			t.Fatalf("%s: %v\n%s\n%s", d, err, out, c.logs())
		}
	}
	deadline := time.Now().Add(time.Minute)
	for {
		out, _ := c.command("sinfo", "-h", "-o", "%t").Output()
		if strings.TrimSpace(string(out)) == "idle" {
			return c
		}
		if time.Now().After(deadline) {
			t.Fatalf("the node never became idle (sinfo: %q)\n%s", out, c.logs())
		}
		time.Sleep(250 * time.Millisecond)
	}
}

// startMunge starts munged unless one already answers.
func startMunge(t *testing.T) {
	t.Helper()
	check := func() bool {
		cred, err := exec.Command("munge", "-n").Output()
		if err != nil {
			return false
		}
		cmd := exec.Command("unmunge")
		cmd.Stdin = bytes.NewReader(cred)
		return cmd.Run() == nil
	}
	if check() {
		return
	}
	if _, err := os.Stat("/etc/munge/munge.key"); err != nil {
		if out, err := exec.Command("mungekey", "--create").CombinedOutput(); err != nil {
			t.Fatalf("mungekey --create: %v\n%s", err, out)
		}
	}
	for _, c := range [][]string{
		{"chown", "munge:munge", "/etc/munge/munge.key"}, {"chmod", "0400", "/etc/munge/munge.key"},
		{"mkdir", "-p", "/run/munge", "/var/log/munge", "/var/lib/munge"}, {"chown", "munge:munge", "/run/munge", "/var/log/munge", "/var/lib/munge"},
		{"runuser", "-u", "munge", "--", "munged"},
	} {
		if out, err := exec.Command(c[0], c[1:]...).CombinedOutput(); err != nil {
			t.Fatalf("%s: %v\n%s", strings.Join(c, " "), err, out)
		}
	}
	t.Cleanup(func() { stopByPIDFile("/run/munge/munged.pid") })
	deadline := time.Now().Add(10 * time.Second)
	for !check() {
		if time.Now().After(deadline) {
			t.Fatal("munged does not answer `munge -n | unmunge`")
		}
		time.Sleep(100 * time.Millisecond)
	}
}

func freePort(t *testing.T) int {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port
}

func (c *slurmCluster) command(name string, args ...string) *exec.Cmd {
	cmd := exec.Command(name, args...)
	cmd.Env = c.env
	return cmd
}

func (c *slurmCluster) logs() string {
	var b strings.Builder
	for _, f := range []string{"slurmctld.log", "slurmd.log"} {
		raw, _ := os.ReadFile(filepath.Join(c.dir, f))
		lines := strings.Split(strings.TrimSpace(string(raw)), "\n")
		fmt.Fprintf(&b, "--- %s (last lines)\n%s\n", f, strings.Join(lines[max(0, len(lines)-15):], "\n"))
	}
	return b.String()
}

// stop cancels what is left and stops the daemons by their pid files.
func (c *slurmCluster) stop(t *testing.T) {
	if out, _ := c.command("squeue", "-h", "-o", "%A").Output(); len(bytes.TrimSpace(out)) > 0 {
		c.command("scancel", strings.Fields(string(out))...).Run()
		c.waitQueueEmpty(t, "", time.Minute)
	}
	stopByPIDFile(filepath.Join(c.dir, "slurmd.pid"))
	stopByPIDFile(filepath.Join(c.dir, "slurmctld.pid"))
}

func stopByPIDFile(path string) {
	raw, err := os.ReadFile(path)
	if err != nil {
		return
	}
	pid, err := strconv.Atoi(strings.TrimSpace(string(raw)))
	if err != nil || pid <= 0 {
		return
	}
	syscall.Kill(pid, syscall.SIGTERM)
	for i := 0; i < 100 && syscall.Kill(pid, 0) == nil; i++ {
		time.Sleep(50 * time.Millisecond)
	}
	syscall.Kill(pid, syscall.SIGKILL)
}

// waitQueueEmpty waits until job (every job, if "") has left the queue.
func (c *slurmCluster) waitQueueEmpty(t *testing.T, job string, d time.Duration) {
	t.Helper()
	args := []string{"-h", "-o", "%i %T"}
	if job != "" {
		args = append(args, "-j", job)
	}
	deadline := time.Now().Add(d)
	for {
		out, err := c.command("squeue", args...).Output()
		if err == nil && len(bytes.TrimSpace(out)) == 0 {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("job %s still queued after %s:\n%s\n%s", job, d, out, c.logs())
		}
		time.Sleep(500 * time.Millisecond)
	}
}

// slurmSpec: LoRA runs long enough to be cancelled mid-way, and quick linear probes.
const slurmSpec = `name: slurmtest
seeds: [0, 1]
fixed: {data.dataset: mnist-demo, train.checkpoint_every: 1}
methods:
  - {plugin: lora, fixed: {train.epochs: 12, train.batch_size: 2}}
  - {plugin: linearprobe, fixed: {train.epochs: 2}}
`

// TestSlurmSweep submits a sweep to a real Slurm cluster as a job array, cancels one
// task mid-run, and resubmits: every point finishes exactly once, the cancelled one
// from its checkpoint, and `host report` shows them all.
func TestSlurmSweep(t *testing.T) {
	if testing.Short() {
		t.Skip("brings up a Slurm cluster and trains the demo task")
	}
	bins := binaries(t)
	cl := startSlurm(t)
	dir := t.TempDir()
	spec := filepath.Join(dir, "sweep.yaml")
	if err := os.WriteFile(spec, []byte(slurmSpec), 0o644); err != nil {
		t.Fatal(err)
	}
	sp, err := loadSweepSpec(spec)
	if err != nil {
		t.Fatal(err)
	}
	pts, err := sp.plan()
	if err != nil {
		t.Fatal(err)
	}
	runs := filepath.Join(dir, "runs")
	run := func(i int) string { return filepath.Join(runs, pts[i].ID) }
	submit := func() string {
		t.Helper()
		cmd := cl.command(filepath.Join(bins, "host"), "sweep", "submit", spec, "--executor", "slurm", "--array-limit", "2")
		cmd.Dir = dir
		var stderr bytes.Buffer
		cmd.Stderr = &stderr
		out, err := cmd.Output()
		if err != nil {
			t.Fatalf("submit: %v\n%s%s", err, out, stderr.String())
		}
		job := strings.TrimSpace(string(out))
		if _, err := strconv.Atoi(job); err != nil {
			t.Fatalf("submit printed %q, want a job id\n%s", out, stderr.String())
		}
		return job
	}

	job := submit()
	waitFor(t, 4*time.Minute, "three epochs of point 0 under Slurm", func() bool {
		raw, _ := os.ReadFile(filepath.Join(run(0), "metrics.jsonl"))
		return bytes.Count(raw, []byte("\n")) >= 3
	})
	if out, err := cl.command("scancel", job+"_0").CombinedOutput(); err != nil {
		t.Fatalf("scancel %s_0: %v\n%s", job, err, out)
	}
	cl.waitQueueEmpty(t, job, 5*time.Minute)
	if fileExists(filepath.Join(run(0), "final.json")) {
		t.Fatal("point 0 finished before scancel reached it; the test proves nothing")
	}
	for i := 1; i < len(pts); i++ {
		if !fileExists(filepath.Join(run(i), "final.json")) {
			out, _ := os.ReadFile(filepath.Join(runs, ".sweeps", fmt.Sprintf("slurm-%s_%d.out", job, i)))
			t.Fatalf("point %d did not finish in job %s:\n%s", i, job, out)
		}
	}
	if st := statusOf(runs, pts[0]); st.State != "pending" || !strings.Contains(st.Detail, "resumes after epoch") {
		t.Fatalf("the cancelled point's status: %+v", st)
	}
	// scancel's SIGTERM reached the worker, which checkpointed and let go of the point.
	cancelled, _ := os.ReadFile(filepath.Join(runs, ".sweeps", fmt.Sprintf("slurm-%s_0.out", job)))
	if !strings.Contains(string(cancelled), "interrupted by SIGTERM") || fileExists(filepath.Join(run(0), runlock.Name)) {
		t.Errorf("the cancelled task did not stop cleanly on SIGTERM (lock left: %v):\n%s", fileExists(filepath.Join(run(0), runlock.Name)), cancelled)
	}

	again := submit()
	cl.waitQueueEmpty(t, again, 5*time.Minute)
	out, _ := os.ReadFile(filepath.Join(runs, ".sweeps", fmt.Sprintf("slurm-%s_0.out", again)))
	if !strings.Contains(string(out), "resuming from the checkpoint") || !fileExists(filepath.Join(run(0), "final.json")) {
		t.Fatalf("the resubmitted point 0 did not resume to the end:\n%s", out)
	}
	checkEpochsOnce(t, run(0), 12)

	// Finished once: one worker's summary line per point over every task's log, and
	// only the cancelled point in the second array.
	logs, _ := filepath.Glob(filepath.Join(runs, ".sweeps", "slurm-*.out"))
	var all string
	for _, l := range logs {
		raw, _ := os.ReadFile(l)
		all += string(raw)
	}
	for i, p := range pts {
		if n := strings.Count(all, fmt.Sprintf("point %d %s:", i, p.ID)); n != 1 {
			t.Errorf("point %d finished %d times in the task logs", i, n)
		}
	}
	if second, _ := filepath.Glob(filepath.Join(runs, ".sweeps", "slurm-"+again+"_*.out")); len(second) != 1 {
		t.Errorf("the resubmission ran %d tasks, want only the cancelled point's", len(second))
	}

	rep, err := host(t, dir, "report", runs)
	if err != nil {
		t.Fatalf("report: %v\n%s", err, rep)
	}
	for _, want := range []string{"lora", "linearprobe"} {
		if !strings.Contains(rep, want) {
			t.Errorf("the report does not show %s:\n%s", want, rep)
		}
	}
}
