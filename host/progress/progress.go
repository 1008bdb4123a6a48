// Package progress shows how far the host's long stretches are — training, the
// final test pass, feature caching, bench, a sweep's runs — on standard error, so
// standard output stays clean for results and --json.
//
// One Display serves a process, in one of three modes:
//
//   - terminal: one live bar per task (vbauerster/mpb draws them, several at once for
//     a sweep's parallel runs), with log and epoch lines printed above the bars
//     through Display.Write instead of tearing them;
//   - plain (a pipe, a file, a CI log): one line per task every Interval, with its
//     counts, elapsed time and ETA, so a log shows the run is alive without a line per
//     step;
//   - events: one machine-readable line per task at most every second, which a parent
//     process (a local sweep reading its workers) turns back into tasks of its own
//     (Forward).
package progress

import (
	"encoding/json"
	"fmt"
	"io"
	"os"
	"strings"
	"sync"
	"time"

	"github.com/mattn/go-isatty"
	"github.com/vbauerster/mpb/v8"
	"github.com/vbauerster/mpb/v8/decor"
)

// Mode is how a Display shows its tasks.
type Mode int

const (
	Plain    Mode = iota // periodic lines
	Terminal             // live bars
	Events               // machine-readable lines for a parent process
)

// DefaultInterval is how often plain mode prints a line for a running task.
const DefaultInterval = 10 * time.Second

// eventInterval is how often events mode reports a running task: a parent's bar
// needs no more.
const eventInterval = time.Second

// EventPrefix starts each line of events mode.
const EventPrefix = "kadapt-progress "

// Options configure a Display; the zero value suits a real process.
type Options struct {
	// Mode is the display's mode; nil means Terminal when the output is a terminal
	// and Plain otherwise.
	Mode *Mode
	// Interval is plain mode's period; 0 means DefaultInterval.
	Interval time.Duration
	// Now is the clock; nil means time.Now. Tests pass a fake one.
	Now func() time.Time
}

// Display is where tasks show their progress. Its methods may be called from any
// goroutine.
type Display struct {
	out      io.Writer
	mode     Mode
	interval time.Duration
	now      func() time.Time

	mu   sync.Mutex
	bars *mpb.Progress // terminal mode, while any task is live
	live int           // tasks started and not ended
}

// New makes a display writing to out.
func New(out io.Writer, opt Options) *Display {
	d := &Display{out: out, interval: opt.Interval, now: opt.Now}
	if d.interval <= 0 {
		d.interval = DefaultInterval
	}
	if d.now == nil {
		d.now = time.Now
	}
	switch {
	case opt.Mode != nil:
		d.mode = *opt.Mode
	case isTerminal(out):
		d.mode = Terminal
	default:
		d.mode = Plain
	}
	return d
}

func isTerminal(w io.Writer) bool {
	f, ok := w.(*os.File)
	return ok && (isatty.IsTerminal(f.Fd()) || isatty.IsCygwinTerminal(f.Fd()))
}

var (
	stderrOnce sync.Once
	stderr     *Display
)

// Stderr is the process's display on standard error: a process has one terminal, so
// its loggers (which write through it) and its tasks share one display.
func Stderr() *Display {
	stderrOnce.Do(func() { stderr = New(os.Stderr, Options{}) })
	return stderr
}

// UseEvents switches the display to events mode, before any task starts: a sweep's
// worker reports to the sweep that started it, not to a person.
func (d *Display) UseEvents() {
	d.mu.Lock()
	defer d.mu.Unlock()
	d.mode = Events
}

// Mode is the display's mode.
func (d *Display) Mode() Mode {
	d.mu.Lock()
	defer d.mu.Unlock()
	return d.mode
}

// Write prints whole lines: above the bars while any are live on a terminal,
// straight to the output otherwise. Loggers and epoch lines write here.
func (d *Display) Write(b []byte) (int, error) {
	d.mu.Lock()
	bars := d.bars
	d.mu.Unlock()
	if bars != nil {
		if n, err := bars.Write(b); err == nil {
			return n, nil
		}
	}
	return d.out.Write(b)
}

// Println writes one line through Write.
func (d *Display) Println(line string) {
	fmt.Fprintln(d, line)
}

// Task is one long stretch: done of total units, with a line of detail.
type Task struct {
	d     *Display
	name  string
	bytes bool // counted in bytes
	start time.Time
	bar   *mpb.Bar // terminal mode, once the task has run barDelay

	mu        sync.Mutex
	done      int64
	total     int64
	detail    string
	first     bool // an Update has arrived: firstDone and firstAt are set
	firstDone int64
	firstAt   time.Time
	lastLine  time.Time // plain and events modes: when the last line was written
	lines     int       // plain and events modes: lines written
	ended     bool
	barAsked  bool // terminal mode: addBar was called
}

// Start begins a task of total units (0 when unknown yet). End it when it stops,
// whether it finished or failed.
func (d *Display) Start(name string, total int64) *Task {
	return d.start(name, total, false)
}

// StartBytes begins a task counted in bytes, shown as "1.5 GiB/4.0 GiB".
func (d *Display) StartBytes(name string, total int64) *Task {
	return d.start(name, total, true)
}

