#!/usr/bin/env bash
# kadapt's CPU training step against PyTorch's on the same machine, interleaved.
#
#   tools/bench/cpu_vs_torch.sh                      # LoRA, KAdaptation, full fine-tune; 3 rounds
#   PLUGINS=lora ROUNDS=5 tools/bench/cpu_vs_torch.sh
#   INSTALL_TORCH=1 tools/bench/cpu_vs_torch.sh      # apt-get install python3-torch first
#
# Each round runs `bin/host bench` and tools/bench/torch_cpu_bench.py (plain torch:
# CLIP ViT-B/32 image tower, LoRA r=4 on q,v / KAdaptation / full fine-tune, AdamW,
# fp32) for every plugin, one after the other, so a machine whose load changes affects
# both alike; it then prints each side's median images/s and kadapt's ratio, for the
# training step and the inference forward. Both use THREADS threads (default 2);
# PyTorch runs with OMP_WAIT_POLICY=PASSIVE, without which its OpenMP threads spin
# between ops and it is about 2× slower on a 2-core machine.
set -euo pipefail
cd "$(dirname "$0")/../.."

PLUGINS=${PLUGINS:-lora,kadaptation,finetune}
ROUNDS=${ROUNDS:-3}
THREADS=${THREADS:-2}
BATCH=${BATCH:-8}
STEPS=${STEPS:-3}

python=""
for p in ${PYTHON:-} /usr/bin/python3 python3; do
	if command -v "$p" >/dev/null && "$p" -c 'import torch' 2>/dev/null; then python=$p; break; fi
done
if [ -z "$python" ]; then
	if [ "${INSTALL_TORCH:-0}" = 1 ]; then
		apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends python3-torch
		python=/usr/bin/python3
	else
		echo "PyTorch is not installed: INSTALL_TORCH=1 $0 installs Debian's python3-torch (apt-get), or set PYTHON" >&2
		exit 1
	fi
fi

make -s build >/dev/null
log=$(mktemp)
trap 'rm -f "$log"' EXIT
echo "date: $(date -u '+%Y-%m-%d %H:%M UTC')"
echo "cpu: $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2- | sed 's/^ //'), $(nproc) cores; load average $(cut -d' ' -f1-3 /proc/loadavg) at start"
bin/host version | sed 's/^/kadapt: /'
echo "torch: $("$python" -c 'import torch; print(torch.__version__)'), OMP_WAIT_POLICY=PASSIVE"
echo "batch $BATCH, $THREADS threads, $STEPS timed steps per run, $ROUNDS rounds"
IFS=, read -ra plugins <<<"$PLUGINS"
for r in $(seq "$ROUNDS"); do
	for p in "${plugins[@]}"; do
		GOMAXPROCS=$THREADS bin/host bench --backbone clip-vit-b32 --plugin "$p" --batch "$BATCH" --steps "$STEPS" | grep '^RESULT' >>"$log"
		OMP_WAIT_POLICY=PASSIVE OMP_NUM_THREADS=$THREADS "$python" tools/bench/torch_cpu_bench.py \
			--plugin "$p" --batch "$BATCH" --steps "$STEPS" --threads "$THREADS" | grep '^RESULT' >>"$log"
	done
	echo "round $r done (load average $(cut -d' ' -f1 /proc/loadavg))" >&2
done
echo "load average $(cut -d' ' -f1-3 /proc/loadavg) at end"
"$python" - "$log" <<'PY'
import collections, statistics, sys
runs = collections.defaultdict(list)
for line in open(sys.argv[1]):
    f = dict(kv.split("=", 1) for kv in line.split()[1:])
    runs[(f["plugin"], f["mode"], f["impl"])].append(float(f["images_per_s"]))
print(f"{'plugin':<12} {'mode':<6} {'kadapt img/s':>12} {'pytorch img/s':>13} {'kadapt/pytorch':>14}")
for plugin, mode in sorted({(p, m) for p, m, _ in runs}):
    k, t = runs.get((plugin, mode, "kadapt")), runs.get((plugin, mode, "pytorch"))
    if k and t:
        km, tm = statistics.median(k), statistics.median(t)
        print(f"{plugin:<12} {mode:<6} {km:>12.2f} {tm:>13.2f} {km / tm:>13.2f}x")
PY
