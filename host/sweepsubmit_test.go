package main

import (
	"bufio"
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	batchv1 "k8s.io/api/batch/v1"
	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/runtime/serializer"
	k8syaml "k8s.io/apimachinery/pkg/util/yaml"

	"github.com/kadapt/kadapt/host/lifecycle"
	"github.com/kadapt/kadapt/host/runlock"
)

// decodeManifest decodes every document strictly through the Kubernetes API
// machinery: unknown or duplicated fields are errors.
func decodeManifest(t *testing.T, manifest []byte) (*corev1.ConfigMap, *batchv1.Job, error) {
	t.Helper()
	scheme := runtime.NewScheme()
	if err := batchv1.AddToScheme(scheme); err != nil {
		t.Fatal(err)
	}
	if err := corev1.AddToScheme(scheme); err != nil {
		t.Fatal(err)
	}
	dec := serializer.NewCodecFactory(scheme, serializer.EnableStrict).UniversalDeserializer()
	r := k8syaml.NewYAMLReader(bufio.NewReader(bytes.NewReader(manifest)))
	var cm *corev1.ConfigMap
	var job *batchv1.Job
	for {
		doc, err := r.Read()
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			return nil, nil, err
		}
		obj, _, err := dec.Decode(doc, nil, nil)
		if err != nil {
			return nil, nil, err
		}
		switch o := obj.(type) {
		case *corev1.ConfigMap:
			cm = o
		case *batchv1.Job:
			job = o
		default:
			return nil, nil, fmt.Errorf("unexpected object %T", obj)
		}
	}
	if cm == nil || job == nil {
		return nil, nil, fmt.Errorf("want a ConfigMap and a Job, got %v and %v", cm, job)
	}
	return cm, job, nil
}

