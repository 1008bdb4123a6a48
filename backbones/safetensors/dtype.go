package safetensors

import (
	"encoding/binary"
	"math"
)

// dtype describes one element type of the format. Sizes are in bits because the
// format has sub-byte float types (F4, F6_*) whose tensors must still end on a byte
// boundary.
type dtype struct {
	name string
	bits uint64
}

// dtypes lists every element type the reference implementation (huggingface/safetensors)
// accepts, so that any valid file opens even if only the float types convert.
var dtypes = map[string]dtype{
	"BOOL":    {"BOOL", 8},
	"F4":      {"F4", 4},
	"F6_E2M3": {"F6_E2M3", 6},
	"F6_E3M2": {"F6_E3M2", 6},
	"U8":      {"U8", 8},
	"I8":      {"I8", 8},
	"F8_E5M2": {"F8_E5M2", 8},
	"F8_E4M3": {"F8_E4M3", 8},
	"F8_E8M0": {"F8_E8M0", 8},
	"I16":     {"I16", 16},
	"U16":     {"U16", 16},
	"F16":     {"F16", 16},
	"BF16":    {"BF16", 16},
	"I32":     {"I32", 32},
	"U32":     {"U32", 32},
	"F32":     {"F32", 32},
	"C64":     {"C64", 64},
	"F64":     {"F64", 64},
	"I64":     {"I64", 64},
	"U64":     {"U64", 64},
}

// float16ToFloat32 widens an IEEE 754 binary16 value exactly, including subnormals,
// infinities and NaN payloads.
func float16ToFloat32(h uint16) float32 {
	sign := uint32(h>>15) << 31
	exp := uint32(h>>10) & 0x1f
	frac := uint32(h) & 0x3ff
	switch {
	case exp == 0x1f: // Inf or NaN: keep the payload in the top mantissa bits.
		return math.Float32frombits(sign | 0x7f800000 | frac<<13)
	case exp != 0: // normal: rebias the exponent from 15 to 127.
		return math.Float32frombits(sign | (exp+112)<<23 | frac<<13)
	case frac == 0:
		return math.Float32frombits(sign)
	default: // subnormal half is a normal float32: shift the leading one into place.
		e := uint32(113)
		for frac&0x400 == 0 {
			frac <<= 1
			e--
		}
		return math.Float32frombits(sign | e<<23 | (frac&0x3ff)<<13)
	}
}

// bfloat16ToFloat32 widens a bfloat16, which is the top half of a float32.
func bfloat16ToFloat32(b uint16) float32 {
	return math.Float32frombits(uint32(b) << 16)
}

// decodeFloat32 converts raw little-endian elements of a float dtype into dst. The
// caller has checked len(raw) == len(dst)·size. Decoding through encoding/binary
// rather than reinterpreting memory keeps it correct for the unaligned offsets
// real files contain.
func decodeFloat32(dst []float32, raw []byte, dt string) bool {
	le := binary.LittleEndian
	switch dt {
	case "F32":
		for i := range dst {
			dst[i] = math.Float32frombits(le.Uint32(raw[4*i:]))
		}
	case "F16":
		for i := range dst {
			dst[i] = float16ToFloat32(le.Uint16(raw[2*i:]))
		}
	case "BF16":
		for i := range dst {
			dst[i] = bfloat16ToFloat32(le.Uint16(raw[2*i:]))
		}
	case "F64":
		for i := range dst {
			dst[i] = float32(math.Float64frombits(le.Uint64(raw[8*i:])))
		}
	default:
		return false
	}
	return true
}

// decodeFloat64 is decodeFloat32 for float64 destinations; every supported type
// widens exactly.
func decodeFloat64(dst []float64, raw []byte, dt string) bool {
	le := binary.LittleEndian
	switch dt {
	case "F64":
		for i := range dst {
			dst[i] = math.Float64frombits(le.Uint64(raw[8*i:]))
		}
	case "F32":
		for i := range dst {
			dst[i] = float64(math.Float32frombits(le.Uint32(raw[4*i:])))
		}
	case "F16":
		for i := range dst {
			dst[i] = float64(float16ToFloat32(le.Uint16(raw[2*i:])))
		}
	case "BF16":
		for i := range dst {
			dst[i] = float64(bfloat16ToFloat32(le.Uint16(raw[2*i:])))
		}
	default:
		return false
	}
	return true
}

// decodeInt64 converts raw integer or boolean elements into dst. It reports the
// index of the first U64 value that does not fit an int64 (or -1), and false for
// dtypes that are not integral.
func decodeInt64(dst []int64, raw []byte, dt string) (bad int, ok bool) {
	le := binary.LittleEndian
	switch dt {
	case "I64":
		for i := range dst {
			dst[i] = int64(le.Uint64(raw[8*i:]))
		}
	case "U64":
		for i := range dst {
			v := le.Uint64(raw[8*i:])
			if v > math.MaxInt64 {
				return i, true
			}
			dst[i] = int64(v)
		}
	case "I32":
		for i := range dst {
			dst[i] = int64(int32(le.Uint32(raw[4*i:])))
		}
	case "U32":
		for i := range dst {
			dst[i] = int64(le.Uint32(raw[4*i:]))
		}
	case "I16":
		for i := range dst {
			dst[i] = int64(int16(le.Uint16(raw[2*i:])))
		}
	case "U16":
		for i := range dst {
			dst[i] = int64(le.Uint16(raw[2*i:]))
		}
	case "I8":
		for i := range dst {
			dst[i] = int64(int8(raw[i]))
		}
	case "U8", "BOOL":
		for i := range dst {
			dst[i] = int64(raw[i])
		}
	default:
		return -1, false
	}
	return -1, true
}
