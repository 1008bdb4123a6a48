package safetensors

import (
	"encoding/binary"
	"os"
	"strings"
	"testing"
)

// validPair is a two-tensor file to corrupt: a is F32 [2,2] at [0,16], b is F16
// [3] at [16,22].
const validPairHeader = `{"a":{"dtype":"F32","shape":[2,2],"data_offsets":[0,16]},` +
	`"b":{"dtype":"F16","shape":[3],"data_offsets":[16,22]}}`

func validPair() []byte { return rawFile(validPairHeader, make([]byte, 22)) }

func pair(a, b string) []byte {
	return rawFile(`{"a":`+a+`,"b":`+b+`}`, make([]byte, 22))
}

const okA = `{"dtype":"F32","shape":[2,2],"data_offsets":[0,16]}`

func TestOpenCorrupt(t *testing.T) {
	withLength := func(n uint64, rest []byte) []byte {
		return append(binary.LittleEndian.AppendUint64(nil, n), rest...)
	}
	valid := validPair()
	tests := []struct {
		name string
		file []byte
		want string
	}{
		{"empty", nil, "file is 0 bytes, too short"},
		{"seven bytes", valid[:7], "file is 7 bytes, too short"},
		{"truncated data", valid[:len(valid)-3], "tensor \"b\": data_offsets [16,22] exceed data section of 19 bytes"},
		{"truncated header", valid[:20], "header length 112 exceeds the 12 bytes after the length prefix"},
		{"header length lies", withLength(1<<20, valid[8:]), "header length 1048576 exceeds the 134 bytes"},
		{"header length absurd", withLength(1<<62, valid[8:]), "header length 4611686018427387904 exceeds the 104857600-byte limit"},
		{"header length max", withLength(^uint64(0), valid[8:]), "exceeds the 104857600-byte limit"},
		{"a PyTorch checkpoint", append([]byte("PK\x03\x04\x00\x00\x08\x08"), valid[8:]...), "not a safetensors file: header length"},
		{"a pickle", append([]byte("\x80\x02\x00\x00\x00\x00\x00\x00\x8a"), make([]byte, 1000)...), "not a safetensors file: header is not valid UTF-8"},
		{"invalid json", rawFile(`{"a":{"dtype":"F32",`, nil), `tensor "a": unexpected EOF`},
		{"invalid json value", rawFile(`{"a":{"dtype":F32}}`, nil), `tensor "a": invalid character 'F'`},
		{"not an object", rawFile(`[1,2]`, nil), "not a safetensors file: header does not start with '{'"},
		{"leading space", rawFile(` {}`, nil), "header does not start with '{'"},
		{"invalid utf8", rawFile("{\"\xff\":1}", nil), "header is not valid UTF-8"},
		{"trailing garbage", rawFile(`{}x`, nil), "header"},
		{"two objects", rawFile(`{}{}`, nil), "unexpected data after the JSON object"},
		{"offsets out of range", pair(okA, `{"dtype":"F16","shape":[3],"data_offsets":[16,40]}`),
			`tensor "b": data_offsets [16,40] exceed data section of 22 bytes`},
		{"offsets reversed", pair(okA, `{"dtype":"F16","shape":[3],"data_offsets":[22,16]}`),
			`tensor "b": data_offsets [22,16] are reversed`},
		{"offsets three values", pair(okA, `{"dtype":"F16","shape":[3],"data_offsets":[16,22,30]}`),
			`tensor "b": data_offsets must be [begin, end], got 3 values`},
		{"offsets negative", pair(okA, `{"dtype":"F16","shape":[3],"data_offsets":[-6,0]}`),
			`tensor "b": data_offsets [-6 0]: -6 is negative`},
		{"offsets huge", pair(okA, `{"dtype":"F16","shape":[3],"data_offsets":[16,99999999999999999999999]}`),
			`tensor "b": data_offsets [16 99999999999999999999999]: 99999999999999999999999 is out of range`},
		{"overlapping", rawFile(`{"a":{"dtype":"F32","shape":[4],"data_offsets":[0,16]},`+
			`"b":{"dtype":"F32","shape":[2],"data_offsets":[12,20]},"c":{"dtype":"U8","shape":[2],"data_offsets":[20,22]}}`,
			make([]byte, 22)), `tensor "b": data_offsets [12,20] overlap tensor "a" at [0,16]`},
		{"same range twice", rawFile(`{"a":{"dtype":"F32","shape":[1],"data_offsets":[0,4]},`+
			`"b":{"dtype":"F32","shape":[1],"data_offsets":[0,4]}}`, make([]byte, 4)), `tensor "b": data_offsets [0,4] overlap tensor "a"`},
		{"hole", pair(okA, `{"dtype":"F16","shape":[2],"data_offsets":[18,22]}`),
			`tensor "b": data_offsets [18,22] leave bytes [16,18) of the data section unused`},
		{"trailing data", rawFile(validPairHeader, make([]byte, 30)), "tensors cover 22 bytes but the data section has 30"},
		{"wrong dtype size", pair(okA, `{"dtype":"F32","shape":[3],"data_offsets":[16,22]}`),
			`tensor "b": data_offsets [16,22] span 6 bytes but F32[3] needs 12`},
		{"absurd shape overflows", pair(okA, `{"dtype":"F16","shape":[1099511627776,1099511627776],"data_offsets":[16,22]}`),
			`tensor "b": shape [1099511627776 1099511627776]: element count overflows`},
		{"huge shape", pair(okA, `{"dtype":"F64","shape":[1099511627776,1048576],"data_offsets":[16,22]}`),
			`tensor "b": shape [1099511627776 1048576]: byte size overflows`},
		{"large shape", pair(okA, `{"dtype":"F16","shape":[1099511627776],"data_offsets":[16,22]}`),
			`tensor "b": data_offsets [16,22] span 6 bytes but F16[1099511627776] needs 2199023255552`},
		{"negative dim", pair(okA, `{"dtype":"F16","shape":[-3],"data_offsets":[16,22]}`),
			`tensor "b": shape [-3]: dimension 0: -3 is negative`},
		{"fractional dim", pair(okA, `{"dtype":"F16","shape":[1.5],"data_offsets":[16,22]}`),
			`tensor "b": shape [1.5]: dimension 0: 1.5 is not an integer`},
		{"exponent dim", pair(okA, `{"dtype":"F16","shape":[3e0],"data_offsets":[16,22]}`),
			`dimension 0: 3e0 is not an integer`},
		{"string dim", pair(okA, `{"dtype":"F16","shape":["3"],"data_offsets":[16,22]}`), `tensor "b": shape ["3"]: dimension 0: "3" is not an integer`},
		{"null dim", pair(okA, `{"dtype":"F16","shape":[null],"data_offsets":[16,22]}`), `dimension 0: null is not an integer`},
		{"empty name ok but bad", rawFile(`{"":{"dtype":"U8","shape":[2],"data_offsets":[0,1]}}`, []byte{0}), `tensor "": data_offsets [0,1] span 1 bytes but U8[2] needs 2`},
		{"unknown dtype", pair(okA, `{"dtype":"F17","shape":[3],"data_offsets":[16,22]}`), `tensor "b": unknown dtype "F17"`},
		{"lower-case dtype", pair(okA, `{"dtype":"f16","shape":[3],"data_offsets":[16,22]}`), `tensor "b": unknown dtype "f16"`},
		{"missing dtype", pair(okA, `{"shape":[3],"data_offsets":[16,22]}`), `tensor "b": missing dtype`},
		{"missing shape", pair(okA, `{"dtype":"F16","data_offsets":[16,22]}`), `tensor "b": missing shape`},
		{"missing offsets", pair(okA, `{"dtype":"F16","shape":[3]}`), `tensor "b": missing data_offsets`},
		{"unknown field", pair(okA, `{"dtype":"F16","shape":[3],"data_offsets":[16,22],"x":1}`), `tensor "b": json: unknown field "x"`},
		{"entry not object", pair(okA, `[1]`), `tensor "b": json: cannot unmarshal array`},
		{"sub-byte tensor", rawFile(`{"a":{"dtype":"F4","shape":[3],"data_offsets":[0,2]}}`, make([]byte, 2)),
			`tensor "a": 3 elements of F4 do not fill whole bytes`},
		{"duplicate tensor", rawFile(`{"a":`+okA+`,"a":`+okA+`}`, make([]byte, 16)), `header: duplicate tensor "a"`},
		{"metadata not strings", rawFile(`{"__metadata__":{"epoch":3},"a":`+okA+`}`, make([]byte, 16)),
			`header: "__metadata__" must map strings to strings`},
		{"metadata twice", rawFile(`{"__metadata__":{},"__metadata__":{}}`, nil), `header: duplicate key "__metadata__"`},
		{"metadata array", rawFile(`{"__metadata__":["a"]}`, nil), `"__metadata__" must map strings to strings`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			path := writeTemp(t, "model.safetensors", tt.file)
			f, err := Open(path)
			if err == nil {
				f.Close()
				t.Fatalf("Open succeeded, want error containing %q", tt.want)
			}
			msg := err.Error()
			if !strings.HasPrefix(msg, path+": ") || !strings.Contains(msg, tt.want) {
				t.Errorf("error %q\nwant prefix %q and substring %q", msg, path+": ", tt.want)
			}
		})
	}
}

