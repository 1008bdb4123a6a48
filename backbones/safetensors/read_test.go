package safetensors

import (
	"encoding/binary"
	"errors"
	"math"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
)

// rawFile assembles a file by hand, independently of Writer.
func rawFile(header string, data []byte) []byte {
	b := binary.LittleEndian.AppendUint64(nil, uint64(len(header)))
	b = append(b, header...)
	return append(b, data...)
}

func writeTemp(t testing.TB, name string, b []byte) string {
	t.Helper()
	p := filepath.Join(t.TempDir(), name)
	if err := os.WriteFile(p, b, 0o644); err != nil {
		t.Fatal(err)
	}
	return p
}

func mustOpen(t testing.TB, path string) *File {
	t.Helper()
	f, err := Open(path)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { f.Close() })
	return f
}

func TestFloat16Known(t *testing.T) {
	tests := []struct {
		bits uint16
		want float32
	}{
		{0x0000, 0},
		{0x3c00, 1},
		{0xc000, -2},
		{0x3555, 0.333251953125},                // 0x155/1024·2^-2 + 2^-2
		{0x7bff, 65504},                         // largest finite half
		{0x0400, 6.103515625e-05},               // 2^-14, smallest normal
		{0x0001, 5.9604644775390625e-08},        // 2^-24, smallest subnormal
		{0x03ff, 6.097555160522461e-05},         // 1023·2^-24, largest subnormal
		{0x8200, -3.0517578125e-05},             // -512·2^-24
		{0x7c00, float32(math.Inf(1))},          // +Inf
		{0xfc00, float32(math.Inf(-1))},         // -Inf
		{0x4248, 3.140625},                      // pi rounded to half
		{0xd640, -100},                          // exponent 21, mantissa 0x240
		{0x1400, 0.0009765625},                  // 2^-10
		{0x2e66, 0.0999755859375},               // 0.1 rounded to half
		{0x5a80, 208},                           // 2^7·1.625
		{0x0010, 9.5367431640625e-07},           // 16·2^-24
		{0x7800, 32768},                         // 2^15
		{0x3bff, 0.99951171875},                 // 1 - 2^-11
		{0x0200, 3.0517578125e-05},              // 512·2^-24
		{0x4000, 2},                             // 2
		{0xbc00, -1},                            // -1
		{0x3800, 0.5},                           // 0.5
		{0x7bfe, 65472},                         // second largest
		{0x0401, 6.109476089477539e-05},         // 2^-14·(1+2^-10)
		{0x03fe, 6.091594696044922e-05},         // 1022·2^-24
		{0x8001, -5.9604644775390625e-08},       // -2^-24
		{0x3c01, 1.0009765625},                  // 1+2^-10
		{0x4900, 10},                            // 10
		{0x6400, 1024},                          // 1024
		{0x8000, float32(math.Copysign(0, -1))}, // -0
	}
	for _, tt := range tests {
		got := float16ToFloat32(tt.bits)
		if math.Float32bits(got) != math.Float32bits(tt.want) {
			t.Errorf("float16 %#04x = %v, want %v", tt.bits, got, tt.want)
		}
	}
	for _, nan := range []uint16{0x7e00, 0xfe00, 0x7c01, 0x7fff} {
		if got := float16ToFloat32(nan); !math.IsNaN(float64(got)) {
			t.Errorf("float16 %#04x = %v, want NaN", nan, got)
		}
	}
}

// TestFloat16Exhaustive checks every finite half against the definition
// (-1)^s·2^(e-15)·(1+m/1024), or 2^-14·m/1024 for subnormals, evaluated in float64.
func TestFloat16Exhaustive(t *testing.T) {
	for h := 0; h < 1<<16; h++ {
		s, e, m := h>>15, (h>>10)&0x1f, h&0x3ff
		if e == 0x1f {
			continue
		}
		var want float64
		if e == 0 {
			want = math.Ldexp(float64(m)/1024, -14)
		} else {
			want = math.Ldexp(1+float64(m)/1024, e-15)
		}
		if s == 1 {
			want = -want
		}
		if got := float16ToFloat32(uint16(h)); math.Float32bits(got) != math.Float32bits(float32(want)) {
			t.Fatalf("float16 %#04x = %v, want %v", h, got, want)
		}
	}
}

