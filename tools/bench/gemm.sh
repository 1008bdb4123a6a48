#!/usr/bin/env bash
# kadapt's GEMM against gonum and (where installed) OpenBLAS on ViT-B/32's shapes.
#
#   tools/bench/gemm.sh              # what `make bench` runs
#   ROUNDS=5 BENCHTIME=5x tools/bench/gemm.sh
#   SHAPES='attn|fc1' tools/bench/gemm.sh      # only the products whose names match
#
# One thread: every contender alternates within one process (BenchmarkViTB32), which
# reports GFLOP/s from wall time and kadapt's speedups in wall and in CPU time; CPU
# time is what to trust on a loaded machine. Two threads: each contender runs each
# product in a process of its own (KADAPT_BENCH_GEMM), the contenders alternating per
# product within each of ROUNDS rounds, so that a slow stretch of the machine (on the
# shared development VM they last seconds) hits one product's contenders alike; the
# medians are compared, and the lowest and highest ratio within a round show the
# spread. In one process OpenBLAS's worker thread spins after each of its products and
# takes the second core from the next contender.
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

echo "== two threads, each contender and product in its own process, $ROUNDS rounds with the contenders alternating per product: median GFLOP/s"
shapes=$(sed -n 's|^BenchmarkViTB32/\([^/]*\)/threads1.*|\1|p' "$dir/t1.txt")
for r in $(seq "$ROUNDS"); do
	for s in $shapes; do
		for c in $contenders; do
			KADAPT_BENCH_GEMM=$c OPENBLAS_NUM_THREADS=2 "$dir/gemm.test" -test.run '^$' \
				-test.bench "ViTB32/^$s\$/threads2" -test.benchtime "$BENCHTIME" |
				awk -v r="$r" '/^Benchmark/ { split($1, p, "/"); for (i = 2; i < NF; i++) if ($(i+1) ~ /^GFLOP\/s-/) print p[2], substr($(i+1), 9), $i, r }' >>"$dir/t2.txt"
		done
	done
	echo "round $r done (load average $(cut -d' ' -f1 /proc/loadavg))" >&2
done
# Medians per shape and contender, then one row per shape: each contender's GFLOP/s and
# every kadapt kernel's ratio of medians to OpenBLAS (or, without it, to gonum), with
# the lowest and highest ratio of one round's pair: the spread to trust.
sort -k1,1 -k2,2 -k3,3g "$dir/t2.txt" | awk -v order="$contenders" '
	function flush() { if (n) med[key] = (n % 2) ? v[(n+1)/2] : (v[n/2] + v[n/2+1]) / 2; n = 0 }
	{ k = $1 " " $2; if (k != key) { flush(); key = k }; v[++n] = $3; round[k, $4] = $3; if ($4 > nr) nr = $4
	  if (!($1 in seen)) { seen[$1] = 1; shapes[++ns] = $1 } }
	END {
		flush()
		nc = split(order, cs, " ")
		base = "gonum"; for (i = 1; i <= nc; i++) if (cs[i] == "openblas") base = "openblas"
		printf "%-32s", "product"; for (i = 1; i <= nc; i++) printf " %14s", cs[i]
		for (i = 1; i <= nc; i++) if (cs[i] ~ /^kadapt-/) printf " %20s", cs[i] "/" base " (rounds)"
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
				if (!((k in med) && (b in med) && med[b] > 0)) { printf " %20s", "-"; continue }
				lo = 1e9; hi = 0
				for (x = 1; x <= nr; x++) if (((k, x) in round) && round[b, x] > 0) {
					q = round[k, x] / round[b, x]; if (q < lo) lo = q; if (q > hi) hi = q
				}
				printf " %6.2fx (%.2f-%.2f)", med[k] / med[b], lo, hi
			}
			printf "\n"
		}
	}'