func (d *Display) start(name string, total int64, bytes bool) *Task {
	t := &Task{d: d, name: name, total: total, start: d.now(), bytes: bytes}
	t.lastLine = t.start
	d.mu.Lock()
	d.live++
	d.mu.Unlock()
	return t
}

// Show draws the task's bar at once on a terminal, for a task that updates seldom
// (a sweep's, once per finished run) and would otherwise wait barDelay for an update.
func (t *Task) Show() {
	if t.d.Mode() != Terminal {
		return
	}
	t.mu.Lock()
	asked := t.barAsked
	t.barAsked = true
	t.mu.Unlock()
	if !asked {
		t.addBar()
	}
}

// barDelay is how long a task runs before it gets a bar: a five-image validation
// pass each epoch would only flicker.
const barDelay = 500 * time.Millisecond

// barWidth keeps a bar's line short of the terminal's width: a line that fills it
// wraps, and the bars below it are then redrawn one line off.
const barWidth = 24

// addBar gives the task its bar on the terminal, starting the bars' container if
// this is the first. The caller must not hold t.mu: mpb draws the bar with summary,
// which takes it.
func (t *Task) addBar() {
	d := t.d
	d.mu.Lock()
	if d.bars == nil {
		// ForceTTY and WithAutoRefresh: terminal mode was asked for on something that
		// is not one (a test's buffer), where mpb would otherwise draw nothing.
		d.bars = mpb.New(mpb.WithOutput(d.out), mpb.WithRefreshRate(150*time.Millisecond),
			mpb.ContainerOptional(mpb.ForceTTY(), !isTerminal(d.out)),
			mpb.ContainerOptional(mpb.WithAutoRefresh(), !isTerminal(d.out)))
	}
	bars := d.bars
	d.mu.Unlock()
	t.mu.Lock()
	total := max(t.total, 1)
	t.mu.Unlock()
	bar := bars.AddBar(total, mpb.BarWidth(barWidth),
		mpb.PrependDecorators(decor.Name(t.name, decor.WCSyncSpaceR)),
		mpb.AppendDecorators(decor.Any(func(decor.Statistics) string { return t.summary() })),
		mpb.BarRemoveOnComplete())
	t.mu.Lock()
	t.bar = bar
	t.mu.Unlock()
}

// Update sets how far the task is: done of total units (total 0 keeps the last
// one), and a short detail ("epoch 3/50 loss 0.412").
func (t *Task) Update(done, total int64, detail string) {
	now := t.d.now()
	t.mu.Lock()
	if t.ended {
		t.mu.Unlock()
		return
	}
	if total > 0 {
		t.total = total
	}
	t.done, t.detail = done, detail
	if !t.first {
		t.first, t.firstDone, t.firstAt = true, done, now
	}
	var line string
	switch t.d.mode {
	case Plain:
		if now.Sub(t.lastLine) >= t.d.interval {
			t.lastLine = now
			t.lines++
			line = t.plainLine(now)
		}
	case Events:
		// Like a bar, an event waits for barDelay: a validation pass of a few images
		// each epoch would otherwise take over the parent's line.
		if now.Sub(t.lastLine) >= eventInterval && now.Sub(t.start) >= barDelay {
			t.lastLine = now
			t.lines++
			line = t.event(false)
		}
	}
	needBar := t.d.mode == Terminal && !t.barAsked && now.Sub(t.start) >= barDelay
	if needBar {
		t.barAsked = true
	}
	t.mu.Unlock()
	if needBar {
		t.addBar()
	}
	t.mu.Lock()
	bar, total := t.bar, t.total
	t.mu.Unlock()
	if bar != nil {
		bar.SetTotal(max(total, 1), false)
		bar.SetCurrent(min(done, max(total, 1)-1)) // completes only at End
	}
	if line != "" {
		t.d.Println(line)
	}
}

// End stops the task: its bar goes away, and in plain mode a task that printed lines
// prints its last.
func (t *Task) End() {
	now := t.d.now()
	t.mu.Lock()
	if t.ended {
		t.mu.Unlock()
		return
	}
	t.ended = true
	var line string
	switch {
	case t.d.mode == Plain && t.lines > 0:
		line = fmt.Sprintf("%s: %s in %s", t.name, t.counts(), formatDuration(now.Sub(t.start)))
		if t.detail != "" {
			line += "  " + t.detail
		}
	case t.d.mode == Events && t.lines > 0:
		line = t.event(true)
	}
	bar := t.bar
	t.mu.Unlock()
	if line != "" {
		t.d.Println(line)
	}
	d := t.d
	d.mu.Lock()
	d.live--
	var last *mpb.Progress
	if d.live == 0 && d.bars != nil {
		last, d.bars = d.bars, nil
	}
	d.mu.Unlock()
	if bar != nil {
		bar.Abort(true)
	}
	if last != nil {
		last.Wait() // flushes lines written above the bars, then lets go of the terminal
	}
}