func TestBFloat16Known(t *testing.T) {
	tests := []struct {
		bits uint16
		want float32
	}{
		{0x3f80, 1},
		{0xc049, -3.140625},
		{0x4049, 3.140625},
		{0x3dcd, 0.10009765625},
		{0x0001, 9.183549615799121e-41},  // 2^-133, smallest subnormal
		{0x0080, 1.1754943508222875e-38}, // 2^-126, smallest normal
		{0x7f7f, 3.3895313892515355e+38}, // largest finite
		{0x7f80, float32(math.Inf(1))},
		{0x8000, float32(math.Copysign(0, -1))},
	}
	for _, tt := range tests {
		got := bfloat16ToFloat32(tt.bits)
		if math.Float32bits(got) != math.Float32bits(tt.want) {
			t.Errorf("bfloat16 %#04x = %v, want %v", tt.bits, got, tt.want)
		}
	}
}

// handmade builds a file with every convertible dtype at unaligned offsets.
func handmade() []byte {
	var data []byte
	le := binary.LittleEndian
	data = le.AppendUint16(data, 0x3c00) // f16: 1, -2, 65504
	data = le.AppendUint16(data, 0xc000)
	data = le.AppendUint16(data, 0x7bff)
	data = append(data, 1, 0, 1) // bool [3] at 6..9
	data = le.AppendUint16(data, 0x3f80)
	data = le.AppendUint16(data, 0xc049) // bf16 [2] at 9..13
	data = le.AppendUint64(data, math.Float64bits(0.1))
	data = le.AppendUint64(data, math.Float64bits(-1e300)) // f64 [2] at 13..29
	data = le.AppendUint32(data, uint32(0xfffffffd))       // i32 -3 at 29..33
	data = le.AppendUint32(data, 7)                        // i32 7 at 33..37
	data = le.AppendUint32(data, math.Float32bits(2.5))    // f32 scalar at 37..41
	data = append(data, 200)                               // u8 at 41..42
	header := `{"__metadata__":{"format":"pt","note":"hand \"made\""},` +
		`"half":{"dtype":"F16","shape":[3],"data_offsets":[0,6]},` +
		`"mask":{"dtype":"BOOL","shape":[3],"data_offsets":[6,9]},` +
		`"brain":{"dtype":"BF16","shape":[1,2],"data_offsets":[9,13]},` +
		`"double":{"dtype":"F64","shape":[2],"data_offsets":[13,29]},` +
		`"ids":{"dtype":"I32","shape":[2,1],"data_offsets":[29,37]},` +
		`"scalar":{"dtype":"F32","shape":[],"data_offsets":[37,41]},` +
		`"byte":{"dtype":"U8","shape":[1],"data_offsets":[41,42]},` +
		`"empty":{"dtype":"F32","shape":[0,5],"data_offsets":[42,42]}}   `
	return rawFile(header, data)
}

