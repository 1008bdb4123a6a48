package main

import (
	"bytes"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"

	"github.com/spf13/cobra"
	batchv1 "k8s.io/api/batch/v1"
	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/resource"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"sigs.k8s.io/yaml"

	"github.com/kadapt/kadapt/host/atomicfile"
)

// Submitting hands the points to a cluster's own scheduler: one Slurm job array task,
// or one Kubernetes Indexed Job completion, per point, each running
// `host sweep worker SPEC --index I` against a runs directory every node shares.

// executors are the schedulers sweep submit hands points to (its switch below).
var executors = []string{"slurm", "k8s"}

func newSweepSubmitCmd() *cobra.Command {
	cmd := &cobra.Command{
		Use:   "submit SPEC|--demo --executor slurm|k8s [flags] [--dry-run]",
		Short: "hand the unfinished points to Slurm (a job array) or Kubernetes (an Indexed Job)",
		Args:  cobra.ArbitraryArgs, // resolve checks them
	}
	fs := cmd.Flags()
	src := addSpecFlags(fs)
	executor := fs.String("executor", "", "the cluster scheduler to hand the points to: "+oneOf(executors))
	completeWords(cmd, "executor", executors...)
	dryRun := fs.Bool("dry-run", false, "print the sbatch script or manifest instead of submitting it (the frozen spec it names is written)")
	hostBin := fs.String("host-bin", "", "the host binary the tasks run (slurm: default this binary, which the nodes must see at the same path; k8s: default host on the image's PATH)")
	// Slurm
	partition := fs.String("partition", "", "slurm: partition (sbatch --partition)")
	gres := fs.String("gres", "", "slurm: generic resources per task, e.g. gpu:1")
	timeLimit := fs.String("time", "", "slurm: time limit per task, e.g. 4:00:00")
	arrayLimit := fs.Int("array-limit", 0, "slurm: at most this many tasks at once (the array's % throttle; 0: no limit)")
	sbatchArgs := fs.StringArray("sbatch-arg", nil, "slurm: an extra sbatch option, written as an #SBATCH line (repeatable), e.g. --sbatch-arg=--requeue")
	// Kubernetes
	image := fs.String("image", "", "k8s: the container image (with host and its plugins)")
	gpus := fs.Int("gpus", 0, "k8s: nvidia.com/gpu per pod")
	namespace := fs.String("namespace", "", "k8s: the namespace (default: kubectl's current one)")
	pvc := fs.String("pvc", "", "k8s: the PersistentVolumeClaim that holds the runs directory (ReadWriteMany, e.g. on NFS)")
	mountPath := fs.String("mount-path", "/runs", "k8s: where the claim is mounted in the pod; the spec's runs_dir becomes this")
	parallelism := fs.Int("parallelism", 0, "k8s: pods at once (0: all points)")
	grace := fs.Int("grace-seconds", 120, "k8s: how long a pod has after SIGTERM to checkpoint")
	apply := fs.Bool("apply", false, "k8s: kubectl apply -f the manifest instead of printing it")
	cmd.RunE = func(*cobra.Command, []string) error {
		sp, err := src.resolve(fs, true)
		if err != nil {
			return err
		}
		switch *executor {
		case "slurm":
			if *image != "" || *pvc != "" || *apply {
				return usageErr("--image, --pvc and --apply are for --executor k8s")
			}
			return submitSlurm(sp, slurmOptions{HostBin: *hostBin, Partition: *partition, Gres: *gres, Time: *timeLimit,
				ArrayLimit: *arrayLimit, Extra: *sbatchArgs, DryRun: *dryRun})
		case "k8s":
			if *image == "" {
				return usageErr("--executor k8s needs --image")
			}
			if *pvc == "" {
				return usageErr("--executor k8s needs --pvc: the runs directory must outlive the pods and be shared by them")
			}
			if *hostBin == "" {
				*hostBin = "host"
			}
			objs, err := k8sManifest(sp, k8sOptions{Image: *image, HostBin: *hostBin, GPUs: *gpus, Namespace: *namespace, PVC: *pvc,
				MountPath: *mountPath, Parallelism: *parallelism, GraceSeconds: *grace})
			if err != nil {
				return err
			}
			manifest, err := marshalManifest(objs)
			if err != nil {
				return err
			}
			if !*apply || *dryRun {
				_, err := os.Stdout.Write(manifest)
				return err
			}
			cmd := exec.Command("kubectl", "apply", "-f", "-")
			cmd.Stdin, cmd.Stdout, cmd.Stderr = bytes.NewReader(manifest), os.Stdout, os.Stderr
			if err := cmd.Run(); err != nil {
				return fmt.Errorf("kubectl apply: %v", err)
			}
			return nil
		case "":
			return usageErr("give --executor slurm or --executor k8s (or run the sweep here: `host sweep SPEC -j N`)")
		default:
			return usageErr("--executor %q: want %s", *executor, oneOf(executors))
		}
	}
	return cmd
}

