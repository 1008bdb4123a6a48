#!/usr/bin/env bash
# kadapt's GEMM against gonum and (where installed) OpenBLAS on ViT-B/32's shapes.
#
#   tools/bench/gemm.sh              # what `make bench` runs
#   ROUNDS=5 BENCHTIME=5x tools/bench/gemm.sh
#   SHAPES='attn|fc1' tools/bench/gemm.sh      # only the products whose names match
#
# One thread: every contender alternates within one process (BenchmarkViTB32), which
# reports GFLOP/s from wall time and kadapt's speedups in wall and in CPU time; CPU
# time is what to trust on a loaded machine. Two threads: each contender runs in a
# process of its own (KADAPT_BENCH_GEMM), the contenders alternating for ROUNDS
# rounds, and the medians are compared. In one process OpenBLAS's worker thread spins
# after each of its products and takes the second core from the next contender.
set -euo pipefail
cd "$(dirname "$0")/../.."

GO=${GO:-go}
ROUNDS=${ROUNDS:-3}
BENCHTIME=${BENCHTIME:-3x}
SHAPES=${SHAPES:-.}
tags=()
if ldconfig -p 2>/dev/null | grep -q 'libopenblas\.so '; then
	tags=(-tags openblas)
	export CGO_ENABLED=1 CGO_LDFLAGS=-lopenblas
else
	echo "(OpenBLAS not installed: apt-get install libopenblas-dev to compare with it)"
fi
dir=$(mktemp -d)
trap 'rm -rf "$dir"' EXIT
"$GO" test "${tags[@]}" -c -o "$dir/gemm.test" ./core/backend/cpu/gemm

echo "date: $(date -u '+%Y-%m-%d %H:%M UTC'); load average $(cut -d' ' -f1-3 /proc/loadavg)"
echo "== one thread, contenders alternating in one process: GFLOP/s, kadapt's speedups (cputime: CPU-time ratio)"
OPENBLAS_NUM_THREADS=1 "$dir/gemm.test" -test.run '^$' -test.bench "ViTB32/.*($SHAPES).*/threads1" \
	-test.benchtime "$BENCHTIME" | tee "$dir/t1.txt" | grep '^Benchmark'
contenders=$(grep -m1 '^Benchmark' "$dir/t1.txt" | tr ' \t' '\n\n' | sed -n 's|^GFLOP/s-||p')

echo "== two threads, each contender in its own process, $ROUNDS alternating rounds: median GFLOP/s"
for r in $(seq "$ROUNDS"); do
	for c in $contenders; do
		KADAPT_BENCH_GEMM=$c OPENBLAS_NUM_THREADS=2 "$dir/gemm.test" -test.run '^$' \
			-test.bench "ViTB32/.*($SHAPES).*/threads2" -test.benchtime "$BENCHTIME" |
			awk '/^Benchmark/ { split($1, p, "/"); for (i = 2; i < NF; i++) if ($(i+1) ~ /^GFLOP\/s-/) print p[2], substr($(i+1), 9), $i }' >>"$dir/t2.txt"
	done
	echo "round $r done (load average $(cut -d' ' -f1 /proc/loadavg))" >&2
done
# Medians per shape and contender, then one row per shape: each contender's GFLOP/s and
# every kadapt kernel's ratio to OpenBLAS (or, without it, to gonum).
sort -k1,1 -k2,2 -k3,3g "$dir/t2.txt" | awk -v order="$contenders" '
	function flush() { if (n) med[key] = (n % 2) ? v[(n+1)/2] : (v[n/2] + v[n/2+1]) / 2; n = 0 }
	{ k = $1 " " $2; if (k != key) { flush(); key = k }; v[++n] = $3; if (!($1 in seen)) { seen[$1] = 1; shapes[++ns] = $1 } }
	END {
		flush()
		nc = split(order, cs, " ")
		base = "gonum"; for (i = 1; i <= nc; i++) if (cs[i] == "openblas") base = "openblas"
		printf "%-32s", "product"; for (i = 1; i <= nc; i++) printf " %14s", cs[i]
		for (i = 1; i <= nc; i++) if (cs[i] ~ /^kadapt-/) printf " %20s", cs[i] "/" base
		printf "\n"
		for (s = 1; s <= ns; s++) {
			printf "%-32s", shapes[s]
			# A contender that does not take a product (packedB: batched ones) shows "-".
			for (i = 1; i <= nc; i++) {
				k = shapes[s] " " cs[i]
				if (k in med) printf " %14.1f", med[k]; else printf " %14s", "-"
			}
			for (i = 1; i <= nc; i++) if (cs[i] ~ /^kadapt-/) {
				k = shapes[s] " " cs[i]; b = shapes[s] " " base
				if ((k in med) && (b in med) && med[b] > 0) printf " %19.2fx", med[k] / med[b]; else printf " %20s", "-"
			}
			printf "\n"
		}
	}'
