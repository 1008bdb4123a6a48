// Package builtin carries the demo backbone inside the binary: mnist-vit, a CLIP-style
// ViT (28×28 grayscale input, patch 7, width 64, 4 blocks, 32-d projection, 206,528
// parameters) that `host pretrain` trained on MNIST digits 0–4 only: 15,000 images,
// 4 epochs, random affine and elastic distortions, and (digit, quarter turn) joint
// labels so the features keep more than five digits' identity. Reproduce it with
//
//	host pretrain --out backbones/builtin/mnist-vit.safetensors
//
// (the defaults are its recipe; the command and its result are also in the file's
// metadata).
package builtin

import (
	_ "embed"
	"os"
)

//go:embed mnist-vit.safetensors
var weights []byte

// Path writes the weights to a temporary file (the safetensors reader memory-maps
// files) and returns its path and a function that removes it.
func Path() (string, func(), error) {
	f, err := os.CreateTemp("", "kadapt-mnist-vit-*.safetensors")
	if err != nil {
		return "", func() {}, err
	}
	cleanup := func() { os.Remove(f.Name()) }
	if _, err := f.Write(weights); err != nil {
		f.Close()
		cleanup()
		return "", func() {}, err
	}
	if err := f.Close(); err != nil {
		cleanup()
		return "", func() {}, err
	}
	return f.Name(), cleanup, nil
}

// Bytes is the safetensors file itself.
func Bytes() []byte { return weights }