type slurmOptions struct {
	HostBin, Partition, Gres, Time string
	ArrayLimit                     int
	Extra                          []string
	DryRun                         bool
}

// submitSlurm freezes the spec and submits one array task per point that is neither
// finished nor running.
func submitSlurm(sp *sweepSpec, o slurmOptions) error {
	pts, err := sp.plan()
	if err != nil {
		return err
	}
	var pending []int
	for _, p := range pts {
		if st := statusOf(sp.RunsDir, p); st.State == "pending" || st.State == "failed" {
			pending = append(pending, p.Index)
		}
	}
	if len(pending) == 0 {
		fmt.Fprintf(os.Stderr, "nothing to submit: all %d points of %s are finished or running (`host sweep status`)\n", len(pts), sp.Source)
		return nil
	}
	frozen, err := freeze(sp)
	if err != nil {
		return err
	}
	if o.HostBin == "" {
		if o.HostBin, err = os.Executable(); err != nil {
			return err
		}
	}
	if o.HostBin, err = filepath.Abs(o.HostBin); err != nil {
		return err
	}
	script := sbatchScript(sp.Name, frozen, pending, o)
	if o.DryRun {
		fmt.Print(script)
		return nil
	}
	scriptPath := strings.TrimSuffix(frozen, ".yaml") + ".sbatch"
	if err := atomicfile.Write(scriptPath, []byte(script)); err != nil {
		return err
	}
	out, err := exec.Command("sbatch", "--parsable", scriptPath).CombinedOutput()
	if err != nil {
		return fmt.Errorf("sbatch %s: %v: %s", scriptPath, err, strings.TrimSpace(string(out)))
	}
	jobID, _, _ := strings.Cut(strings.TrimSpace(string(out)), ";")
	fmt.Fprintf(os.Stderr, "submitted %d of %d points of %s as a job array; follow with `squeue -j %s` and `host sweep status`; task logs in %s\n",
		len(pending), len(pts), sp.Source, jobID, filepath.Dir(frozen))
	fmt.Println(jobID)
	return nil
}

// sbatchScript is the job array: the pending indices, throttled, each task exec'ing
// the worker so that Slurm's SIGTERM reaches it (and it checkpoints) directly.
func sbatchScript(name, frozen string, indices []int, o slurmOptions) string {
	var b strings.Builder
	array := indexRanges(indices)
	if o.ArrayLimit > 0 {
		array += "%" + strconv.Itoa(o.ArrayLimit)
	}
	b.WriteString("#!/bin/bash\n")
	fmt.Fprintf(&b, "#SBATCH --job-name=kadapt-%s\n", notIDChars.ReplaceAllString(name, "_"))
	fmt.Fprintf(&b, "#SBATCH --array=%s\n", array)
	fmt.Fprintf(&b, "#SBATCH --output=%s\n", filepath.Join(filepath.Dir(frozen), "slurm-%A_%a.out"))
	b.WriteString("#SBATCH --open-mode=append\n")
	for _, kv := range [][2]string{{"partition", o.Partition}, {"gres", o.Gres}, {"time", o.Time}} {
		if kv[1] != "" {
			fmt.Fprintf(&b, "#SBATCH --%s=%s\n", kv[0], kv[1])
		}
	}
	for _, a := range o.Extra {
		fmt.Fprintf(&b, "#SBATCH %s\n", a)
	}
	fmt.Fprintf(&b, "# kadapt sweep %s: one task per pending point; the worker claims, runs or resumes it.\n", name)
	fmt.Fprintf(&b, "exec %s sweep worker %s --index \"$SLURM_ARRAY_TASK_ID\"\n", shellQuote(o.HostBin), shellQuote(frozen))
	return b.String()
}

// indexRanges writes sorted indices as Slurm's array list: 0-3,7,9-10.
func indexRanges(idx []int) string {
	var parts []string
	for i := 0; i < len(idx); {
		j := i
		for j+1 < len(idx) && idx[j+1] == idx[j]+1 {
			j++
		}
		if j == i {
			parts = append(parts, strconv.Itoa(idx[i]))
		} else {
			parts = append(parts, fmt.Sprintf("%d-%d", idx[i], idx[j]))
		}
		i = j + 1
	}
	return strings.Join(parts, ",")
}

func shellQuote(s string) string {
	if s != "" && strings.Trim(s, "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789_-./=:") == "" {
		return s
	}
	return "'" + strings.ReplaceAll(s, "'", `'\''`) + "'"
}

type k8sOptions struct {
	Image, HostBin, Namespace, PVC, MountPath string
	GPUs, Parallelism, GraceSeconds           int
}

