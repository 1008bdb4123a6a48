// Package runlock gives a run directory one writer at a time, across processes and
// across machines that share the directory over NFS.
//
// The lock is a file, Name, created with O_CREAT|O_EXCL (atomic on local file systems
// and on NFSv3 and later, where the server performs the exclusive create). It holds
// the holder's host, pid, start time and a heartbeat that a goroutine refreshes every
// Beat. A lock is stale, and may be taken over, when its holder's pid is dead on the
// same host, or when its heartbeat is older than Timeout (the only test that works
// from another host; clocks must agree to well within Timeout).
//
// Taking over a stale lock goes through a second O_EXCL file, Name+".break", so that
// of several processes that all judge the lock stale exactly one removes it; a break
// file left by a process that died while breaking is itself removed after Timeout.
// The heartbeat writes through the holder's own file descriptor, so a holder that was
// judged stale (suspended longer than Timeout, cut off from the server) and replaced
// never writes into its successor's lock; it notices the loss at its next beat and
// reports it on Lost.
package runlock

import (
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"time"
)

// Name is the lock file's name inside the directory it guards.
const Name = ".lock"

// Defaults for Options.
const (
	DefaultBeat    = 15 * time.Second
	DefaultTimeout = 2 * time.Minute
)

// Holder is what a lock file says about its holder.
type Holder struct {
	Host      string    `json:"host"`
	PID       int       `json:"pid"`
	Started   time.Time `json:"started"`
	Heartbeat time.Time `json:"heartbeat"`
	Command   string    `json:"command,omitempty"` // what the holder is doing, for people reading errors
	Token     string    `json:"token"`             // tells this holder's file from a successor's
}

func (h Holder) String() string {
	return fmt.Sprintf("%s on host %s (pid %d) since %s", h.Command, h.Host, h.PID, h.Started.UTC().Format(time.RFC3339))
}

// Options tune a lock; the zero value uses the defaults.
type Options struct {
	Beat    time.Duration // heartbeat period
	Timeout time.Duration // a heartbeat older than this is stale
	Command string        // recorded in the lock for error messages ("host run", "sweep worker")
}

func (o Options) withDefaults() Options {
	if o.Beat <= 0 {
		o.Beat = DefaultBeat
	}
	if o.Timeout <= 0 {
		o.Timeout = DefaultTimeout
	}
	if o.Timeout < 2*o.Beat {
		o.Timeout = 2 * o.Beat
	}
	if o.Command == "" {
		o.Command = "a kadapt process"
	}
	return o
}

// HeldError is returned by Acquire when a live process holds the lock.
type HeldError struct {
	Dir    string
	Holder Holder
	Age    time.Duration // since the holder's last heartbeat
}

func (e *HeldError) Error() string {
	return fmt.Sprintf("%s is being written by %s, last heartbeat %s ago; wait for it to finish or stop it (its lock: %s)",
		e.Dir, e.Holder, e.Age.Round(time.Second), filepath.Join(e.Dir, Name))
}

// Lock is a held lock. Release it when done.
type Lock struct {
	dir    string
	path   string
	f      *os.File
	mu     sync.Mutex // guards holder: the heartbeat rewrites it
	holder Holder
	opt    Options
	stop   chan struct{}
	lost   chan struct{}
	done   sync.WaitGroup
	once   sync.Once
}

// Acquire takes the lock on dir (which must exist), taking over a stale one. It fails
// with *HeldError when a live process holds it.
func Acquire(dir string, opt Options) (*Lock, error) {
	opt = opt.withDefaults()
	host, err := os.Hostname()
	if err != nil {
		return nil, fmt.Errorf("lock %s: %v", dir, err)
	}
	now := time.Now().UTC()
	l := &Lock{dir: dir, path: filepath.Join(dir, Name), opt: opt, stop: make(chan struct{}), lost: make(chan struct{}),
		holder: Holder{Host: host, PID: os.Getpid(), Started: now, Heartbeat: now, Command: opt.Command,
			Token: fmt.Sprintf("%s-%d-%d", host, os.Getpid(), now.UnixNano())}}
	// Two rounds: the second follows breaking a stale lock, and loses only to a
	// process that created a fresh lock in between.
	for range 2 {
		f, err := os.OpenFile(l.path, os.O_RDWR|os.O_CREATE|os.O_EXCL, 0o644)
		if err == nil {
			l.f = f
			if err := l.write(); err != nil {
				f.Close()
				os.Remove(l.path)
				return nil, fmt.Errorf("lock %s: %v", l.path, err)
			}
			l.done.Add(1)
			go l.beat()
			return l, nil
		}
		if !errors.Is(err, os.ErrExist) {
			return nil, fmt.Errorf("lock %s: %v", l.path, err)
		}
		st := Inspect(dir, opt.Timeout)
		if !st.Stale {
			if st.Holder == nil { // created a moment ago and not written yet
				return nil, &HeldError{Dir: dir, Holder: Holder{Command: "another process", Host: "?", Started: st.Modified}, Age: time.Since(st.Modified)}
			}
			return nil, &HeldError{Dir: dir, Holder: *st.Holder, Age: st.Age}
		}
		if err := breakStale(dir, st, opt.Timeout); err != nil {
			return nil, err
		}
	}
	if st := Inspect(dir, opt.Timeout); st.Holder != nil && !st.Stale {
		return nil, &HeldError{Dir: dir, Holder: *st.Holder, Age: st.Age}
	}
	return nil, fmt.Errorf("lock %s: another process is taking over the stale lock at the same moment", l.path)
}

