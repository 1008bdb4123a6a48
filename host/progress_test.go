package main

import (
	"bytes"
	"math"
	"strings"
	"testing"
	"time"

	"github.com/kadapt/kadapt/host/progress"
	"github.com/kadapt/kadapt/host/train"
)

// TestRunProgressOffTerminal: a long epoch off a terminal (a full-shot epoch in a CI
// log) prints a line with the step counts every interval, not a bar; the epoch line
// and the final test pass follow on the same display, and a finished pass says so.
func TestRunProgressOffTerminal(t *testing.T) {
	now := time.Unix(1e9, 0)
	plain := progress.Plain
	var out bytes.Buffer
	p := &runProgress{d: progress.New(&out, progress.Options{Mode: &plain, Interval: 10 * time.Second,
		Now: func() time.Time { return now }})}
	for b := 1; b <= 20; b++ { // 20 steps of 2 s
		now = now.Add(2 * time.Second)
		p.Step(1, 1, b, 20, 0.5, 0.25, 32)
	}
	p.Epoch(train.EpochMetrics{Epoch: 1, TrainLoss: 0.5, Val: 0.75, ValLoss: 0.6, Test: math.NaN(), LR: 0.01, ImagesPS: 32, Seconds: 40})
	for done := 250; done <= 1000; done += 250 { // a test pass of 4 chunks of 6 s
		now = now.Add(6 * time.Second)
		p.Pass("test", done, 1000)
	}
	p.Close()
	// Each task starts at its first report: the train task after the first step (2 s
	// in), the test task after its first chunk (46 s in). Rates count from there.
	want := []string{
		"train: 6/20 (30%)  epoch 1/1 batch 6/20 loss 0.5000 acc 0.250 32 img/s  10s elapsed, ETA 28s",
		"train: 11/20 (55%)  epoch 1/1 batch 11/20 loss 0.5000 acc 0.250 32 img/s  20s elapsed, ETA 18s",
		"train: 16/20 (80%)  epoch 1/1 batch 16/20 loss 0.5000 acc 0.250 32 img/s  30s elapsed, ETA 8s",
		"epoch 1/1  loss 0.5000  val 0.7500 (loss 0.6000)  test -  lr 0.01  32 img/s  40.0s",
		"test: 750/1000 (75%)  12s elapsed, ETA 6s",
		"test: 1000/1000 (100%) in 18s",
		"train: 20/20 (100%) in 1:02  epoch 1/1 batch 20/20 loss 0.5000 acc 0.250 32 img/s",
	}
	if got := strings.TrimSuffix(out.String(), "\n"); got != strings.Join(want, "\n") {
		t.Fatalf("lines:\n%s\nwant:\n%s", got, strings.Join(want, "\n"))
	}
}
