package main

import (
	"fmt"
	"io"
	"math"
	"os"
	"strings"
	"time"

	"github.com/hashicorp/go-hclog"
	"github.com/mattn/go-isatty"

	"github.com/kadapt/kadapt/host/train"
)

// progress draws a live bar on a terminal and plain log lines otherwise (CI logs,
// pipes), so long runs always show they are alive.
type progress struct {
	w        io.Writer
	tty      bool
	log      hclog.Logger
	start    time.Time
	lastDraw time.Time
	epochs   int
}

func newProgress(log hclog.Logger, quiet bool) *progress {
	p := &progress{w: os.Stderr, log: log, start: time.Now()}
	if quiet {
		p.w = io.Discard
	}
	if f, ok := p.w.(*os.File); ok && isatty.IsTerminal(f.Fd()) {
		p.tty = true
	}
	return p
}

func (p *progress) Step(epoch, epochs, batch, batches int, loss, acc, ips float64) {
	p.epochs = epochs
	if !p.tty || time.Since(p.lastDraw) < 100*time.Millisecond && batch != batches {
		return
	}
	p.lastDraw = time.Now()
	done := float64((epoch-1)*batches+batch) / float64(epochs*batches)
	elapsed := time.Since(p.start)
	eta := time.Duration(float64(elapsed) * (1/done - 1)).Round(time.Second)
	const width = 24
	filled := int(done * width)
	bar := strings.Repeat("█", filled) + strings.Repeat("░", width-filled)
	accText := ""
	if !math.IsNaN(acc) {
		accText = fmt.Sprintf(" acc %.3f", acc)
	}
	fmt.Fprintf(p.w, "\r\033[K%s epoch %d/%d batch %d/%d loss %.4f%s %.0f img/s ETA %s", bar, epoch, epochs, batch, batches, loss, accText, ips, eta)
}

func (p *progress) Epoch(m train.EpochMetrics) {
	if p.tty {
		fmt.Fprint(p.w, "\r\033[K")
	}
	score := func(v float64) string {
		if math.IsNaN(v) {
			return "-"
		}
		return fmt.Sprintf("%.4f", v)
	}
	line := fmt.Sprintf("epoch %d/%d  loss %.4f  val %s (loss %s)  test %s  lr %.3g  %.0f img/s  %.1fs",
		m.Epoch, p.epochs, m.TrainLoss, score(m.Val), score(m.ValLoss), score(m.Test), m.LR, m.ImagesPS, m.Seconds)
	fmt.Fprintln(p.w, line)
}