// TestOpenAcceptsEdgeCases covers files that look odd but are valid.
func TestOpenAcceptsEdgeCases(t *testing.T) {
	tests := []struct {
		name  string
		file  []byte
		names int
	}{
		{"no tensors", rawFile(`{}`, nil), 0},
		{"padded header", rawFile(`{}      `, nil), 0},
		{"null metadata", rawFile(`{"__metadata__":null}`, nil), 0},
		{"zero-size tensors share an offset", rawFile(`{"a":{"dtype":"F32","shape":[0],"data_offsets":[0,0]},`+
			`"b":{"dtype":"I64","shape":[3,0],"data_offsets":[0,0]},"c":{"dtype":"U8","shape":[1],"data_offsets":[0,1]}}`,
			[]byte{9}), 3},
		{"out-of-order offsets", rawFile(`{"b":{"dtype":"U8","shape":[1],"data_offsets":[1,2]},`+
			`"a":{"dtype":"U8","shape":[1],"data_offsets":[0,1]}}`, []byte{1, 2}), 2},
		{"F4 pair", rawFile(`{"a":{"dtype":"F4","shape":[2],"data_offsets":[0,1]}}`, []byte{0x21}), 1},
	}
	for _, tt := range tests {
		f, err := Open(writeTemp(t, "ok.safetensors", tt.file))
		if err != nil {
			t.Errorf("%s: %v", tt.name, err)
			continue
		}
		if n := len(f.Names()); n != tt.names {
			t.Errorf("%s: %d tensors, want %d", tt.name, n, tt.names)
		}
		f.Close()
	}
}

