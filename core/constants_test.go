package core

import (
	"math"
	"os"
	"regexp"
	"strconv"
	"testing"
)

// The CPU assembly and the CUDA kernels cannot import Go constants, so they repeat
// QuickGELUCoef as a literal; this keeps the copies equal to the one definition.
func TestQuickGELUCoefLiterals(t *testing.T) {
	want := float32(QuickGELUCoef)
	asm, err := os.ReadFile("backend/cpu/simd_amd64.s")
	if err != nil {
		t.Fatal(err)
	}
	lanes := regexp.MustCompile(`DATA qgA<>\+\d+\(SB\)/4, \$(0x[0-9a-f]+)`).FindAllSubmatch(asm, -1)
	if len(lanes) != 8 {
		t.Fatalf("simd_amd64.s: %d lanes of qgA, want 8", len(lanes))
	}
	for _, m := range lanes {
		bits, _ := strconv.ParseUint(string(m[1]), 0, 32)
		if got := math.Float32frombits(uint32(bits)); got != want {
			t.Errorf("simd_amd64.s: qgA lane holds %v, want float32(QuickGELUCoef) = %v", got, want)
		}
	}
	neg := regexp.MustCompile(`DATA qgNegA<>\+\d+\(SB\)/4, \$(0x[0-9a-f]+)`).FindAllSubmatch(asm, -1)
	if len(neg) != 8 {
		t.Fatalf("simd_amd64.s: %d lanes of qgNegA, want 8", len(neg))
	}
	for _, m := range neg {
		bits, _ := strconv.ParseUint(string(m[1]), 0, 32)
		if got := math.Float32frombits(uint32(bits)); got != -want {
			t.Errorf("simd_amd64.s: qgNegA lane holds %v, want %v", got, -want)
		}
	}
	cu, err := os.ReadFile("backend/cuda/kernels/elementwise.cu")
	if err != nil {
		t.Fatal(err)
	}
	m := regexp.MustCompile(`#define QUICK_GELU ([0-9.]+)f`).FindSubmatch(cu)
	if m == nil {
		t.Fatal("elementwise.cu: no #define QUICK_GELU")
	}
	if got, _ := strconv.ParseFloat(string(m[1]), 64); got != QuickGELUCoef {
		t.Errorf("elementwise.cu: QUICK_GELU is %v, want QuickGELUCoef = %v", got, QuickGELUCoef)
	}
}