func TestOpenHandmade(t *testing.T) {
	f := mustOpen(t, writeTemp(t, "hand.safetensors", handmade()))
	wantNames := []string{"brain", "byte", "double", "empty", "half", "ids", "mask", "scalar"}
	if got := f.Names(); !slices.Equal(got, wantNames) {
		t.Errorf("Names = %v, want %v", got, wantNames)
	}
	md := f.Metadata()
	if len(md) != 2 || md["format"] != "pt" || md["note"] != `hand "made"` {
		t.Errorf("Metadata = %v", md)
	}
	info, ok := f.Info("brain")
	if !ok || info.DType != "BF16" || !slices.Equal(info.Shape, []int{1, 2}) || info.NumElements() != 2 {
		t.Errorf("Info(brain) = %+v, %v", info, ok)
	}
	if info, _ := f.Info("scalar"); len(info.Shape) != 0 || info.NumElements() != 1 {
		t.Errorf("Info(scalar) = %+v", info)
	}
	if _, ok := f.Info("nope"); ok {
		t.Error("Info(nope) found a tensor")
	}

	f32 := []struct {
		name string
		want []float32
	}{
		{"half", []float32{1, -2, 65504}},
		{"brain", []float32{1, -3.140625}},
		{"double", []float32{0.1, float32(math.Inf(-1))}}, // -1e300 rounds to -Inf
		{"scalar", []float32{2.5}},
		{"empty", []float32{}},
	}
	for _, tt := range f32 {
		got, err := f.Float32s(tt.name)
		if err != nil {
			t.Errorf("Float32s(%s): %v", tt.name, err)
			continue
		}
		if !slices.Equal(got, tt.want) {
			t.Errorf("Float32s(%s) = %v, want %v", tt.name, got, tt.want)
		}
	}
	d, err := f.Float64s("double")
	if err != nil || !slices.Equal(d, []float64{0.1, -1e300}) {
		t.Errorf("Float64s(double) = %v, %v", d, err)
	}
	ints := []struct {
		name string
		want []int64
	}{
		{"ids", []int64{-3, 7}},
		{"mask", []int64{1, 0, 1}},
		{"byte", []int64{200}},
	}
	for _, tt := range ints {
		got, err := f.Int64s(tt.name)
		if err != nil || !slices.Equal(got, tt.want) {
			t.Errorf("Int64s(%s) = %v, %v; want %v", tt.name, got, err, tt.want)
		}
	}

	dst := make([]float32, 3)
	if err := f.Float32sInto("half", dst); err != nil || !slices.Equal(dst, []float32{1, -2, 65504}) {
		t.Errorf("Float32sInto(half) = %v, %v", dst, err)
	}
	if allocs := testing.AllocsPerRun(20, func() { f.Float32sInto("half", dst) }); allocs != 0 {
		t.Errorf("Float32sInto allocates %v times per call", allocs)
	}
}

func TestLookupErrors(t *testing.T) {
	f := mustOpen(t, writeTemp(t, "hand.safetensors", handmade()))
	tests := []struct {
		name string
		call func() error
		want string
	}{
		{"missing", func() error { _, err := f.Float32s("vision.missing"); return err }, `tensor "vision.missing": no such tensor`},
		{"missing into", func() error { return f.Float32sInto("x", nil) }, `tensor "x": no such tensor`},
		{"int as float", func() error { _, err := f.Float32s("ids"); return err }, `tensor "ids": dtype I32 is not a float type`},
		{"bool as float64", func() error { _, err := f.Float64s("mask"); return err }, `tensor "mask": dtype BOOL is not a float type`},
		{"float as int", func() error { _, err := f.Int64s("half"); return err }, `tensor "half": dtype F16 is not an integer type`},
		{"short dst", func() error { return f.Float32sInto("half", make([]float32, 2)) }, `tensor "half": destination holds 2 elements, tensor [3] has 3`},
	}
	for _, tt := range tests {
		err := tt.call()
		if err == nil || !strings.Contains(err.Error(), tt.want) || !strings.Contains(err.Error(), "hand.safetensors") {
			t.Errorf("%s: error %v, want it to name the file and contain %q", tt.name, err, tt.want)
		}
	}
	if _, err := f.Float32s("missing"); !errors.Is(err, ErrNotFound) {
		t.Errorf("missing tensor error %v does not wrap ErrNotFound", err)
	}
}

