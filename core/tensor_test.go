package core

import (
	"fmt"
	"math"
	"strings"
	"testing"
)

func TestShapeSizeWithin(t *testing.T) {
	for _, c := range []struct {
		shape Shape
		limit int
		want  int
		err   string
	}{
		{Shape{}, 10, 1, ""},
		{Shape{2, 3, 4}, 24, 24, ""},
		{Shape{2, 3, 4}, 23, 0, "more than 23 elements"},
		{Shape{0, math.MaxInt}, 10, 0, ""}, // an empty axis makes any product empty
		{Shape{1 << 32, 1 << 32}, math.MaxInt, 0, "more than"},
		{Shape{2, -1}, 10, 0, "negative dimension, -1 on axis 1"},
	} {
		got, err := c.shape.SizeWithin(c.limit)
		if c.err == "" && (err != nil || got != c.want || got != c.shape.Size()) {
			t.Errorf("%v.SizeWithin(%d) = %d, %v; want %d", c.shape, c.limit, got, err, c.want)
		}
		if c.err != "" && (err == nil || !strings.Contains(err.Error(), c.err)) {
			t.Errorf("%v.SizeWithin(%d) = %d, %v; want an error with %q", c.shape, c.limit, got, err, c.err)
		}
	}
}

func TestAttentionShapes(t *testing.T) {
	tensor := func(s ...int) *Tensor { return &Tensor{shape: Shape(s)} }
	q, probs := tensor(2, 5, 12), tensor(2, 3, 5, 5)
	if n, l, d := AttentionShapes("cpu", "AttentionForward", probs, 3, q, tensor(2, 5, 12), nil); n != 2 || l != 5 || d != 4 {
		t.Errorf("AttentionShapes = %d, %d, %d; want 2, 5, 4", n, l, d)
	}
	for _, c := range []struct {
		heads int
		probs *Tensor
		qkv   []*Tensor
		want  string
	}{
		{5, probs, []*Tensor{q}, "cpu: AttentionForward: q [2,5,12] with 5 heads, want [N, L, H·D]"},
		{3, probs, []*Tensor{q, tensor(2, 5, 9)}, "operand [2,5,9] differs from q [2,5,12]"},
		{3, tensor(2, 3, 5, 4), []*Tensor{q}, "probs [2,3,5,4], want [2, 3, 5, 5]"},
		{3, probs, []*Tensor{tensor(10, 12)}, "with 3 heads, want [N, L, H·D]"},
	} {
		func() {
			defer func() {
				if r := recover(); r == nil || !strings.Contains(fmt.Sprint(r), c.want) {
					t.Errorf("AttentionShapes(%d heads, probs %v, %d operands) panicked with %v, want %q", c.heads, c.probs.Shape(), len(c.qkv), r, c.want)
				}
			}()
			AttentionShapes("cpu", "AttentionForward", c.probs, c.heads, c.qkv...)
		}()
	}
}
