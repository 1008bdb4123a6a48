package progress

import (
	"bytes"
	"io"
	"os"
	"strings"
	"sync"
	"testing"
	"time"
)

// fakeClock is a clock the test moves by hand.
type fakeClock struct {
	mu sync.Mutex
	t  time.Time
}

func (c *fakeClock) now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.t
}

func (c *fakeClock) advance(d time.Duration) {
	c.mu.Lock()
	c.t = c.t.Add(d)
	c.mu.Unlock()
}

func modeOf(m Mode) *Mode { return &m }

// syncBuffer is a bytes.Buffer safe for mpb's goroutine and the test's.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

// TestPlainModePrintsPeriodicLines: off a terminal, a task prints one line every
// Interval with its counts, elapsed time and an ETA from its rate since the first
// update, and a last line when it ends; a short task prints nothing.
func TestPlainModePrintsPeriodicLines(t *testing.T) {
	clock := &fakeClock{t: time.Unix(1e9, 0)}
	var out bytes.Buffer
	d := New(&out, Options{Mode: modeOf(Plain), Interval: 10 * time.Second, Now: clock.now})

	short := d.Start("val", 20)
	clock.advance(2 * time.Second)
	short.Update(20, 20, "")
	short.End()
	if out.Len() != 0 {
		t.Fatalf("a 2 s task printed %q", out.String())
	}

	task := d.Start("test", 4000)
	for i := 1; i <= 40; i++ { // 100 examples a second for 40 s
		clock.advance(time.Second)
		task.Update(int64(100*i), 0, "loss 0.5")
	}
	d.Println("an epoch line")
	clock.advance(500 * time.Millisecond)
	task.End()
	want := []string{
		// The first update (100 at 1 s) anchors the rate: 900 in 9 s, 3000 to go.
		"test: 1000/4000 (25%)  loss 0.5  10s elapsed, ETA 30s",
		"test: 2000/4000 (50%)  loss 0.5  20s elapsed, ETA 20s",
		"test: 3000/4000 (75%)  loss 0.5  30s elapsed, ETA 10s",
		"test: 4000/4000 (100%)  loss 0.5  40s elapsed",
		"an epoch line",
		"test: 4000/4000 (100%) in 41s  loss 0.5",
	}
	if got := strings.Split(strings.TrimSuffix(out.String(), "\n"), "\n"); strings.Join(got, "\n") != strings.Join(want, "\n") {
		t.Fatalf("lines:\n%s\nwant:\n%s", strings.Join(got, "\n"), strings.Join(want, "\n"))
	}
}

// TestBytesTask: a download counts in bytes, and its ETA ignores the bytes an
// earlier attempt left on disk (its rate is that of this run's bytes).
func TestBytesTask(t *testing.T) {
	clock := &fakeClock{t: time.Unix(1e9, 0)}
	var out bytes.Buffer
	d := New(&out, Options{Mode: modeOf(Plain), Interval: 10 * time.Second, Now: clock.now})
	task := d.StartBytes("f.zip", 8<<30)
	task.Update(2<<30, 0, "") // resumed: 2 GiB already there
	clock.advance(1024 * time.Second)
	task.Update(3<<30, 0, "") // 1 GiB in 1024 s: 1 MiB/s, 5 GiB to go
	unknown := d.StartBytes("g.bin", 0)
	clock.advance(10 * time.Second)
	unknown.Update(100, 0, "")
	want := "f.zip: 3.0 GiB/8.0 GiB (38%)  17:04 elapsed, ETA 1:25:20\n" +
		"g.bin: 100 B  10s elapsed\n"
	if out.String() != want {
		t.Fatalf("lines:\n%s\nwant:\n%s", out.String(), want)
	}
}

