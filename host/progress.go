package main

import (
	"fmt"
	"io"
	"math"

	"github.com/kadapt/kadapt/host/progress"
	"github.com/kadapt/kadapt/host/train"
)

// display is where a command shows its long stretches: the process's display on
// stderr (a bar on a terminal, periodic lines elsewhere), or nothing when quiet.
func display(quiet bool) *progress.Display {
	if quiet {
		return progress.New(io.Discard, progress.Options{})
	}
	return progress.Stderr()
}

// runProgress shows a training run: one task for the steps of every epoch, one for
// each evaluation pass, and the epoch lines above them (train.PassProgress).
type runProgress struct {
	d        *progress.Display
	steps    *progress.Task
	pass     *progress.Task
	passName string
	epochs   int
}

func newProgress(quiet bool) *runProgress {
	return &runProgress{d: display(quiet)}
}

func (p *runProgress) Step(epoch, epochs, batch, batches int, loss, acc, ips float64) {
	p.epochs = epochs
	total := int64(epochs) * int64(batches)
	if p.steps == nil {
		p.steps = p.d.Start("train", total)
	}
	detail := fmt.Sprintf("epoch %d/%d batch %d/%d loss %.4f", epoch, epochs, batch, batches, loss)
	if !math.IsNaN(acc) {
		detail += fmt.Sprintf(" acc %.3f", acc)
	}
	detail += fmt.Sprintf(" %.0f img/s", ips)
	p.steps.Update(int64(epoch-1)*int64(batches)+int64(batch), total, detail)
}

func (p *runProgress) Epoch(m train.EpochMetrics) {
	score := func(v float64) string {
		if math.IsNaN(v) {
			return "-"
		}
		return fmt.Sprintf("%.4f", v)
	}
	p.d.Println(fmt.Sprintf("epoch %d/%d  loss %.4f  val %s (loss %s)  test %s  lr %.3g  %.0f img/s  %.1fs",
		m.Epoch, p.epochs, m.TrainLoss, score(m.Val), score(m.ValLoss), score(m.Test), m.LR, m.ImagesPS, m.Seconds))
}

func (p *runProgress) Pass(split string, done, total int) {
	if p.pass != nil && p.passName != split {
		p.pass.End()
		p.pass = nil
	}
	if p.pass == nil {
		p.pass, p.passName = p.d.Start(split, int64(total)), split
	}
	p.pass.Update(int64(done), int64(total), "")
	if done >= total {
		p.pass.End()
		p.pass = nil
	}
}

// Close ends what is still shown; a run that failed half way leaves no bar behind.
func (p *runProgress) Close() {
	if p.pass != nil {
		p.pass.End()
		p.pass = nil
	}
	if p.steps != nil {
		p.steps.End()
		p.steps = nil
	}
}

// downloadProgress shows each file `data fetch` downloads as a task counted in bytes
// (datasets.Progress).
type downloadProgress struct {
	d    *progress.Display
	task *progress.Task
	file string
}

func (p *downloadProgress) Start(file string, done, total int64) {
	if p.task != nil && p.file != file {
		p.End(nil)
	}
	if p.task == nil { // a resumed file keeps its task, and its rate
		p.task, p.file = p.d.StartBytes(file, max(total, 0)), file
	}
	p.task.Update(done, total, "")
}

func (p *downloadProgress) Advance(done int64) {
	if p.task != nil {
		p.task.Update(done, 0, "")
	}
}

func (p *downloadProgress) End(error) {
	if p.task != nil {
		p.task.End()
		p.task = nil
	}
}
