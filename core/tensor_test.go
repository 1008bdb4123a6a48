package core

import (
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