// breakStale removes the stale lock st described, unless someone else is breaking it
// or it changed since it was read.
func breakStale(dir string, st State, timeout time.Duration) error {
	brk := filepath.Join(dir, Name+".break")
	f, err := os.OpenFile(brk, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o644)
	if err != nil {
		if !errors.Is(err, os.ErrExist) {
			return fmt.Errorf("lock %s: %v", brk, err)
		}
		if fi, err := os.Stat(brk); err == nil && time.Since(fi.ModTime()) > timeout {
			os.Remove(brk) // its breaker died mid-break; the next Acquire breaks afresh
		}
		return nil // somebody else is breaking it; the retry sees the outcome
	}
	f.Close()
	defer os.Remove(brk)
	again := Inspect(dir, timeout)
	if again.Holder != nil && st.Holder != nil && again.Holder.Token != st.Holder.Token {
		return nil // replaced by a new holder since we looked
	}
	if again.Stale {
		if err := os.Remove(filepath.Join(dir, Name)); err != nil && !errors.Is(err, os.ErrNotExist) {
			return fmt.Errorf("lock %s: removing the stale lock: %v", filepath.Join(dir, Name), err)
		}
	}
	return nil
}

// write records the holder through the lock's own descriptor. The record is padded to
// a fixed size so a rewrite never leaves a shorter tail of an older one.
func (l *Lock) write() error {
	l.mu.Lock()
	data, err := json.Marshal(l.holder)
	l.mu.Unlock()
	if err != nil {
		return err
	}
	const size = 512
	if len(data) < size-1 {
		data = append(data, []byte(strings.Repeat(" ", size-1-len(data)))...)
	}
	data = append(data, '\n')
	if _, err := l.f.WriteAt(data, 0); err != nil {
		return err
	}
	return l.f.Sync()
}

func (l *Lock) beat() {
	defer l.done.Done()
	t := time.NewTicker(l.opt.Beat)
	defer t.Stop()
	for {
		select {
		case <-l.stop:
			return
		case <-t.C:
		}
		if !l.stillOurs() {
			close(l.lost)
			return
		}
		l.mu.Lock()
		l.holder.Heartbeat = time.Now().UTC()
		l.mu.Unlock()
		if err := l.write(); err != nil {
			// A write error on NFS (ESTALE) means the file is gone: lost.
			if !l.stillOurs() {
				close(l.lost)
				return
			}
		}
	}
}

// stillOurs reports whether the file at the lock's path is the one this Lock created.
func (l *Lock) stillOurs() bool {
	h, _, err := read(l.path)
	return err == nil && h.Token == l.holder.Token
}

// Lost is closed when the lock was taken over by another process (this holder was
// judged stale); the holder must stop writing.
func (l *Lock) Lost() <-chan struct{} { return l.lost }

// Holder is this lock's record.
func (l *Lock) Holder() Holder {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.holder
}

// Release stops the heartbeat and removes the lock if it is still this holder's.
func (l *Lock) Release() error {
	var err error
	l.once.Do(func() {
		close(l.stop)
		l.done.Wait()
		if l.stillOurs() {
			err = os.Remove(l.path)
		}
		if cerr := l.f.Close(); err == nil {
			err = cerr
		}
	})
	return err
}

// State is what Inspect finds.
type State struct {
	Held     bool          // a lock file exists
	Holder   *Holder       // nil when the file could not be parsed (being created)
	Age      time.Duration // since the last heartbeat
	Stale    bool          // the holder is gone: the lock may be taken over
	Why      string        // why it is stale
	Modified time.Time     // the file's modification time
}

// Inspect reads dir's lock without taking it.
func Inspect(dir string, timeout time.Duration) State {
	if timeout <= 0 {
		timeout = DefaultTimeout
	}
	h, mod, err := read(filepath.Join(dir, Name))
	if errors.Is(err, os.ErrNotExist) {
		return State{}
	}
	st := State{Held: true, Modified: mod}
	if err != nil {
		// Created but not yet written (or unreadable): judge by the file's age.
		st.Age = time.Since(mod)
		if st.Age > timeout {
			st.Stale, st.Why = true, fmt.Sprintf("unreadable lock older than %s", timeout)
		}
		return st
	}
	st.Holder = &h
	st.Age = time.Since(h.Heartbeat)
	if me, err := os.Hostname(); err == nil && me == h.Host && !alive(h.PID) {
		st.Stale, st.Why = true, fmt.Sprintf("pid %d is not running on %s", h.PID, h.Host)
		return st
	}
	if st.Age > timeout {
		st.Stale, st.Why = true, fmt.Sprintf("no heartbeat for %s (timeout %s)", st.Age.Round(time.Second), timeout)
	}
	return st
}

// read parses a lock file, retrying briefly: a reader can meet a heartbeat mid-write.
func read(path string) (Holder, time.Time, error) {
	var lastErr error
	for try := 0; try < 3; try++ {
		fi, err := os.Stat(path)
		if err != nil {
			return Holder{}, time.Time{}, err
		}
		data, err := os.ReadFile(path)
		if err != nil {
			return Holder{}, fi.ModTime(), err
		}
		var h Holder
		if lastErr = json.Unmarshal([]byte(strings.TrimSpace(string(data))), &h); lastErr == nil && h.Token != "" {
			return h, fi.ModTime(), nil
		}
		if lastErr == nil {
			lastErr = fmt.Errorf("%s: empty lock record", path)
		}
		time.Sleep(10 * time.Millisecond)
	}
	fi, _ := os.Stat(path)
	var mod time.Time
	if fi != nil {
		mod = fi.ModTime()
	}
	return Holder{}, mod, lastErr
}
