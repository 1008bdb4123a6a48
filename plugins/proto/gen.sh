#!/bin/sh
# Regenerates kadapt.pb.go and kadapt_grpc.pb.go. Needs protoc, protoc-gen-go and
# protoc-gen-go-grpc on PATH (go install google.golang.org/protobuf/cmd/protoc-gen-go@v1.36.12
# and google.golang.org/grpc/cmd/protoc-gen-go-grpc@latest). The build does not need them:
# the generated files are committed.
set -e
cd "$(dirname "$0")"
protoc --go_out=. --go_opt=paths=source_relative \
  --go-grpc_out=. --go-grpc_opt=paths=source_relative kadapt.proto