func TestK8sManifestRoundTripsThroughTheAPITypes(t *testing.T) {
	sp, err := parseSweepSpec("spec.yaml", []byte(testSpec))
	if err != nil {
		t.Fatal(err)
	}
	objs, err := k8sManifest(sp, k8sOptions{Image: "registry.example/kadapt:1.0", HostBin: "/opt/kadapt/bin/host", GPUs: 1,
		Namespace: "vision", PVC: "kadapt-runs", MountPath: "/runs", Parallelism: 4, GraceSeconds: 90})
	if err != nil {
		t.Fatal(err)
	}
	manifest, err := marshalManifest(objs)
	if err != nil {
		t.Fatal(err)
	}
	cm, job, err := decodeManifest(t, manifest)
	if err != nil {
		t.Fatalf("%v\n%s", err, manifest)
	}
	// The decoder is strict: the same manifest with a misspelt field is refused.
	if _, _, err := decodeManifest(t, bytes.Replace(manifest, []byte("completionMode:"), []byte("completionMod:"), 1)); err == nil {
		t.Fatal("the strict decoder accepted an unknown field; this test proves nothing")
	}

	js := job.Spec
	if js.CompletionMode == nil || *js.CompletionMode != batchv1.IndexedCompletion {
		t.Errorf("completionMode %v, want Indexed", js.CompletionMode)
	}
	if js.Completions == nil || *js.Completions != 16 || js.Parallelism == nil || *js.Parallelism != 4 {
		t.Errorf("completions %v parallelism %v, want 16 and 4", js.Completions, js.Parallelism)
	}
	if job.Namespace != "vision" || cm.Namespace != "vision" {
		t.Errorf("namespaces %q, %q", job.Namespace, cm.Namespace)
	}
	pod := js.Template.Spec
	if pod.RestartPolicy != corev1.RestartPolicyNever || pod.TerminationGracePeriodSeconds == nil || *pod.TerminationGracePeriodSeconds != 90 {
		t.Errorf("restartPolicy %q grace %v", pod.RestartPolicy, pod.TerminationGracePeriodSeconds)
	}
	if len(pod.Containers) != 1 {
		t.Fatalf("%d containers", len(pod.Containers))
	}
	c := pod.Containers[0]
	cmdline := strings.Join(append(append([]string{}, c.Command...), c.Args...), " ")
	if c.Image != "registry.example/kadapt:1.0" || cmdline != "/opt/kadapt/bin/host sweep worker /etc/kadapt/sweep.yaml --index $(JOB_COMPLETION_INDEX)" {
		t.Errorf("image %q, command %q", c.Image, cmdline)
	}
	if q := c.Resources.Limits["nvidia.com/gpu"]; q.Value() != 1 {
		t.Errorf("gpu limit %v", c.Resources.Limits)
	}
	mounts := map[string]corev1.VolumeMount{}
	for _, m := range c.VolumeMounts {
		mounts[m.Name] = m
	}
	vols := map[string]corev1.Volume{}
	for _, v := range pod.Volumes {
		vols[v.Name] = v
	}
	if mounts["runs"].MountPath != "/runs" || vols["runs"].PersistentVolumeClaim == nil || vols["runs"].PersistentVolumeClaim.ClaimName != "kadapt-runs" {
		t.Errorf("runs volume: mount %+v, volume %+v", mounts["runs"], vols["runs"])
	}
	if mounts["spec"].MountPath != "/etc/kadapt" || vols["spec"].ConfigMap == nil || vols["spec"].ConfigMap.Name != cm.Name {
		t.Errorf("spec volume: mount %+v, volume %+v (configmap %s)", mounts["spec"], vols["spec"], cm.Name)
	}
	// The spec the pods read plans to the same points, writing under the claim.
	frozen, err := parseSweepSpec("configmap", []byte(cm.Data["sweep.yaml"]))
	if err != nil {
		t.Fatal(err)
	}
	got, err := frozen.plan()
	if err != nil {
		t.Fatal(err)
	}
	for i, p := range mustPlan(t, testSpec) {
		if got[i].ID != p.ID || got[i].Config.RunsDir != "/runs" {
			t.Fatalf("point %d in the pod: %s in %s; submitted: %s", i, got[i].ID, got[i].Config.RunsDir, p.ID)
		}
	}
}

func TestSlurmScriptArraysThePendingPoints(t *testing.T) {
	s := sbatchScript("study", "/shared/runs/.sweeps/study-0a1b2c3d.yaml", []int{0, 1, 2, 5, 7, 8},
		slurmOptions{HostBin: "/opt/kadapt/bin/host", Partition: "gpu", Gres: "gpu:1", Time: "4:00:00", ArrayLimit: 32, Extra: []string{"--requeue"}})
	for _, want := range []string{
		"#SBATCH --array=0-2,5,7-8%32\n", "#SBATCH --partition=gpu\n", "#SBATCH --gres=gpu:1\n", "#SBATCH --time=4:00:00\n",
		"#SBATCH --requeue\n", "#SBATCH --output=/shared/runs/.sweeps/slurm-%A_%a.out\n",
		"exec /opt/kadapt/bin/host sweep worker /shared/runs/.sweeps/study-0a1b2c3d.yaml --index \"$SLURM_ARRAY_TASK_ID\"\n",
	} {
		if !strings.Contains(s, want) {
			t.Errorf("the script lacks %q:\n%s", want, s)
		}
	}
	if !strings.HasPrefix(s, "#!/bin/bash\n#SBATCH") {
		t.Errorf("#SBATCH lines must come before any command:\n%s", s)
	}
}

// workerSpec: two short LoRA runs on the demo task, five steps an epoch, a checkpoint
// every epoch.
const workerSpec = `name: pods
seeds: [0, 1]
fixed: {data.dataset: mnist-demo, train.epochs: 10, train.batch_size: 4, train.checkpoint_every: 1}
methods: [lora]
`

