package jsondiff

import "testing"

func TestFirst(t *testing.T) {
	for _, tc := range []struct {
		a, b, path, av, bv string
	}{
		{`{"a":1,"b":{"c":[1,2,{"d":"x"}]}}`, `{"b":{"c":[1,2,{"d":"y"}]},"a":1}`, "b.c[2].d", `"x"`, `"y"`},
		{`{"train":{"lr":0.001,"epochs":30}}`, `{"train":{"epochs":30,"lr":0.01}}`, "train.lr", "0.001", "0.01"},
		{`{"a":1}`, `{"a":1,"z":null}`, "z", "(absent)", "null"},
		{`{"e":[1,2]}`, `{"e":[1,2,3]}`, "e", "2 elements", "3 elements"},
		{`{"e":[1]}`, `{"e":{"0":1}}`, "e", "[1]", `{"0":1}`},
		{`3`, `4`, "(the whole document)", "3", "4"},
	} {
		path, av, bv, differ, err := First([]byte(tc.a), []byte(tc.b))
		if err != nil || !differ || path != tc.path || av != tc.av || bv != tc.bv {
			t.Errorf("First(%s, %s) = %q %q %q %v %v; want %q %q %q", tc.a, tc.b, path, av, bv, differ, err, tc.path, tc.av, tc.bv)
		}
	}
	if _, _, _, differ, err := First([]byte(`{"a":[1,{"b":2}],"c":"x"}`), []byte(`{"c":"x","a":[1,{"b":2}]}`)); differ || err != nil {
		t.Errorf("equal documents differ: %v %v", differ, err)
	}
	if _, _, _, _, err := First([]byte(`{"a":`), []byte(`{}`)); err == nil {
		t.Error("truncated JSON accepted")
	}
}
