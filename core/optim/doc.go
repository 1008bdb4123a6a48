// Package optim holds kadapt's optimizers (SGD with momentum and AdamW, PyTorch
// semantics), learning-rate schedules and global-norm gradient clipping.
//
// Everything that touches parameter data runs as core.Backend ops, so an optimizer step
// on the CUDA backend never copies through the host. Optimizer state can be exported
// with StateDict and restored with LoadStateDict; a restored optimizer continues
// bitwise identically to one that never stopped, which is what checkpoint resume needs.
package optim