func TestClosed(t *testing.T) {
	f, err := Open(writeTemp(t, "c.safetensors", handmade()))
	if err != nil {
		t.Fatal(err)
	}
	if err := f.Close(); err != nil {
		t.Fatal(err)
	}
	if err := f.Close(); err != nil {
		t.Errorf("second Close: %v", err)
	}
	if _, err := f.Float32s("half"); err == nil || !strings.Contains(err.Error(), "closed") {
		t.Errorf("Float32s after Close: %v", err)
	}
	if info, ok := f.Info("half"); !ok || info.DType != "F16" {
		t.Errorf("Info after Close = %+v, %v", info, ok)
	}
}

// The expected values were read from the fixture files with Python's struct
// module, independently of this package.
func TestFixtures(t *testing.T) {
	t.Run("timm", func(t *testing.T) {
		f := mustOpen(t, "testdata/timm_vit_small.safetensors")
		if n := len(f.Names()); n != 32 {
			t.Errorf("%d tensors, want 32", n)
		}
		shapes := map[string][]int{
			"patch_embed.proj.weight":  {48, 3, 8, 8},
			"pos_embed":                {1, 17, 48},
			"cls_token":                {1, 1, 48},
			"blocks.1.attn.qkv.weight": {144, 48},
			"head.bias":                {5},
		}
		for name, want := range shapes {
			if info, ok := f.Info(name); !ok || info.DType != "F32" || !slices.Equal(info.Shape, want) {
				t.Errorf("Info(%s) = %+v, %v; want F32 %v", name, info, ok, want)
			}
		}
		// head.weight starts at data offset 151892, not a multiple of 8.
		bias, err := f.Float32s("head.bias")
		wantBias := []float32{0.00963341724127531, -0.027748646214604378, 0.023419303819537163,
			-0.04598842188715935, -0.0574914924800396}
		if err != nil || !slices.Equal(bias, wantBias) {
			t.Errorf("head.bias = %v, %v; want %v", bias, err, wantBias)
		}
		pos, err := f.Float32s("pos_embed")
		if err != nil || len(pos) != 17*48 || pos[0] != -0.01946624554693699 || pos[1] != 0.027650905773043633 ||
			pos[815] != 0.012990838848054409 {
			t.Errorf("pos_embed: err %v, len %d, or values differ", err, len(pos))
		}
	})
	t.Run("clip_text_io", func(t *testing.T) {
		f := mustOpen(t, "testdata/clip_text_small.io.safetensors")
		ids, err := f.Int64s("input_ids")
		want := []int64{100, 41, 85, 86, 41, 90, 67, 101, 101, 101, 101, 101, 101, 101, 101, 101}
		if err != nil || len(ids) != 80 || !slices.Equal(ids[:16], want) {
			t.Errorf("input_ids = %v, %v", ids, err)
		}
		emb, err := f.Float64s("text_embeds")
		if err != nil || len(emb) != 120 || emb[0] != -2.473791651230633 || emb[1] != -0.7874719440523161 ||
			emb[119] != -1.1812227578822345 {
			t.Errorf("text_embeds: err %v or values differ", err)
		}
		emb32, err := f.Float32s("text_embeds")
		if err != nil || emb32[0] != float32(-2.473791651230633) {
			t.Errorf("text_embeds as float32: %v, %v", emb32, err)
		}
		if info, _ := f.Info("last_hidden_state"); info.DType != "F64" || !slices.Equal(info.Shape, []int{5, 16, 32}) {
			t.Errorf("last_hidden_state info %+v", info)
		}
	})
	t.Run("peft", func(t *testing.T) {
		f := mustOpen(t, "testdata/peft_adapter_model.safetensors")
		if md := f.Metadata(); len(md) != 1 || md["format"] != "pt" {
			t.Errorf("Metadata = %v, want format=pt", md)
		}
		if n := len(f.Names()); n != 12 {
			t.Errorf("%d tensors, want 12", n)
		}
		b, err := f.Float64s("base_model.model.vision_model.encoder.layers.2.self_attn.v_proj.lora_B.weight")
		if err != nil || len(b) != 96 || b[0] != 0.4594423770904541 || b[95] != -0.24428565800189972 {
			t.Errorf("lora_B: err %v or values differ", err)
		}
	})
}
