package datasets

import "math/bits"

// Mersenne Twister MT19937 parameters.
const (
	mtN         = 624
	mtM         = 397
	mtMatrixA   = 0x9908b0df
	mtUpperMask = 0x80000000
	mtLowerMask = 0x7fffffff
)

// PyRandom reproduces CPython's random.Random: the same MT19937 generator, seeded
// the way random.seed(int) seeds it, with random(), getrandbits, _randbelow and
// shuffle giving the same numbers. The few-shot protocol is defined by
// `random.Random(seed).shuffle(images)`, so matching CPython bit for bit is what
// makes our 5-shot subsets the paper's.
type PyRandom struct {
	mt  [mtN]uint32
	mti int
}

// NewPyRandom returns a generator in the state of CPython's random.Random(seed).
func NewPyRandom(seed int64) *PyRandom {
	r := &PyRandom{}
	r.Seed(seed)
	return r
}

// Seed resets r to the state of random.seed(seed): CPython feeds |seed|, split into
// 32-bit words least significant first (one word for 0), to init_by_array.
func (r *PyRandom) Seed(seed int64) {
	mag := uint64(seed)
	if seed < 0 {
		mag = -mag // two's complement negation is exact for every int64, MinInt64 included
	}
	key := []uint32{uint32(mag)}
	if hi := uint32(mag >> 32); hi != 0 {
		key = append(key, hi)
	}
	r.initByArray(key)
}

func (r *PyRandom) initGenrand(s uint32) {
	r.mt[0] = s
	for i := 1; i < mtN; i++ {
		r.mt[i] = 1812433253*(r.mt[i-1]^(r.mt[i-1]>>30)) + uint32(i)
	}
	r.mti = mtN
}

func (r *PyRandom) initByArray(key []uint32) {
	r.initGenrand(19650218)
	i, j := 1, 0
	for k := max(mtN, len(key)); k > 0; k-- {
		r.mt[i] = (r.mt[i] ^ ((r.mt[i-1] ^ (r.mt[i-1] >> 30)) * 1664525)) + key[j] + uint32(j)
		i++
		j++
		if i >= mtN {
			r.mt[0] = r.mt[mtN-1]
			i = 1
		}
		if j >= len(key) {
			j = 0
		}
	}
	for k := mtN - 1; k > 0; k-- {
		r.mt[i] = (r.mt[i] ^ ((r.mt[i-1] ^ (r.mt[i-1] >> 30)) * 1566083941)) - uint32(i)
		i++
		if i >= mtN {
			r.mt[0] = r.mt[mtN-1]
			i = 1
		}
	}
	r.mt[0] = 0x80000000 // MSB set: the initial state is never all zero
}

// Uint32 returns the next 32-bit output (CPython's genrand_uint32).
func (r *PyRandom) Uint32() uint32 {
	if r.mti >= mtN {
		mag01 := [2]uint32{0, mtMatrixA}
		var kk int
		for kk = 0; kk < mtN-mtM; kk++ {
			y := (r.mt[kk] & mtUpperMask) | (r.mt[kk+1] & mtLowerMask)
			r.mt[kk] = r.mt[kk+mtM] ^ (y >> 1) ^ mag01[y&1]
		}
		for ; kk < mtN-1; kk++ {
			y := (r.mt[kk] & mtUpperMask) | (r.mt[kk+1] & mtLowerMask)
			r.mt[kk] = r.mt[kk+(mtM-mtN)] ^ (y >> 1) ^ mag01[y&1]
		}
		y := (r.mt[mtN-1] & mtUpperMask) | (r.mt[0] & mtLowerMask)
		r.mt[mtN-1] = r.mt[mtM-1] ^ (y >> 1) ^ mag01[y&1]
		r.mti = 0
	}
	y := r.mt[r.mti]
	r.mti++
	y ^= y >> 11
	y ^= (y << 7) & 0x9d2c5680
	y ^= (y << 15) & 0xefc60000
	y ^= y >> 18
	return y
}

// Float64 returns random.random(): 53 random bits from two outputs, in [0, 1).
func (r *PyRandom) Float64() float64 {
	a := r.Uint32() >> 5
	b := r.Uint32() >> 6
	// a·2^26 is exact, so no rounding step can differ from CPython's.
	return (float64(a)*67108864.0 + float64(b)) * (1.0 / 9007199254740992.0)
}

// GetRandBits returns random.getrandbits(k) for 0 ≤ k ≤ 64: whole outputs fill the
// low 32-bit words, and the last word keeps only the top bits of its output.
func (r *PyRandom) GetRandBits(k int) uint64 {
	if k < 0 || k > 64 {
		panic("datasets: PyRandom.GetRandBits: k out of range [0, 64]")
	}
	if k == 0 {
		return 0
	}
	if k <= 32 {
		return uint64(r.Uint32() >> (32 - k))
	}
	lo := uint64(r.Uint32())
	hi := uint64(r.Uint32() >> (64 - k))
	return lo | hi<<32
}

// Intn returns random._randbelow(n) for n ≥ 1: getrandbits(n.bit_length()) drawn
// until it falls below n.
func (r *PyRandom) Intn(n int) int {
	if n <= 0 {
		panic("datasets: PyRandom.Intn: n must be positive")
	}
	k := bits.Len64(uint64(n))
	v := r.GetRandBits(k)
	for v >= uint64(n) {
		v = r.GetRandBits(k)
	}
	return int(v)
}

// Shuffle permutes n elements as random.shuffle does:
// `for i in reversed(range(1, n)): j = _randbelow(i+1); x[i], x[j] = x[j], x[i]`.
func (r *PyRandom) Shuffle(n int, swap func(i, j int)) {
	for i := n - 1; i >= 1; i-- {
		swap(i, r.Intn(i+1))
	}
}
