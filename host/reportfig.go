package main

import (
	"bytes"
	"errors"
	"fmt"
	"image/color"
	"math"
	"sort"

	"gonum.org/v1/plot"
	"gonum.org/v1/plot/font"
	"gonum.org/v1/plot/palette"
	"gonum.org/v1/plot/palette/moreland"
	"gonum.org/v1/plot/plotter"
	"gonum.org/v1/plot/vg"
	"gonum.org/v1/plot/vg/draw"
	"gonum.org/v1/plot/vg/vgimg"
	"gonum.org/v1/plot/vg/vgsvg"

	"github.com/kadapt/kadapt/host/atomicfile"
)

const (
	figWidth    = 7.5 * vg.Inch
	figHeight   = 4.8 * vg.Inch
	colourBarW  = 0.8 * vg.Inch
	figFontSize = 10
)

// errNoFigure is drawFigure's error when there is nothing to place; the tables are
// still written.
var errNoFigure = errors.New("nothing to plot")

// drawFigure is the paper's Figure 1 at prefix.png and prefix.svg: mean accuracy
// against trainable parameters on a log axis, one point per row with its standard
// deviation over seeds as an error bar, coloured by PE with a colour bar beside it.
func drawFigure(rep *report, prefix string) error {
	pts := make(plotter.XYs, 0, len(rep.Rows))
	var errs plotter.YErrors
	var pes []float64
	var labels []string
	for _, r := range rep.Rows {
		acc := r.Overall(rep.Datasets)
		if math.IsNaN(acc) {
			continue // the row misses a dataset: no overall accuracy to place
		}
		pts = append(pts, plotter.XY{X: math.Max(float64(r.Params()), 1), Y: acc})
		sd := r.OverallStd(rep.Datasets)
		if math.IsNaN(sd) {
			sd = 0 // a single run: no bar
		}
		errs = append(errs, struct{ Low, High float64 }{sd, sd})
		pes = append(pes, PE(acc, r.Params()))
		labels = append(labels, r.Label)
	}
	if len(pts) == 0 {
		return fmt.Errorf("%w: no row has a run on every dataset (%v)", errNoFigure, rep.Datasets)
	}
	// Many rows or long labels (rows told apart by several settings) do not fit beside
	// their points: the points then carry their row numbers and a key lists the rows
	// under the plot.
	var key []string
	longest := 0
	for _, l := range labels {
		longest = max(longest, len([]rune(l)))
	}
	if len(labels) > 9 || longest > 40 {
		for i, l := range labels {
			key = append(key, fmt.Sprintf("%d  %s", i+1, l))
			labels[i] = fmt.Sprint(i + 1)
		}
	}
	keyLine := vg.Points(figFontSize + 2)
	keyHeight := vg.Length(0)
	if len(key) > 0 {
		keyHeight = keyLine*vg.Length(len(key)) + vg.Points(6)
	}
	height := figHeight + keyHeight
	cmap := peColourMap(pes)
	main, err := accuracyPlot(rep, pts, errs, pes, labels, cmap)
	if err != nil {
		return err
	}
	bar := colourBarPlot(cmap)
	placed := false
	render := func(c vg.CanvasWriterTo, ext string) error {
		dc := draw.New(c)
		// One white background: the plots fill only their own areas.
		dc.SetColor(color.White)
		dc.Fill(dc.Rectangle.Path())
		mainArea := dc
		mainArea.Max.X -= colourBarW
		mainArea.Min.Y += keyHeight
		style := main.X.Label.TextStyle
		style.Font.Size = font.Length(figFontSize - 1)
		style.XAlign, style.YAlign = draw.XLeft, draw.YTop
		for i, line := range key {
			dc.FillText(style, vg.Point{X: dc.Min.X + vg.Points(12), Y: dc.Min.Y + keyHeight - keyLine*vg.Length(i)}, line)
		}
		if !placed {
			lb, err := placeLabels(main, mainArea, pts, errs, labels)
			if err != nil {
				return err
			}
			main.Add(unboxed{lb})
			placed = true
		}
		// The bar spans the main plot's data area, top to bottom.
		data := main.DataCanvas(mainArea)
		barArea := dc
		barArea.Min.X = dc.Max.X - colourBarW
		barArea.Min.Y, barArea.Max.Y = data.Min.Y, data.Max.Y
		main.Draw(mainArea)
		bar.Draw(barArea)
		var buf bytes.Buffer
		if _, err := c.WriteTo(&buf); err != nil {
			return err
		}
		return atomicfile.Write(prefix+"."+ext, buf.Bytes())
	}
	if err := render(vgimg.PngCanvas{Canvas: vgimg.NewWith(vgimg.UseWH(figWidth, height), vgimg.UseDPI(150))}, "png"); err != nil {
		return err
	}
	return render(vgsvg.New(figWidth, height), "svg")
}