// TestEventsRoundTrip: a worker's events, read back by its parent through Forward,
// become one task of the parent's display whose lines follow the worker's tasks;
// other lines pass through untouched, however the writes split them.
func TestEventsRoundTrip(t *testing.T) {
	clock := &fakeClock{t: time.Unix(1e9, 0)}
	var parentOut, rest bytes.Buffer
	parent := New(&parentOut, Options{Mode: modeOf(Plain), Interval: 10 * time.Second, Now: clock.now})
	fw := parent.Forward("lora-s0", &rest)

	// Byte by byte: a line split across writes must still be read whole.
	var childOut bytes.Buffer
	child := New(io.MultiWriter(&childOut, byteWriter{fw}), Options{Mode: modeOf(Plain), Now: clock.now})
	child.UseEvents()
	train := child.Start("train", 200)
	for i := 1; i <= 200; i++ {
		clock.advance(100 * time.Millisecond) // an event a second: every 10th step and the last
		train.Update(int64(i), 0, "epoch 1/1")
	}
	train.End()
	child.Println("2026-12-07T01:00:00Z [INFO]  worker: done")
	short := child.Start("val", 5) // a pass too short to report
	short.Update(5, 5, "")
	short.End()
	if n := strings.Count(childOut.String(), EventPrefix); n != 21 {
		t.Errorf("%d event lines, want 21 (20 at one a second, and the end)", n)
	}
	fw.Close()
	if got, want := rest.String(), "2026-12-07T01:00:00Z [INFO]  worker: done\n"; got != want {
		t.Errorf("passed through %q, want %q", got, want)
	}
	lines := strings.Split(strings.TrimSpace(parentOut.String()), "\n")
	if len(lines) != 3 || lines[0] != "lora-s0: 100/200 (50%)  train: epoch 1/1  10s elapsed, ETA 10s" ||
		lines[2] != "lora-s0: 200/200 (100%) in 20s  train: epoch 1/1" {
		t.Errorf("parent's lines:\n%s", parentOut.String())
	}
	if _, ok := ParseEvent("kadapt-progress {broken"); ok {
		t.Error("a malformed event parsed")
	}
}

// byteWriter writes one byte at a time.
type byteWriter struct{ w io.Writer }

func (b byteWriter) Write(p []byte) (int, error) {
	for i := range p {
		if _, err := b.w.Write(p[i : i+1]); err != nil {
			return i, err
		}
	}
	return len(p), nil
}

// TestTerminalModeDrawsOnItsOutputOnly: the bars and the lines written above them go
// to the display's output (standard error in the host), never to standard output,
// which carries results and --json.
func TestTerminalModeDrawsOnItsOutputOnly(t *testing.T) {
	r, w, err := os.Pipe()
	if err != nil {
		t.Fatal(err)
	}
	stdout := os.Stdout
	os.Stdout = w
	defer func() { os.Stdout = stdout }()

	var out syncBuffer
	clock := &fakeClock{t: time.Unix(1e9, 0)}
	d := New(&out, Options{Mode: modeOf(Terminal), Now: clock.now})
	a := d.Start("train", 50)
	b := d.Start("test", 1000)
	short := d.Start("val", 5)
	short.Update(5, 5, "")
	short.End() // too short for a bar
	clock.advance(time.Second)
	for i := 1; i <= 50; i++ {
		a.Update(int64(i), 0, "epoch 1/1")
		b.Update(int64(20*i), 0, "")
		if i == 25 {
			d.Println("epoch 1/2  loss 0.4")
		}
		time.Sleep(5 * time.Millisecond)
	}
	a.End()
	b.End()
	os.Stdout = stdout
	w.Close()
	leaked, _ := io.ReadAll(r)
	if len(leaked) != 0 {
		t.Fatalf("the display wrote %q to standard output", leaked)
	}
	got := out.String()
	for _, want := range []string{"train", "test", "epoch 1/1", "epoch 1/2  loss 0.4\n"} {
		if !strings.Contains(got, want) {
			t.Errorf("output lacks %q:\n%q", want, got)
		}
	}
	if strings.Contains(got, "val") {
		t.Errorf("a task shorter than barDelay was drawn:\n%q", got)
	}
	// Once the last task ended the bars are gone, and lines go straight out.
	d.Println("after")
	if !strings.HasSuffix(out.String(), "after\n") {
		t.Errorf("a line after the bars: %q", out.String())
	}
}
