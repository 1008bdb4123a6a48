#!/bin/sh
# Prepares the CUDA backend's GPU check on a machine without a GPU, then prints the
# command to run on the GPU machine.
#
#   sh core/backend/cuda/gpucheck.sh
#
# 1. If clang can compile CUDA, the kernels are compiled for sm_90 as a syntax and
#    type check (NVRTC does the real compilation at start-up on the GPU).
# 2. The test binary cuda.test is built against the CUDA 13 headers (the link
#    stubs are not needed: the backend opens libcuda, libcublas and libnvrtc with
#    dlopen, so the binary starts anywhere and its tests skip without a GPU).
# 3. The binary runs here once: the tests that need no GPU run (the kernel emulator
#    among them, where a C++ compiler is installed), the rest must skip.
# 4. The benchmark is built beside it: host-cuda (host with -tags cuda) and the method
#    plugins it runs in plugins/, where host-cuda looks for them. All of it is packed
#    into .gpu/bundle.tgz.
#
# On the GPU machine, from the repository root (carrying .gpu),
# `sh core/backend/cuda/gpurun.sh` runs every test (ending with the line
# "N passed, N failed, N skipped"), then `host bench` against
# tools/bench/torch_clip_bench.py for each method and precision, and prints the ratios.
set -e
cd "$(dirname "$0")/../../.."
if [ -n "$CUDA13" ]; then :
elif [ -d /work/shared/cuda13/include ]; then CUDA13=/work/shared/cuda13
elif [ -d ../shared/cuda13/include ]; then CUDA13=$(cd ../shared/cuda13 && pwd)
elif [ -d "${CUDA_HOME:-/usr/local/cuda}/include" ]; then CUDA13=${CUDA_HOME:-/usr/local/cuda}
else echo "gpucheck: no CUDA headers found (set CUDA13 to a directory with include/cuda.h)" >&2; exit 1
fi
LIB=$CUDA13/lib; [ -d "$LIB" ] || LIB=$CUDA13/lib64
export CGO_ENABLED=1 CGO_CFLAGS="-I$PWD/tools/cudacompat -I$CUDA13/include" CGO_LDFLAGS="-L$LIB"
rm -rf .gpu && mkdir -p .gpu

CLANG=$(command -v clang-19 || command -v clang-18 || command -v clang || true)
if [ -n "$CLANG" ]; then
	# clang without a CUDA installation: declare the few device builtins the kernels use
	# from clang's own CUDA headers.
	tmp=$(mktemp -d)
	mkdir -p "$tmp/crt" && : >"$tmp/crt/sm_70_rt.hpp"
	cat >"$tmp/prelude.h" <<'EOF'
#define CUDA_VERSION 9020
typedef __SIZE_TYPE__ size_t;
#include <limits.h>
#define HUGE_VAL __builtin_huge_val()
#define HUGE_VALF __builtin_huge_valf()
#define __host__ __attribute__((host))
#define __device__ __attribute__((device))
#define __global__ __attribute__((global))
#define __shared__ __attribute__((shared))
#define __constant__ __attribute__((constant))
#define __forceinline__ __inline__ __attribute__((always_inline))
#define __noinline__ __attribute__((noinline))
#include <__clang_cuda_builtin_vars.h>
#include <__clang_cuda_libdevice_declares.h>
#undef __DEVICE__
#define __CUDA_ARCH__ 900
#include <__clang_cuda_device_functions.h>
#include <__clang_cuda_math.h>
#include <vector_types.h>
#include <__clang_cuda_intrinsics.h>
static __device__ __forceinline__ float atomicAdd(float* p, float v) { return __fAtomicAdd(p, v); }
static __device__ __forceinline__ unsigned atomicOr(unsigned* p, unsigned v) { return __uAtomicOr(p, v); }
EOF
	cat core/backend/cuda/kernels/common.cuh core/backend/cuda/kernels/*.cu >"$tmp/all.cu"
	if "$CLANG" -x cuda --cuda-device-only --cuda-gpu-arch=sm_90 -Xclang -target-feature -Xclang +ptx78 \
		-nocudainc -nocudalib -std=c++17 -O3 -Wall -Wextra -Werror -I"$tmp" -idirafter "$CUDA13/include" \
		-include "$tmp/prelude.h" -S -o "$tmp/all.ptx" "$tmp/all.cu"; then
		echo "gpucheck: kernels compile with $CLANG for sm_90 ($(grep -c '\.entry' "$tmp/all.ptx") kernels)"
	else
		echo "gpucheck: the kernels do not compile (clang, above)" >&2
		rm -rf "$tmp"
		exit 1
	fi
	rm -rf "$tmp"
else
	echo "gpucheck: no clang here; the kernels are checked by NVRTC on the GPU machine only"
fi

go vet -tags cuda ./core/backend/cuda/
# Stripped and packed, the binaries fit the device tool's 64 MiB carry limit.
G=.gpu/bin
go test -c -ldflags='-s -w' -tags cuda -o $G/cuda.test ./core/backend/cuda/
$G/cuda.test -test.count=1 | tail -1
go build -ldflags='-s -w' -tags cuda -o $G/host-cuda ./host
for p in kadaptation lora linearprobe; do
	CGO_ENABLED=0 go build -ldflags='-s -w' -o $G/plugins/$p ./plugins/cmd/$p
done
$G/host-cuda bench --device cuda --batch 1 --steps 1 2>&1 | grep -q 'cuda: no' ||
	{ echo "gpucheck: host-cuda does not say why CUDA is unusable here" >&2; exit 1; }
tar -C .gpu -czf .gpu/bundle.tgz bin && rm -rf $G
echo "built .gpu/bundle.tgz ($(du -k .gpu/bundle.tgz | cut -f1) KiB: tests, host-cuda, plugins); on the GPU machine, from the repository root, run:"
echo 'sh core/backend/cuda/gpurun.sh'
