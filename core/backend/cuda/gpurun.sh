#!/bin/sh
# Runs on the GPU machine, from the repository root, after gpucheck.sh built .gpu here
# (carry .gpu). One call does the whole check:
#   1. the CUDA package's tests, ending "N passed, N failed, N skipped";
#   2. `host bench` and tools/bench/torch_clip_bench.py (PyTorch eager, same model,
#      method, batch and precision) one after the other for each method and precision;
#   3. a table of kadapt/PyTorch ratios for throughput and memory.
# Before the benchmarks (which take longest) it profiles a LoRA and a KAdaptation step
# under TF32, kernel by kernel (host bench --profile).
# Results go to $OUT (or .gpu/out) as tests.txt, bench.txt, summary.md and profile.txt.
#
#   sh core/backend/cuda/gpurun.sh                  # everything
#   GPURUN_SKIP_TESTS=1 sh core/backend/cuda/gpurun.sh
#   GPURUN_PLUGINS="lora" GPURUN_PRECISIONS="tf32" BATCH=256 STEPS=10 sh core/backend/cuda/gpurun.sh
set -u
OUT=${OUT:-.gpu/out}
mkdir -p "$OUT"
export LD_LIBRARY_PATH=/usr/local/cuda/lib64:${LD_LIBRARY_PATH:-}
BATCH=${BATCH:-256}
STEPS=${STEPS:-10}
PLUGINS=${GPURUN_PLUGINS:-lora kadaptation linearprobe} # the plugins gpucheck.sh packs
PRECISIONS=${GPURUN_PRECISIONS:-fp32 tf32 bf16}
PY=$(command -v python3 || command -v python || true)
[ -f .gpu/bundle.tgz ] || { echo "gpurun: no .gpu/bundle.tgz; run gpucheck.sh first and carry .gpu" >&2; exit 1; }
rm -rf .gpu/bin && tar -C .gpu -xzf .gpu/bundle.tgz || exit 1

nvidia-smi --query-gpu=name,driver_version,memory.total --format=csv,noheader 2>/dev/null | tee "$OUT/gpu.txt"

if [ -z "${GPURUN_SKIP_TESTS:-}" ]; then
	echo "== tests"
	.gpu/bin/cuda.test -test.v -test.count=1 -test.timeout=300s >"$OUT/tests.txt" 2>&1
	grep -E -- '^--- FAIL|^    --- FAIL|no usable GPU' "$OUT/tests.txt" | head -20
	tail -1 "$OUT/tests.txt"
fi

echo "== profile (tf32, batch $BATCH)"
: >"$OUT/profile.txt"
for p in lora kadaptation; do
	timeout 240 .gpu/bin/host-cuda bench --device cuda --backbone clip-vit-b32 --plugin "$p" --batch "$BATCH" \
		--steps 3 --precision tf32 --profile >>"$OUT/profile.txt" 2>&1 || echo "profiled $p failed" | tee -a "$OUT/profile.txt"
done
grep -A14 '^profile of 3 train' "$OUT/profile.txt"

echo "== bench: batch $BATCH, $STEPS timed steps"
: >"$OUT/bench.txt"
# run NAME CMD...: runs one benchmark, appends its output to bench.txt and shows
# its RESULT lines, or its last lines when it fails.
run() {
	name=$1
	shift
	if "$@" >"$OUT/last.txt" 2>&1; then grep '^RESULT' "$OUT/last.txt"; else
		echo "$name failed:"
		tail -3 "$OUT/last.txt"
	fi
	cat "$OUT/last.txt" >>"$OUT/bench.txt"
}
for prec in $PRECISIONS; do
	for p in $PLUGINS; do
		run "host bench $p $prec" timeout 240 .gpu/bin/host-cuda bench --device cuda --backbone clip-vit-b32 \
			--plugin "$p" --batch "$BATCH" --steps "$STEPS" --precision "$prec"
		# The fused attention kernels against cuBLAS products around a row softmax: which
		# pays is measured, not assumed (docs/cuda.md, Fusion).
		[ "$p" = linearprobe ] || run "host bench $p $prec composed attention" timeout 240 .gpu/bin/host-cuda bench \
			--device 'cuda?attention=composed' --backbone clip-vit-b32 --plugin "$p" --batch "$BATCH" --steps "$STEPS" --precision "$prec"
		[ -n "$PY" ] && run "pytorch $p $prec" timeout 300 "$PY" tools/bench/torch_clip_bench.py --plugin "$p" \
			--batch "$BATCH" --steps "$STEPS" --precision "$prec"
	done
done

# Pair each kadapt RESULT with PyTorch's for the same mode, method and precision.
awk '
/^RESULT/ {
	delete f
	for (i = 2; i <= NF; i++) { split($i, kv, "="); f[kv[1]] = substr($i, length(kv[1]) + 2) }
	k = f["mode"] " | " f["plugin"] " | " f["precision"]
	if (f["impl"] == "pytorch") { pips[k] = f["images_per_s"]; pmem[k] = f["peak_alloc_gib"]; next }
	rows[++n] = k " | " f["device"]; rk[n] = k; ips[n] = f["images_per_s"]; mem[n] = f["peak_alloc_gib"]
}
END {
	print "| mode | method | precision | kadapt device | kadapt images/s | PyTorch images/s | ratio | kadapt peak GiB | PyTorch peak GiB | ratio |"
	print "|---|---|---|---|---|---|---|---|---|---|"
	for (i = 1; i <= n; i++) {
		b = pips[rk[i]]; mb = pmem[rk[i]]
		r = (b > 0) ? sprintf("%.2f", ips[i] / b) : "–"
		rm = (mb > 0) ? sprintf("%.2f", mem[i] / mb) : "–"
		printf "| %s | %s | %s | %s | %s | %s | %s |\n", rows[i], ips[i], b, r, mem[i], mb, rm
	}
}' "$OUT/bench.txt" | tee "$OUT/summary.md"

