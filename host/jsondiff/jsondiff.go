// Package jsondiff finds the first difference between two JSON documents, for errors
// that must name the field at fault (a resumed run's plan or configuration that no
// longer matches what the run started with).
package jsondiff

import (
	"bytes"
	"encoding/json"
	"fmt"
	"sort"
)

// First returns the dotted path of the first difference between JSON documents a
// and b (object keys in sorted order, array elements as [i]) and both values there,
// or ok false when they are equal as JSON values. Numbers compare by their text, so
// 0.1 and 0.10 differ: both sides are meant to come from the same encoder.
func First(a, b []byte) (path, av, bv string, differ bool, err error) {
	var x, y any
	if err := decode(a, &x); err != nil {
		return "", "", "", false, err
	}
	if err := decode(b, &y); err != nil {
		return "", "", "", false, err
	}
	path, av, bv, differ = first("", x, y)
	return path, av, bv, differ, nil
}

func decode(data []byte, v *any) error {
	dec := json.NewDecoder(bytes.NewReader(data))
	dec.UseNumber()
	return dec.Decode(v)
}

func first(path string, a, b any) (string, string, string, bool) {
	switch x := a.(type) {
	case map[string]any:
		y, ok := b.(map[string]any)
		if !ok {
			break
		}
		keys := map[string]bool{}
		for k := range x {
			keys[k] = true
		}
		for k := range y {
			keys[k] = true
		}
		sorted := make([]string, 0, len(keys))
		for k := range keys {
			sorted = append(sorted, k)
		}
		sort.Strings(sorted)
		for _, k := range sorted {
			p := k
			if path != "" {
				p = path + "." + k
			}
			xv, xok := x[k]
			yv, yok := y[k]
			if !xok || !yok {
				return p, show(xv, xok), show(yv, yok), true
			}
			if p, av, bv, d := first(p, xv, yv); d {
				return p, av, bv, true
			}
		}
		return "", "", "", false
	case []any:
		y, ok := b.([]any)
		if !ok {
			break
		}
		for i := range min(len(x), len(y)) {
			if p, av, bv, d := first(fmt.Sprintf("%s[%d]", path, i), x[i], y[i]); d {
				return p, av, bv, true
			}
		}
		if len(x) != len(y) {
			return path, fmt.Sprintf("%d elements", len(x)), fmt.Sprintf("%d elements", len(y)), true
		}
		return "", "", "", false
	}
	if show(a, true) == show(b, true) {
		return "", "", "", false
	}
	if path == "" {
		path = "(the whole document)"
	}
	return path, show(a, true), show(b, true), true
}

func show(v any, present bool) string {
	if !present {
		return "(absent)"
	}
	out, _ := json.Marshal(v)
	return string(out)
}
