// Package proto holds the generated gRPC code of kadapt's plugin protocol
// (kadapt.proto). Regenerate with `go generate ./plugins/proto`.
package proto

//go:generate ./gen.sh
