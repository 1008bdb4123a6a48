package runlock

import (
	"encoding/json"
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"
)

func writeHolder(t *testing.T, dir string, h Holder) {
	t.Helper()
	data, _ := json.Marshal(h)
	if err := os.WriteFile(filepath.Join(dir, Name), data, 0o644); err != nil {
		t.Fatal(err)
	}
}

func TestSecondWriterNamesTheHolder(t *testing.T) {
	dir := t.TempDir()
	l, err := Acquire(dir, Options{Command: "host run"})
	if err != nil {
		t.Fatal(err)
	}
	_, err = Acquire(dir, Options{Command: "host run --resume"})
	var held *HeldError
	if !errors.As(err, &held) {
		t.Fatalf("second Acquire: %v, want a HeldError", err)
	}
	host, _ := os.Hostname()
	for _, want := range []string{dir, "host run", host, "pid " + itoa(os.Getpid())} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("error %q does not name %q", err, want)
		}
	}
	if err := l.Release(); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(filepath.Join(dir, Name)); !errors.Is(err, os.ErrNotExist) {
		t.Fatalf("Release left the lock file: %v", err)
	}
	l2, err := Acquire(dir, Options{})
	if err != nil {
		t.Fatalf("Acquire after Release: %v", err)
	}
	l2.Release()
}

func itoa(i int) string { b, _ := json.Marshal(i); return string(b) }

// A lock whose pid has exited on this host is stale at once, heartbeat or not.
func TestDeadPIDOnThisHostIsStale(t *testing.T) {
	dir := t.TempDir()
	cmd := exec.Command("true")
	if err := cmd.Run(); err != nil {
		t.Skip("no `true` command:", err)
	}
	host, _ := os.Hostname()
	now := time.Now().UTC()
	writeHolder(t, dir, Holder{Host: host, PID: cmd.Process.Pid, Started: now, Heartbeat: now, Command: "host run", Token: "dead"})
	st := Inspect(dir, time.Hour)
	if !st.Stale || !strings.Contains(st.Why, "not running") {
		t.Fatalf("Inspect: %+v, want stale because the pid is gone", st)
	}
	l, err := Acquire(dir, Options{Timeout: time.Hour})
	if err != nil {
		t.Fatalf("taking over a dead holder's lock: %v", err)
	}
	l.Release()
}

// From another host only the heartbeat can tell: fresh is held, old is stale.
func TestOtherHostJudgedByHeartbeat(t *testing.T) {
	dir := t.TempDir()
	now := time.Now().UTC()
	writeHolder(t, dir, Holder{Host: "node-7.cluster", PID: 1, Started: now.Add(-time.Hour), Heartbeat: now.Add(-10 * time.Second), Command: "sweep worker", Token: "remote"})
	_, err := Acquire(dir, Options{Timeout: time.Minute})
	var held *HeldError
	if !errors.As(err, &held) || held.Holder.Host != "node-7.cluster" || !strings.Contains(err.Error(), "node-7.cluster") {
		t.Fatalf("fresh remote lock: %v, want a HeldError naming node-7.cluster", err)
	}
	writeHolder(t, dir, Holder{Host: "node-7.cluster", PID: 1, Started: now.Add(-time.Hour), Heartbeat: now.Add(-2 * time.Minute), Command: "sweep worker", Token: "remote"})
	l, err := Acquire(dir, Options{Timeout: time.Minute})
	if err != nil {
		t.Fatalf("stale remote lock: %v", err)
	}
	defer l.Release()
	if h, _, _ := read(filepath.Join(dir, Name)); h.Token != l.Holder().Token {
		t.Fatalf("lock file holds %+v after the takeover", h)
	}
}

// Many processes that all find the same stale lock: exactly one takes it over.
func TestRacingTakeoversHaveOneWinner(t *testing.T) {
	for round := 0; round < 20; round++ {
		dir := t.TempDir()
		old := time.Now().UTC().Add(-time.Hour)
		writeHolder(t, dir, Holder{Host: "gone", PID: 1, Started: old, Heartbeat: old, Token: "gone"})
		var wg sync.WaitGroup
		var mu sync.Mutex
		var won []*Lock
		for i := 0; i < 8; i++ {
			wg.Add(1)
			go func() {
				defer wg.Done()
				l, err := Acquire(dir, Options{Timeout: time.Minute})
				if err == nil {
					mu.Lock()
					won = append(won, l)
					mu.Unlock()
				}
			}()
		}
		wg.Wait()
		if len(won) != 1 {
			t.Fatalf("round %d: %d winners, want 1", round, len(won))
		}
		won[0].Release()
	}
}

// A holder that was judged stale and replaced notices, and neither its heartbeat nor
// its Release touches the successor's lock.
func TestReplacedHolderLosesAndLeavesTheSuccessorAlone(t *testing.T) {
	dir := t.TempDir()
	l, err := Acquire(dir, Options{Beat: 20 * time.Millisecond, Timeout: time.Minute})
	if err != nil {
		t.Fatal(err)
	}
	// What a breaker on another host does: remove the lock, create its own.
	os.Remove(filepath.Join(dir, Name))
	now := time.Now().UTC()
	writeHolder(t, dir, Holder{Host: "node-2", PID: 42, Started: now, Heartbeat: now, Token: "successor"})
	select {
	case <-l.Lost():
	case <-time.After(5 * time.Second):
		t.Fatal("the replaced holder never noticed")
	}
	l.Release()
	h, _, err := read(filepath.Join(dir, Name))
	if err != nil || h.Token != "successor" {
		t.Fatalf("successor's lock after the old holder's Release: %+v, %v", h, err)
	}
}

func TestHeartbeatAdvances(t *testing.T) {
	dir := t.TempDir()
	l, err := Acquire(dir, Options{Beat: 20 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	defer l.Release()
	first, _, _ := read(filepath.Join(dir, Name))
	time.Sleep(100 * time.Millisecond)
	later, _, err := read(filepath.Join(dir, Name))
	if err != nil || !later.Heartbeat.After(first.Heartbeat) || !later.Started.Equal(first.Started) {
		t.Fatalf("heartbeat %v then %v (err %v); started %v then %v", first.Heartbeat, later.Heartbeat, err, first.Started, later.Started)
	}
}

// A lock file that exists but holds no record yet (its creator is between create and
// write) is held while young, stale when old.
func TestUnwrittenLock(t *testing.T) {
	dir := t.TempDir()
	p := filepath.Join(dir, Name)
	if err := os.WriteFile(p, nil, 0o644); err != nil {
		t.Fatal(err)
	}
	if _, err := Acquire(dir, Options{Timeout: time.Minute}); err == nil {
		t.Fatal("took a lock that was being created")
	}
	old := time.Now().Add(-time.Hour)
	os.Chtimes(p, old, old)
	l, err := Acquire(dir, Options{Timeout: time.Minute})
	if err != nil {
		t.Fatalf("old empty lock: %v", err)
	}
	l.Release()
}