func accuracyPlot(rep *report, pts plotter.XYs, errs plotter.YErrors, pes []float64, labels []string, cmap palette.ColorMap) (*plot.Plot, error) {
	p := plot.New()
	p.Title.Text = "Accuracy vs trainable parameters"
	if len(rep.Datasets) == 1 {
		p.Title.Text += " on " + rep.Datasets[0]
	} else {
		p.Title.Text += fmt.Sprintf(" (mean over %d datasets)", len(rep.Datasets))
	}
	p.Title.Padding = vg.Points(8)
	p.Title.TextStyle.Font.Size = font.Length(figFontSize + 2)
	p.X.Label.Text = "trainable parameters (log scale)"
	p.Y.Label.Text = "accuracy (%), mean ± std over seeds"
	if len(rep.Datasets) > 1 {
		p.Y.Label.Text = "accuracy (%), mean over datasets ± std over seeds"
	}
	for _, a := range []*plot.Axis{&p.X, &p.Y} {
		a.Label.TextStyle.Font.Size = font.Length(figFontSize)
		a.Tick.Label.Font.Size = font.Length(figFontSize - 1)
	}
	p.X.Scale = plot.LogScale{}
	p.X.Tick.Marker = countTicks{}
	p.Y.Tick.Marker = linearTicks{}
	p.Add(plotter.NewGrid())

	eb := &plotter.YErrorBars{XYs: pts, YErrors: errs, LineStyle: plotter.DefaultLineStyle, CapWidth: vg.Points(6)}
	p.Add(eb)
	for i, pt := range pts {
		sc, err := plotter.NewScatter(plotter.XYs{pt})
		if err != nil {
			return nil, err
		}
		col, err := cmap.At(pes[i])
		if err != nil {
			return nil, err
		}
		sc.GlyphStyle = draw.GlyphStyle{Shape: draw.CircleGlyph{}, Radius: vg.Points(5), Color: col}
		ring, _ := plotter.NewScatter(plotter.XYs{pt})
		ring.GlyphStyle = draw.GlyphStyle{Shape: draw.RingGlyph{}, Radius: vg.Points(5)}
		p.Add(sc, ring)
	}
	// Room for the labels right of the rightmost point and for the error bars.
	xmin, xmax := math.Inf(1), math.Inf(-1)
	ymin, ymax := math.Inf(1), math.Inf(-1)
	for i, pt := range pts {
		xmin, xmax = math.Min(xmin, pt.X), math.Max(xmax, pt.X)
		ymin, ymax = math.Min(ymin, pt.Y-errs[i].Low), math.Max(ymax, pt.Y+errs[i].High)
	}
	p.X.Min, p.X.Max = xmin/3, xmax*40
	pad := math.Max((ymax-ymin)*0.08, 0.5)
	p.Y.Min, p.Y.Max = ymin-pad, ymax+pad
	return p, nil
}

