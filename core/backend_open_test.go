package core

import (
	"strings"
	"testing"
)

// TestOpenBackendUnknown names the device asked for and the backends this binary has.
func TestOpenBackendUnknown(t *testing.T) {
	_, err := OpenBackend("gpu")
	if err == nil || !strings.Contains(err.Error(), `"gpu"`) || !strings.Contains(err.Error(), "-tags cuda") {
		t.Fatalf("OpenBackend(gpu): %v", err)
	}
	if _, err := OpenBackend("cuda:0"); err == nil || !strings.Contains(err.Error(), "without CUDA support") {
		t.Fatalf("OpenBackend(cuda:0) in a build without cuda: %v", err)
	}
}
