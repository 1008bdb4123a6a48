# kadapt — see README.md. Every target works from a fresh clone with only Go installed.
GO        ?= go
BIN       := bin
PLUGINS   := kadaptation adapter lora compacter finetune linearprobe
STATICCHECK_VERSION := v0.8.2
# CUDA: an installed toolkit wins; otherwise the headers and link stubs in ../shared/cuda13
# let the cuda build compile (not run) on machines without a GPU.
CUDA_HOME ?= $(shell if [ -d /usr/local/cuda/include ]; then echo /usr/local/cuda; elif [ -d ../shared/cuda13 ]; then echo $(abspath ../shared/cuda13); fi)
CUDA_LIB  := $(shell if [ -d $(CUDA_HOME)/lib64 ]; then echo $(CUDA_HOME)/lib64; else echo $(CUDA_HOME)/lib; fi)
CUDA_ENV  := CGO_ENABLED=1 CGO_CFLAGS="-I$(abspath tools/cudacompat) -I$(CUDA_HOME)/include" CGO_LDFLAGS="-L$(CUDA_LIB)"

.PHONY: all build run test fuzz-smoke bench bench-gemm lint cuda cuda-check clean

all: build

build:
	@mkdir -p $(BIN)/plugins
	$(GO) build -o $(BIN)/host ./host
	@for p in $(PLUGINS); do \
		if [ -d plugins/cmd/$$p ]; then $(GO) build -o $(BIN)/plugins/kadapt-plugin-$$p ./plugins/cmd/$$p || exit 1; fi; \
	done

# The main job on the built-in default task.
run: build
	$(BIN)/host run --plugin kadaptation

test:
	$(GO) test -count=1 ./...

# Every fuzz target for FUZZTIME (default 2s) each; FUZZTIME=10m make fuzz-smoke for a longer hunt.
fuzz-smoke:
	GO=$(GO) tools/fuzz-smoke.sh

# `go test -bench` over the core packages, then kadapt's GEMM against gonum and (where
# libopenblas-dev is installed) OpenBLAS on ViT-B/32's shapes: tools/bench/gemm.sh,
# which times two-thread runs in separate processes.
bench:
	$(GO) test -run '^$$' -bench . -benchmem -benchtime 2x $$($(GO) list ./core/... ./backbones/... | grep -v /gemm$$)
	GO=$(GO) tools/bench/gemm.sh

# Only the GEMM comparison (ROUNDS, BENCHTIME, SHAPES: see the script).
bench-gemm:
	GO=$(GO) tools/bench/gemm.sh

lint:
	@out=$$(gofmt -l $$(git ls-files '*.go')); if [ -n "$$out" ]; then echo "gofmt needed:"; echo "$$out"; exit 1; fi
	$(GO) vet ./...
	$(GO) run honnef.co/go/tools/cmd/staticcheck@$(STATICCHECK_VERSION) ./...

cuda:
	@test -n "$(CUDA_HOME)" || { echo "no CUDA toolkit found (set CUDA_HOME)"; exit 1; }
	@mkdir -p $(BIN)
	$(CUDA_ENV) $(GO) build -tags cuda -o $(BIN)/host-cuda ./host

cuda-check:
	@if [ -z "$(CUDA_HOME)" ]; then echo "no CUDA toolkit or ../shared/cuda13 found: skipping cuda-check"; else \
		set -x; $(CUDA_ENV) $(GO) build -tags cuda ./... && $(CUDA_ENV) $(GO) vet -tags cuda ./... && \
		$(CUDA_ENV) $(GO) test -count=1 -tags cuda ./core/backend/cuda/...; fi

clean:
	rm -rf $(BIN)
