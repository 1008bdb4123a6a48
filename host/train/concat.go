package train

// Concat joins two splits into one (the paper's final run trains on the few-shot
// training and validation images together).
func Concat(a, b Data) Data { return &concat{a, b} }

type concat struct{ a, b Data }

func (c *concat) Len() int     { return c.a.Len() + c.b.Len() }
func (c *concat) Shape() []int { return c.a.Shape() }

// Fetch asks each part once for all of its examples, so a part that decodes in
// parallel keeps doing so.
func (c *concat) Fetch(idx []int, x []float32, labels [][]int) error {
	per := 1
	for _, s := range c.a.Shape() {
		per *= s
	}
	na := c.a.Len()
	for _, part := range []struct {
		d      Data
		lo, hi int
	}{{c.a, 0, na}, {c.b, na, c.Len()}} {
		var pos, local []int
		for i, j := range idx {
			if j >= part.lo && j < part.hi {
				pos, local = append(pos, i), append(local, j-part.lo)
			}
		}
		if len(pos) == 0 {
			continue
		}
		buf := make([]float32, len(pos)*per)
		lab := make([][]int, len(pos))
		if err := part.d.Fetch(local, buf, lab); err != nil {
			return err
		}
		for k, i := range pos {
			copy(x[i*per:(i+1)*per], buf[k*per:(k+1)*per])
			labels[i] = lab[k]
		}
	}
	return nil
}