// summary is the bar's text after the bar itself.
func (t *Task) summary() string {
	now := t.d.now()
	t.mu.Lock()
	defer t.mu.Unlock()
	s := t.counts()
	if t.detail != "" {
		s += "  " + t.detail
	}
	if eta, ok := t.eta(now); ok {
		s += "  ETA " + formatDuration(eta)
	}
	return s
}

// plainLine is one periodic line of plain mode.
func (t *Task) plainLine(now time.Time) string {
	var b strings.Builder
	fmt.Fprintf(&b, "%s: %s", t.name, t.counts())
	if t.detail != "" {
		b.WriteString("  " + t.detail)
	}
	fmt.Fprintf(&b, "  %s elapsed", formatDuration(now.Sub(t.start)))
	if eta, ok := t.eta(now); ok {
		b.WriteString(", ETA " + formatDuration(eta))
	}
	return b.String()
}

// counts is "done/total (pct%)", or the count alone while the total is unknown.
func (t *Task) counts() string {
	count := func(n int64) string { return fmt.Sprint(n) }
	if t.bytes {
		count = formatBytes
	}
	if t.total <= 0 {
		return count(t.done)
	}
	return fmt.Sprintf("%s/%s (%.0f%%)", count(t.done), count(t.total), 100*float64(t.done)/float64(t.total))
}

// formatBytes is "512 B", "1.5 KiB", "3.0 GiB".
func formatBytes(n int64) string {
	const unit = 1024
	if n < unit {
		return fmt.Sprintf("%d B", n)
	}
	b := float64(n) / unit
	suffix := "KMGTPE"
	i := 0
	for ; b >= unit && i < len(suffix)-1; i++ {
		b /= unit
	}
	return fmt.Sprintf("%.1f %ciB", b, suffix[i])
}

// eta extrapolates the rate since the first update, so that a run resumed half way
// is not taken to have done its first half in no time.
func (t *Task) eta(now time.Time) (time.Duration, bool) {
	if !t.first || t.total <= 0 || t.done <= t.firstDone || t.done >= t.total {
		return 0, false
	}
	rate := float64(t.done-t.firstDone) / now.Sub(t.firstAt).Seconds()
	if rate <= 0 {
		return 0, false
	}
	return time.Duration(float64(t.total-t.done) / rate * float64(time.Second)), true
}

// Event is one line of events mode.
type Event struct {
	Task   string `json:"task"`
	Done   int64  `json:"done"`
	Total  int64  `json:"total"`
	Detail string `json:"detail,omitempty"`
	End    bool   `json:"end,omitempty"`
}

func (t *Task) event(end bool) string {
	raw, _ := json.Marshal(Event{Task: t.name, Done: t.done, Total: t.total, Detail: t.detail, End: end})
	return EventPrefix + string(raw)
}

// ParseEvent reads a line of events mode; ok is false for any other line.
func ParseEvent(line string) (Event, bool) {
	rest, found := strings.CutPrefix(strings.TrimRight(line, "\r\n"), EventPrefix)
	if !found {
		return Event{}, false
	}
	var e Event
	if json.Unmarshal([]byte(rest), &e) != nil {
		return Event{}, false
	}
	return e, true
}

// Forward shows a child process's events as one task of this display, named name:
// it returns a writer for the child's standard error that turns event lines into
// updates of that task (the child's current task and its detail become the detail)
// and passes every other line on to rest. Close it when the child has exited.
func (d *Display) Forward(name string, rest io.Writer) io.WriteCloser {
	return &forwarder{task: d.Start(name, 0), rest: rest}
}

type forwarder struct {
	task    *Task
	rest    io.Writer
	partial []byte
	current string // the child's task being shown
}

func (f *forwarder) Write(b []byte) (int, error) {
	f.partial = append(f.partial, b...)
	for {
		i := strings.IndexByte(string(f.partial), '\n')
		if i < 0 {
			return len(b), nil
		}
		line := f.partial[:i+1]
		if e, ok := ParseEvent(string(line)); ok {
			if !e.End {
				if e.Task != f.current {
					// Another of the child's tasks, counted in other units: the rate
					// behind the ETA starts over.
					f.current = e.Task
					f.task.mu.Lock()
					f.task.first = false
					f.task.mu.Unlock()
				}
				detail := e.Task
				if e.Detail != "" {
					detail += ": " + e.Detail
				}
				f.task.Update(e.Done, e.Total, detail)
			}
		} else if _, err := f.rest.Write(line); err != nil {
			return len(b), err
		}
		f.partial = f.partial[i+1:]
	}
}

func (f *forwarder) Close() error {
	f.task.End()
	if len(f.partial) > 0 {
		_, err := f.rest.Write(f.partial)
		f.partial = nil
		return err
	}
	return nil
}

// formatDuration is "1:02:03", "2:03" or "12s".
func formatDuration(d time.Duration) string {
	s := int64(d.Round(time.Second) / time.Second)
	switch {
	case s >= 3600:
		return fmt.Sprintf("%d:%02d:%02d", s/3600, s/60%60, s%60)
	case s >= 60:
		return fmt.Sprintf("%d:%02d", s/60, s%60)
	}
	return fmt.Sprintf("%ds", s)
}