// podCommand turns the manifest's container into the command a pod runs for index i:
// the ConfigMap's file in place of the mounted one, $(VAR) expanded by the kubelet.
func podCommand(t *testing.T, dir string, i int) *exec.Cmd {
	t.Helper()
	sp, err := parseSweepSpec("pods.yaml", []byte(workerSpec))
	if err != nil {
		t.Fatal(err)
	}
	objs, err := k8sManifest(sp, k8sOptions{Image: "kadapt", HostBin: filepath.Join(binaries(t), "host"), PVC: "runs",
		MountPath: filepath.Join(dir, "runs"), GraceSeconds: 60})
	if err != nil {
		t.Fatal(err)
	}
	manifest, _ := marshalManifest(objs)
	cm, job, err := decodeManifest(t, manifest)
	if err != nil {
		t.Fatal(err)
	}
	etc := filepath.Join(dir, "etc")
	os.MkdirAll(etc, 0o755)
	if err := os.WriteFile(filepath.Join(etc, "sweep.yaml"), []byte(cm.Data["sweep.yaml"]), 0o644); err != nil {
		t.Fatal(err)
	}
	c := job.Spec.Template.Spec.Containers[0]
	env := map[string]string{"JOB_COMPLETION_INDEX": fmt.Sprint(i)}
	var args []string
	for _, a := range c.Args {
		a = strings.Replace(a, specMountDir, etc, 1)
		a = regexp.MustCompile(`\$\(([A-Z_]+)\)`).ReplaceAllStringFunc(a, func(m string) string { return env[m[2:len(m)-1]] })
		args = append(args, a)
	}
	cmd := exec.Command(c.Command[0], args...)
	cmd.Env = append(os.Environ(), "JOB_COMPLETION_INDEX="+env["JOB_COMPLETION_INDEX"])
	cmd.Dir = dir
	return cmd
}

func pointDir(t *testing.T, dir string, i int) string {
	t.Helper()
	sp, err := parseSweepSpec("pods.yaml", []byte(workerSpec))
	if err != nil {
		t.Fatal(err)
	}
	pts, err := sp.plan()
	if err != nil {
		t.Fatal(err)
	}
	return filepath.Join(dir, "runs", pts[i].ID)
}

// checkEpochsOnce: metrics.jsonl holds epochs 1..n, each once.
func checkEpochsOnce(t *testing.T, run string, n int) {
	t.Helper()
	raw, err := os.ReadFile(filepath.Join(run, "metrics.jsonl"))
	if err != nil {
		t.Fatal(err)
	}
	lines := strings.Split(strings.TrimSpace(string(raw)), "\n")
	for i, l := range lines {
		var m struct{ Epoch int }
		if err := json.Unmarshal([]byte(l), &m); err != nil || m.Epoch != i+1 {
			t.Fatalf("%s line %d is epoch %d (%v):\n%s", run, i+1, m.Epoch, err, raw)
		}
	}
	if len(lines) != n {
		t.Fatalf("%s has %d epochs, want %d", run, len(lines), n)
	}
}

