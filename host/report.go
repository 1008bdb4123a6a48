package main

import (
	"encoding/csv"
	"encoding/json"
	"fmt"
	"image/color"
	"io"
	"math"
	"os"
	"path/filepath"
	"sort"
	"strings"

	"gonum.org/v1/plot"
	"gonum.org/v1/plot/plotter"
	"gonum.org/v1/plot/vg"
	"gonum.org/v1/plot/vg/draw"
)

func init() {
	register("report", "the paper's table (Markdown + CSV) and accuracy-vs-parameters figure (PNG + SVG) from run directories", cmdReport)
}

// methodRow aggregates one method's runs.
type methodRow struct {
	Plugin    string
	Params    int64                // trainable parameters, head included, averaged over datasets
	ByDataset map[string][]float64 // accuracies over seeds
	Selection string
}

func (r *methodRow) mean(ds string) float64 { return meanOf(r.ByDataset[ds]) }

// overall is the mean over datasets of the mean over seeds, as the paper averages.
func (r *methodRow) overall(datasets []string) float64 {
	var s float64
	n := 0
	for _, d := range datasets {
		if len(r.ByDataset[d]) > 0 {
			s += r.mean(d)
			n++
		}
	}
	if n == 0 {
		return math.NaN()
	}
	return s / float64(n)
}

func meanOf(v []float64) float64 {
	if len(v) == 0 {
		return math.NaN()
	}
	var s float64
	for _, x := range v {
		s += x
	}
	return s / float64(len(v))
}

func stdOf(v []float64) float64 {
	if len(v) < 2 {
		return 0
	}
	m := meanOf(v)
	var s float64
	for _, x := range v {
		s += (x - m) * (x - m)
	}
	return math.Sqrt(s / float64(len(v)-1))
}

func cmdReport(args []string) error {
	fs := newFlags("report", "report RUNS_DIR [--out PREFIX]")
	out := fs.String("out", "", "output prefix for report.md, report.csv, report.png, report.svg (default RUNS_DIR/report)")
	if err := fs.Parse(args); err != nil {
		return err
	}
	if fs.NArg() != 1 {
		return usageErr("want one RUNS_DIR")
	}
	root := fs.Arg(0)
	if *out == "" {
		*out = filepath.Join(root, "report")
	}
	rows, datasets, err := collectRuns(root)
	if err != nil {
		return err
	}
	md := markdownTable(rows, datasets)
	fmt.Print(md)
	if err := os.WriteFile(*out+".md", []byte(md), 0o644); err != nil {
		return err
	}
	f, err := os.Create(*out + ".csv")
	if err != nil {
		return err
	}
	if err := writeCSV(f, rows, datasets); err != nil {
		f.Close()
		return err
	}
	if err := f.Close(); err != nil {
		return err
	}
	for _, ext := range []string{"png", "svg"} {
		if err := drawFigure(rows, datasets, *out+"."+ext); err != nil {
			return err
		}
	}
	fmt.Printf("\nwrote %s.{md,csv,png,svg}\n", *out)
	return nil
}

// collectRuns reads every final.json under root.
func collectRuns(root string) ([]*methodRow, []string, error) {
	byPlugin := map[string]*methodRow{}
	params := map[string]map[string]int64{}
	dsSet := map[string]bool{}
	err := filepath.WalkDir(root, func(path string, d os.DirEntry, err error) error {
		if err != nil || d.IsDir() || d.Name() != "final.json" {
			return err
		}
		raw, err := os.ReadFile(path)
		if err != nil {
			return err
		}
		var s Summary
		if err := json.Unmarshal(raw, &s); err != nil {
			return fmt.Errorf("%s: %v", path, err)
		}
		r := byPlugin[s.Plugin]
		if r == nil {
			r = &methodRow{Plugin: s.Plugin, ByDataset: map[string][]float64{}, Selection: s.Selection}
			byPlugin[s.Plugin] = r
			params[s.Plugin] = map[string]int64{}
		}
		r.ByDataset[s.Dataset] = append(r.ByDataset[s.Dataset], s.Accuracy)
		params[s.Plugin][s.Dataset] = s.TrainableParams
		dsSet[s.Dataset] = true
		return nil
	})
	if err != nil {
		return nil, nil, err
	}
	if len(byPlugin) == 0 {
		return nil, nil, fmt.Errorf("%s: no finished runs (final.json) found", root)
	}
	var datasets []string
	for d := range dsSet {
		datasets = append(datasets, d)
	}
	sort.Strings(datasets)
	var rows []*methodRow
	for name, r := range byPlugin {
		var total int64
		for _, n := range params[name] {
			total += n
		}
		r.Params = total / int64(len(params[name]))
		rows = append(rows, r)
	}
	order := map[string]int{}
	for i, m := range allMethods {
		order[m] = i + 1
	}
	sort.Slice(rows, func(i, j int) bool {
		oi, oj := order[rows[i].Plugin], order[rows[j].Plugin]
		if oi == 0 {
			oi = 1000
		}
		if oj == 0 {
			oj = 1000
		}
		if oi != oj {
			return oi < oj
		}
		return rows[i].Plugin < rows[j].Plugin
	})
	return rows, datasets, nil
}