// placeLabels puts each row's label beside its point: right of it unless that would
// cross another point or its error bar, then left; and below any label already placed
// that it would overlap (labels are placed top to bottom).
func placeLabels(p *plot.Plot, area draw.Canvas, pts plotter.XYs, errs plotter.YErrors, labels []string) (*plotter.Labels, error) {
	lb, err := plotter.NewLabels(plotter.XYLabels{XYs: pts, Labels: labels})
	if err != nil {
		return nil, err
	}
	const gap = 8 // points between a glyph's centre and its label
	data := p.DataCanvas(area)
	tx, ty := p.Transforms(&data)
	type box struct{ x0, x1, y0, y1 vg.Length }
	overlaps := func(a, b box) bool { return a.x0 < b.x1 && a.x1 > b.x0 && a.y0 < b.y1 && a.y1 > b.y0 }
	// Points with their error bars, each a box (the bar's cap is 6 points wide).
	var marks []box
	for i, pt := range pts {
		x, r := tx(pt.X), vg.Points(6)
		marks = append(marks, box{x - r, x + r, ty(pt.Y-errs[i].Low) - r, ty(pt.Y+errs[i].High) + r})
	}
	var placed []box
	overlapsAny := func(b box, others []box) bool {
		for _, o := range others {
			if overlaps(b, o) {
				return true
			}
		}
		return false
	}
	var b box
	order := make([]int, len(pts))
	for i := range order {
		order[i] = i
	}
	sort.Slice(order, func(a, b int) bool { return pts[order[a]].Y > pts[order[b]].Y })
	for _, i := range order {
		st := &lb.TextStyle[i]
		st.YAlign = draw.YCenter
		st.Font.Size = font.Length(figFontSize - 1)
		w, h := st.Width(labels[i]), st.Height(labels[i])
		x, y := tx(pts[i].X), ty(pts[i].Y)
		fits := func(b box) bool {
			if b.x0 < data.Min.X || b.x1 > data.Max.X {
				return false
			}
			for j, m := range marks {
				if j != i && overlaps(b, m) {
					return false
				}
			}
			return true
		}
		// Beside the point, right then left; then nudged half a line up or down.
		b, st.XAlign = box{x + vg.Points(gap), x + vg.Points(gap) + w, y - h/2, y + h/2}, draw.XLeft
	search:
		for _, dy := range []vg.Length{0, h / 2, -h / 2, h, -h} {
			for _, align := range []draw.XAlignment{draw.XLeft, draw.XRight} {
				c := box{x + vg.Points(gap), x + vg.Points(gap) + w, y + dy - h/2, y + dy + h/2}
				if align == draw.XRight {
					c.x0, c.x1 = x-vg.Points(gap)-w, x-vg.Points(gap)
				}
				if fits(c) && !overlapsAny(c, placed) {
					b, st.XAlign = c, align
					break search
				}
			}
		}
		for moved := true; moved; {
			moved = false
			for _, o := range placed {
				if overlaps(b, o) {
					shift := b.y1 - o.y0 + vg.Points(1)
					b.y0, b.y1 = b.y0-shift, b.y1-shift
					moved = true
				}
			}
		}
		placed = append(placed, b)
		cy := (b.y0 + b.y1) / 2
		lb.XYs[i].Y = p.Y.Min + float64((cy-data.Min.Y)/(data.Max.Y-data.Min.Y))*(p.Y.Max-p.Y.Min)
	}
	// One offset for all labels: left-aligned ones move right, right-aligned ones left.
	lb.Offset = vg.Point{}
	for i := range lb.XYs {
		dx := vg.Points(gap)
		if lb.TextStyle[i].XAlign == draw.XRight {
			dx = -dx
		}
		// Shift in data space along the log axis: x·10^(dx/pixels-per-decade).
		x0, x1 := tx(lb.XYs[i].X), tx(lb.XYs[i].X*10)
		lb.XYs[i].X *= math.Pow(10, float64(dx/(x1-x0)))
	}
	return lb, nil
}

// unboxed draws labels without reporting their glyph boxes: the plot would shrink
// its data area until every label fitted inside it, and long labels squeeze it flat.
// placeLabels keeps them inside instead.
type unboxed struct{ labels *plotter.Labels }