// specMountDir is where the pods see the frozen spec (from the ConfigMap).
const specMountDir = "/etc/kadapt"

// k8sManifest is a ConfigMap with the frozen spec (runs_dir at the claim's mount) and
// an Indexed Job with one completion per point. Finished points complete at once, so
// re-applying the manifest under a new name continues a sweep.
func k8sManifest(sp *sweepSpec, o k8sOptions) ([]any, error) {
	pts, err := sp.plan()
	if err != nil {
		return nil, err
	}
	frozen := *sp
	frozen.RunsDir = o.MountPath
	data, err := frozen.specYAML()
	if err != nil {
		return nil, err
	}
	// Named by the spec's content: a changed spec is a new Job, never a silent
	// reinterpretation of a running one's indices.
	name := strings.ToLower(notIDChars.ReplaceAllString("kadapt-"+sp.Name, "-"))
	name = strings.Trim(strings.ReplaceAll(strings.ReplaceAll(name, "_", "-"), ".", "-"), "-")
	if len(name) > 40 {
		name = name[:40]
	}
	name += "-" + contentHash(data)
	labels := map[string]string{"app.kubernetes.io/name": "kadapt", "app.kubernetes.io/component": "sweep", "kadapt.dev/sweep": name}
	meta := metav1.ObjectMeta{Name: name, Namespace: o.Namespace, Labels: labels}
	cm := &corev1.ConfigMap{
		TypeMeta:   metav1.TypeMeta{APIVersion: "v1", Kind: "ConfigMap"},
		ObjectMeta: meta,
		Data:       map[string]string{"sweep.yaml": string(data)},
	}
	n := int32(len(pts))
	par := n
	if o.Parallelism > 0 && int32(o.Parallelism) < n {
		par = int32(o.Parallelism)
	}
	indexed := batchv1.IndexedCompletion
	perIndex := int32(3)
	grace := int64(o.GraceSeconds)
	container := corev1.Container{
		Name:    "worker",
		Image:   o.Image,
		Command: []string{o.HostBin},
		// The kubelet expands $(JOB_COMPLETION_INDEX), which the Job controller sets.
		Args:         []string{"sweep", "worker", specMountDir + "/sweep.yaml", "--index", "$(JOB_COMPLETION_INDEX)"},
		VolumeMounts: []corev1.VolumeMount{{Name: "runs", MountPath: o.MountPath}, {Name: "spec", MountPath: specMountDir, ReadOnly: true}},
	}
	if o.GPUs > 0 {
		q := resource.MustParse(strconv.Itoa(o.GPUs))
		container.Resources.Limits = corev1.ResourceList{"nvidia.com/gpu": q}
	}
	job := &batchv1.Job{
		TypeMeta:   metav1.TypeMeta{APIVersion: "batch/v1", Kind: "Job"},
		ObjectMeta: meta,
		Spec: batchv1.JobSpec{
			CompletionMode:       &indexed,
			Completions:          &n,
			Parallelism:          &par,
			BackoffLimitPerIndex: &perIndex,
			// A pod evicted or preempted (it checkpointed on SIGTERM) does not count
			// against the index's retries.
			PodFailurePolicy: &batchv1.PodFailurePolicy{Rules: []batchv1.PodFailurePolicyRule{{
				Action:          batchv1.PodFailurePolicyActionIgnore,
				OnPodConditions: []batchv1.PodFailurePolicyOnPodConditionsPattern{{Type: corev1.DisruptionTarget, Status: corev1.ConditionTrue}},
			}}},
			Template: corev1.PodTemplateSpec{
				ObjectMeta: metav1.ObjectMeta{Labels: labels},
				Spec: corev1.PodSpec{
					RestartPolicy:                 corev1.RestartPolicyNever,
					TerminationGracePeriodSeconds: &grace,
					Containers:                    []corev1.Container{container},
					Volumes: []corev1.Volume{
						{Name: "runs", VolumeSource: corev1.VolumeSource{PersistentVolumeClaim: &corev1.PersistentVolumeClaimVolumeSource{ClaimName: o.PVC}}},
						{Name: "spec", VolumeSource: corev1.VolumeSource{ConfigMap: &corev1.ConfigMapVolumeSource{LocalObjectReference: corev1.LocalObjectReference{Name: name}}}},
					},
				},
			},
		},
	}
	return []any{cm, job}, nil
}

// marshalManifest writes the objects as one multi-document YAML stream.
func marshalManifest(objs []any) ([]byte, error) {
	var b bytes.Buffer
	for i, o := range objs {
		y, err := yaml.Marshal(o)
		if err != nil {
			return nil, err
		}
		if i > 0 {
			b.WriteString("---\n")
		}
		b.Write(y)
	}
	return b.Bytes(), nil
}