func markdownTable(rows []*methodRow, datasets []string) string {
	var b strings.Builder
	b.WriteString("| method |")
	for _, d := range datasets {
		fmt.Fprintf(&b, " %s |", d)
	}
	b.WriteString(" mean | trainable params | PE |\n|---|")
	for range datasets {
		b.WriteString("---|")
	}
	b.WriteString("---|---|---|\n")
	for _, r := range rows {
		fmt.Fprintf(&b, "| %s |", r.Plugin)
		for _, d := range datasets {
			v := r.ByDataset[d]
			if len(v) == 0 {
				b.WriteString(" – |")
				continue
			}
			fmt.Fprintf(&b, " %.2f ± %.2f (n=%d) |", meanOf(v), stdOf(v), len(v))
		}
		acc := r.overall(datasets)
		fmt.Fprintf(&b, " %.2f | %s | %.2f |\n", acc, groupDigits(r.Params), PE(acc, r.Params))
	}
	if len(rows) > 0 {
		fmt.Fprintf(&b, "\nAccuracy in %%, mean ± std over seeds; model selection: %s. PE = acc·exp(−log10(M/10⁸+1)).\n", rows[0].Selection)
	}
	return b.String()
}

func groupDigits(n int64) string {
	s := fmt.Sprint(n)
	var out []byte
	for i := range s {
		if i > 0 && (len(s)-i)%3 == 0 {
			out = append(out, ',')
		}
		out = append(out, s[i])
	}
	return string(out)
}

func writeCSV(w io.Writer, rows []*methodRow, datasets []string) error {
	cw := csv.NewWriter(w)
	header := append([]string{"method"}, datasets...)
	header = append(header, "mean", "trainable_params", "pe")
	if err := cw.Write(header); err != nil {
		return err
	}
	for _, r := range rows {
		rec := []string{r.Plugin}
		for _, d := range datasets {
			rec = append(rec, fmt.Sprintf("%.4f", r.mean(d)))
		}
		acc := r.overall(datasets)
		rec = append(rec, fmt.Sprintf("%.4f", acc), fmt.Sprint(r.Params), fmt.Sprintf("%.4f", PE(acc, r.Params)))
		if err := cw.Write(rec); err != nil {
			return err
		}
	}
	cw.Flush()
	return cw.Error()
}

// drawFigure is the paper's Figure 1: accuracy against trainable parameters on a log
// axis, each method a labelled point coloured by its PE score.
func drawFigure(rows []*methodRow, datasets []string, path string) error {
	p := plot.New()
	p.Title.Text = "Accuracy vs trainable parameters (colour: PE)"
	p.X.Label.Text = "trainable parameters (log scale)"
	p.Y.Label.Text = "mean accuracy (%)"
	p.X.Scale = plot.LogScale{}
	p.X.Tick.Marker = plot.LogTicks{Prec: -1}
	pts := make(plotter.XYs, 0, len(rows))
	var labels []string
	var pes []float64
	for _, r := range rows {
		acc := r.overall(datasets)
		pts = append(pts, plotter.XY{X: math.Max(float64(r.Params), 1), Y: acc})
		pe := PE(acc, r.Params)
		labels = append(labels, fmt.Sprintf("%s (PE %.1f)", r.Plugin, pe))
		pes = append(pes, pe)
	}
	lo, hi := math.Inf(1), math.Inf(-1)
	for _, v := range pes {
		lo, hi = math.Min(lo, v), math.Max(hi, v)
	}
	for i, pt := range pts {
		sc, err := plotter.NewScatter(plotter.XYs{pt})
		if err != nil {
			return err
		}
		sc.GlyphStyle.Shape = draw.CircleGlyph{}
		sc.GlyphStyle.Radius = vg.Points(7)
		sc.GlyphStyle.Color = peColour(pes[i], lo, hi)
		p.Add(sc)
	}
	lb, err := plotter.NewLabels(plotter.XYLabels{XYs: pts, Labels: labels})
	if err != nil {
		return err
	}
	for i := range lb.TextStyle {
		lb.TextStyle[i].XAlign = draw.XLeft
		lb.Offset = vg.Point{X: vg.Points(9), Y: vg.Points(-3)}
	}
	p.Add(lb)
	// Room for the labels right of the last point and around the extremes.
	xmin, xmax := math.Inf(1), math.Inf(-1)
	ymin, ymax := math.Inf(1), math.Inf(-1)
	for _, pt := range pts {
		xmin, xmax = math.Min(xmin, pt.X), math.Max(xmax, pt.X)
		ymin, ymax = math.Min(ymin, pt.Y), math.Max(ymax, pt.Y)
	}
	p.X.Min, p.X.Max = xmin/3, xmax*30
	pad := math.Max((ymax-ymin)*0.15, 1)
	p.Y.Min, p.Y.Max = ymin-pad, ymax+pad
	p.Add(plotter.NewGrid())
	return p.Save(7*vg.Inch, 4.5*vg.Inch, path)
}

// peColour maps PE onto a blue (low) to red (high) ramp.
func peColour(v, lo, hi float64) color.Color {
	t := 0.5
	if hi > lo {
		t = (v - lo) / (hi - lo)
	}
	return color.RGBA{R: uint8(40 + 200*t), G: uint8(70 + 40*(1-math.Abs(2*t-1))), B: uint8(40 + 200*(1-t)), A: 255}
}