func (u unboxed) Plot(c draw.Canvas, p *plot.Plot) { u.labels.Plot(c, p) }

// peColourMap is a sequential, perceptually ordered map (Moreland's extended
// black-body) over the PE range, trimmed so neither end is near black or white.
func peColourMap(pes []float64) palette.ColorMap {
	lo, hi := math.Inf(1), math.Inf(-1)
	for _, v := range pes {
		lo, hi = math.Min(lo, v), math.Max(hi, v)
	}
	if hi-lo < 1e-9 {
		lo, hi = lo-0.5, hi+0.5
	}
	span := hi - lo
	cmap := moreland.ExtendedBlackBody()
	cmap.SetMin(lo - 0.25*span)
	cmap.SetMax(hi + 0.15*span)
	return clampedMap{cmap, lo, hi}
}

// clampedMap shows only [lo, hi] of a wider map: the colour bar spans the data.
type clampedMap struct {
	palette.ColorMap
	lo, hi float64
}

func (c clampedMap) Min() float64 { return c.lo }
func (c clampedMap) Max() float64 { return c.hi }

func colourBarPlot(cmap palette.ColorMap) *plot.Plot {
	p := plot.New()
	p.HideX()
	p.Y.Label.Text = "PE"
	p.Y.Label.TextStyle.Font.Size = font.Length(figFontSize)
	p.Y.Tick.Label.Font.Size = font.Length(figFontSize - 1)
	p.Y.Tick.Marker = linearTicks{}
	p.Add(&plotter.ColorBar{ColorMap: cmap, Vertical: true})
	p.Y.Min, p.Y.Max = cmap.Min(), cmap.Max()
	p.X.Padding = vg.Points(16)
	p.Y.Padding = 0
	return p
}

// countTicks marks powers of ten as 100, 1k, 10k, 1M (one style for every decade)
// and unlabelled minor ticks between them.
type countTicks struct{}

func (countTicks) Ticks(min, max float64) []plot.Tick {
	var ticks []plot.Tick
	for e := math.Floor(math.Log10(min)); e <= math.Ceil(math.Log10(max)); e++ {
		base := math.Pow(10, e)
		for m := 1.0; m < 10; m++ {
			v := m * base
			if v < min || v > max {
				continue
			}
			t := plot.Tick{Value: v}
			if m == 1 {
				t.Label = countLabel(v)
			}
			ticks = append(ticks, t)
		}
	}
	return ticks
}

func countLabel(v float64) string {
	for _, u := range []struct {
		scale  float64
		suffix string
	}{{1e9, "G"}, {1e6, "M"}, {1e3, "k"}} {
		if v >= u.scale {
			return fmt.Sprintf("%g%s", v/u.scale, u.suffix)
		}
	}
	return fmt.Sprintf("%g", v)
}

// linearTicks places five to ten labelled ticks at 1, 2 or 5 × 10ᵏ, every label with
// the same number of decimals.
type linearTicks struct{}

func (linearTicks) Ticks(lo, hi float64) []plot.Tick {
	span := hi - lo
	if span <= 0 {
		return []plot.Tick{{Value: lo, Label: fmt.Sprintf("%g", lo)}}
	}
	step := math.Pow(10, math.Floor(math.Log10(span)))
	for _, m := range []float64{0.1, 0.2, 0.5, 1, 2, 5} {
		if span/(step*m) <= 8 {
			step *= m
			break
		}
	}
	decimals := max(-int(math.Floor(math.Log10(step))), 0)
	var ticks []plot.Tick
	for v := math.Ceil(lo/step) * step; v <= hi+step*1e-9; v += step {
		ticks = append(ticks, plot.Tick{Value: v, Label: fmt.Sprintf("%.*f", decimals, v)})
		for k := 1; k < 5; k++ {
			if w := v + float64(k)*step/5; w <= hi {
				ticks = append(ticks, plot.Tick{Value: w})
			}
		}
	}
	return ticks
}
