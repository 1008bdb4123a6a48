// Package core defines kadapt's tensor handles and the Backend interface that every
// compute engine implements: the pure-Go CPU backend (core/backend/cpu, the default),
// the float64 reference backend used as the yardstick in tests (core/backend/ref) and
// the CUDA backend (core/backend/cuda, behind the `cuda` build tag).
//
// Tensors are handles: the backend owns their storage (a Go slice on the CPU, device
// memory on a GPU), and callers move data in and out only through Upload and Download.
// Ops are destination-passing so that the training loop can reuse buffers from a
// backend's pool instead of allocating in steady state. Autograd (core/autograd) and the
// optimizers (core/optim) are written purely against this interface, so a new backend
// gets training for free once it passes the conformance suite in core/backendtest.
package core