func TestOpenNotRegular(t *testing.T) {
	dir := t.TempDir()
	if _, err := Open(dir); err == nil || !strings.Contains(err.Error(), "not a regular file") {
		t.Errorf("Open(dir) = %v", err)
	}
	if _, err := Open(dir + "/absent.safetensors"); !os.IsNotExist(err) {
		t.Errorf("Open(absent) = %v, want not-exist", err)
	}
}

// FuzzOpen checks that no input panics Open or the conversions, and that every
// accepted file tiles its data section exactly.
func FuzzOpen(f *testing.F) {
	f.Add(handmade())
	f.Add(validPair())
	f.Add(rawFile(`{}`, nil))
	f.Add(pair(okA, `{"dtype":"F16","shape":[1099511627776,1099511627776],"data_offsets":[16,22]}`))
	f.Add(rawFile(`{"a":{"dtype":"F32","shape":[4],"data_offsets":[0,16]},`+
		`"b":{"dtype":"F32","shape":[2],"data_offsets":[12,20]}}`, make([]byte, 20)))
	f.Add(binary.LittleEndian.AppendUint64(nil, 1<<40))
	path := f.TempDir() + "/fuzz.safetensors"
	f.Fuzz(func(t *testing.T, b []byte) {
		if err := os.WriteFile(path, b, 0o644); err != nil {
			t.Fatal(err)
		}
		file, err := Open(path)
		if err != nil {
			if !strings.HasPrefix(err.Error(), path+": ") {
				t.Fatalf("error %q does not name the file", err)
			}
			return
		}
		defer file.Close()
		total := 0
		for _, name := range file.Names() {
			info, ok := file.Info(name)
			if !ok {
				t.Fatalf("Names lists %q but Info does not find it", name)
			}
			numel := info.NumElements()
			total += numel * int(dtypes[info.DType].bits) / 8
			if v, err := file.Float32s(name); err == nil && len(v) != numel {
				t.Fatalf("Float32s(%q) has %d values, shape %v", name, len(v), info.Shape)
			}
			file.Float64s(name)
			file.Int64s(name)
		}
		if hdr := binary.LittleEndian.Uint64(b); total != len(b)-8-int(hdr) {
			t.Fatalf("tensors cover %d bytes, data section is %d", total, len(b)-8-int(hdr))
		}
	})
}
