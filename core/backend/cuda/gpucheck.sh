#!/bin/sh
# Builds the CUDA test binary and the cuda host here (no GPU needed: the CUDA 13
# headers and link stubs in ../shared/cuda13 or an installed toolkit satisfy the
# compiler), then prints the command to run on a GPU machine. The test binary ends
# with "N passed, N failed".
set -e
cd "$(dirname "$0")/../../.."
CUDA=${CUDA_HOME:-$( [ -d /usr/local/cuda/include ] && echo /usr/local/cuda || echo "$PWD/../shared/cuda13" )}
LIB=$CUDA/lib64; [ -d "$LIB" ] || LIB=$CUDA/lib
export CGO_ENABLED=1 CGO_CFLAGS="-I$PWD/tools/cudacompat -I$CUDA/include" CGO_LDFLAGS="-L$LIB"
mkdir -p .gpu
go test -c -tags cuda -o .gpu/cuda.test ./core/backend/cuda/
go build -tags cuda -o .gpu/host ./host
cat > .gpu/run.sh <<'RUN'
#!/bin/sh
# Run on the GPU machine from the repository root.
export LD_LIBRARY_PATH=/usr/local/cuda/lib64:$LD_LIBRARY_PATH
out=$(.gpu/cuda.test -test.v 2>&1); echo "$out"
pass=$(echo "$out" | grep -c '^--- PASS\|^    --- PASS' || true)
fail=$(echo "$out" | grep -c '^--- FAIL\|^    --- FAIL' || true)
echo "$pass passed, $fail failed"
RUN
chmod +x .gpu/run.sh
echo "built .gpu/cuda.test and .gpu/host; on the GPU machine run: sh .gpu/run.sh"