// TestWorkerAsAPodRunsIt runs the manifest's command as Kubernetes would: two pods
// racing for one index run it once; a pod stopped (SIGTERM) or killed mid-run is
// resumed by its retry.
func TestWorkerAsAPodRunsIt(t *testing.T) {
	if testing.Short() {
		t.Skip("trains the demo task")
	}
	dir := t.TempDir()

	t.Run("two pods race for one point", func(t *testing.T) {
		var wg sync.WaitGroup
		outs := make([]string, 2)
		errs := make([]error, 2)
		for w := range 2 {
			wg.Add(1)
			go func() {
				defer wg.Done()
				out, err := podCommand(t, dir, 0).CombinedOutput()
				outs[w], errs[w] = string(out), err
			}()
		}
		wg.Wait()
		ran := 0
		for w := range 2 {
			if errs[w] != nil {
				t.Fatalf("worker %d: %v\n%s", w, errs[w], outs[w])
			}
			if strings.Contains(outs[w], "point 0 "+filepath.Base(pointDir(t, dir, 0))+":") {
				ran++
			} else if !strings.Contains(outs[w], "finished by the other process") && !strings.Contains(outs[w], "finished already") {
				t.Errorf("worker %d neither ran the point nor saw it finished:\n%s", w, outs[w])
			}
		}
		if ran != 1 {
			t.Fatalf("%d workers ran the point, want 1:\n%s\n---\n%s", ran, outs[0], outs[1])
		}
		checkEpochsOnce(t, pointDir(t, dir, 0), 10)
		// A retry of a finished index completes at once.
		if out, err := podCommand(t, dir, 0).CombinedOutput(); err != nil || !strings.Contains(string(out), "finished already") {
			t.Fatalf("rerun of a finished point: %v\n%s", err, out)
		}
	})

	t.Run("a pod stopped by SIGTERM, then killed, resumes", func(t *testing.T) {
		run := pointDir(t, dir, 1)
		epochs := func() int {
			raw, _ := os.ReadFile(filepath.Join(run, "metrics.jsonl"))
			return bytes.Count(raw, []byte("\n"))
		}
		// interrupt starts a pod, waits until the run is at least `after` epochs in,
		// and sends sig.
		interrupt := func(after int, sig syscall.Signal) (string, error) {
			t.Helper()
			cmd := podCommand(t, dir, 1)
			var out bytes.Buffer
			cmd.Stdout, cmd.Stderr = &out, &out
			if err := cmd.Start(); err != nil {
				t.Fatal(err)
			}
			defer cmd.Process.Kill()
			waitFor(t, 3*time.Minute, fmt.Sprintf("epoch %d of point 1", after), func() bool { return epochs() >= after })
			cmd.Process.Signal(sig)
			err := cmd.Wait()
			if fileExists(filepath.Join(run, "final.json")) {
				t.Fatalf("point 1 finished before the %v; the test proves nothing", sig)
			}
			return out.String(), err
		}

		// What Slurm and Kubernetes send first: a checkpoint, the lock released, and
		// the status that tells a scheduler's retry to continue.
		out, err := interrupt(2, syscall.SIGTERM)
		var exit *exec.ExitError
		if !errors.As(err, &exit) || exit.ExitCode() != lifecycle.ExitInterrupted || !strings.Contains(out, "interrupted by SIGTERM") {
			t.Fatalf("after SIGTERM: %v, want exit status %d and the reason\n%s", err, lifecycle.ExitInterrupted, out)
		}
		if fileExists(filepath.Join(run, runlock.Name)) || fileExists(filepath.Join(run, "failed.json")) {
			t.Error("a worker stopped by SIGTERM left its lock or a failure record")
		}
		st := statusOf(filepath.Join(dir, "runs"), sweepPoint{Index: 1, ID: filepath.Base(run)})
		if st.State != "pending" || !strings.Contains(st.Detail, "resumes after epoch") {
			t.Errorf("status after SIGTERM: %+v", st)
		}

		// What the OOM killer or a node failure does: no checkpoint of the moment, the
		// lock left behind for the retry to take over.
		out, _ = interrupt(epochs()+2, syscall.SIGKILL)
		if !strings.Contains(out, "resuming from the checkpoint") {
			t.Errorf("the attempt after SIGTERM did not resume:\n%s", out)
		}
		if !fileExists(filepath.Join(run, runlock.Name)) {
			t.Error("the killed pod's lock is gone; the retry's takeover goes untested")
		}

		outb, err := podCommand(t, dir, 1).CombinedOutput()
		if err != nil {
			t.Fatalf("the retry: %v\n%s", err, outb)
		}
		if !strings.Contains(string(outb), "resuming from the checkpoint") {
			t.Errorf("the retry did not resume:\n%s", outb)
		}
		checkEpochsOnce(t, run, 10)
	})
}
