//go:build cuda

package main

// The GPU backend registers itself as "cuda" (`make cuda` builds bin/host-cuda).
import _ "github.com/kadapt/kadapt/core/backend/cuda"
