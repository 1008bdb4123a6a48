package lifecycle

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"runtime"
	"strings"
	"syscall"
	"testing"
	"time"
)

// The test binary plays two more roles, chosen by roleEnv: "child" waits for SIGTERM
// and reports it on stdout; "parent" starts a child with Command, prints its pid and
// waits to be killed.
const roleEnv = "KADAPT_LIFECYCLE_TEST_ROLE"

func TestMain(m *testing.M) {
	switch os.Getenv(roleEnv) {
	case "child":
		ctx, stop := OnSignals(context.Background(), nil)
		defer stop()
		fmt.Println("ready")
		<-ctx.Done()
		fmt.Println(context.Cause(ctx))
		os.Exit(ExitInterrupted)
	case "parent":
		self, _ := os.Executable()
		child := Command(context.Background(), self)
		child.Env = append(os.Environ(), roleEnv+"=child")
		out, _ := os.Create(os.Getenv("KADAPT_LIFECYCLE_TEST_OUT"))
		child.Stdout = out
		if err := child.Start(); err != nil {
			fmt.Println("error:", err)
			os.Exit(1)
		}
		fmt.Println("child", child.Process.Pid)
		time.Sleep(time.Hour)
	}
	os.Exit(m.Run())
}

func TestOnSignals(t *testing.T) {
	forced := make(chan os.Signal, 1)
	ctx, stop := OnSignals(context.Background(), func(s os.Signal) { forced <- s })
	defer stop()
	if err := syscall.Kill(os.Getpid(), syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	select {
	case <-ctx.Done():
	case <-time.After(5 * time.Second):
		t.Fatal("SIGTERM did not cancel the context")
	}
	err := fmt.Errorf("run: %w", context.Cause(ctx))
	if !IsInterrupted(err) || !strings.Contains(err.Error(), "interrupted by SIGTERM") {
		t.Fatalf("cause %v", err)
	}
	if IsInterrupted(errors.New("interrupted by SIGTERM")) || IsInterrupted(context.Canceled) {
		t.Fatal("IsInterrupted accepts errors no signal caused")
	}
	// More SIGTERMs (a scheduler repeating itself, a parent-death signal per thread of
	// a dying parent) must not force: the run is checkpointing.
	for range 3 {
		if err := syscall.Kill(os.Getpid(), syscall.SIGTERM); err != nil {
			t.Fatal(err)
		}
	}
	if err := syscall.Kill(os.Getpid(), syscall.SIGINT); err != nil {
		t.Fatal(err)
	}
	select {
	case s := <-forced:
		if s != syscall.SIGINT || ForcedExitCode(s) != 130 {
			t.Fatalf("forced by %v, exit code %d", s, ForcedExitCode(s))
		}
	case <-time.After(5 * time.Second):
		t.Fatal("a second signal did not force")
	}
}

// TestCommandStopsWithContext cancels the context of a running child: it must get
// SIGTERM (so it can checkpoint), not SIGKILL.
func TestCommandStopsWithContext(t *testing.T) {
	self, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	cmd := Command(ctx, self)
	cmd.Env = append(os.Environ(), roleEnv+"=child")
	stdout, _ := cmd.StdoutPipe()
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	r := bufio.NewReader(stdout)
	if line, _ := r.ReadString('\n'); line != "ready\n" {
		t.Fatalf("child said %q", line)
	}
	cancel()
	line, _ := r.ReadString('\n')
	err = cmd.Wait()
	var exit *exec.ExitError
	if !errors.As(err, &exit) || exit.ExitCode() != ExitInterrupted || line != "interrupted by SIGTERM\n" {
		t.Fatalf("child ended with %v after saying %q; want SIGTERM handled and exit %d", err, line, ExitInterrupted)
	}
}

// TestCommandDiesWithParent kills a parent with SIGKILL: its child must get SIGTERM
// from the kernel.
func TestCommandDiesWithParent(t *testing.T) {
	if runtime.GOOS != "linux" {
		t.Skip("the parent death signal is Linux's")
	}
	self, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	outPath := t.TempDir() + "/child.out"
	parent := exec.Command(self)
	parent.Env = append(os.Environ(), roleEnv+"=parent", "KADAPT_LIFECYCLE_TEST_OUT="+outPath)
	stdout, _ := parent.StdoutPipe()
	if err := parent.Start(); err != nil {
		t.Fatal(err)
	}
	defer parent.Process.Kill()
	var pid int
	line, _ := bufio.NewReader(stdout).ReadString('\n')
	if _, err := fmt.Sscanf(line, "child %d", &pid); err != nil {
		t.Fatalf("parent said %q", line)
	}
	defer syscall.Kill(pid, syscall.SIGKILL)
	deadline := time.Now().Add(10 * time.Second)
	for {
		data, _ := os.ReadFile(outPath)
		if strings.HasPrefix(string(data), "ready\n") {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("the child never got ready")
		}
		time.Sleep(20 * time.Millisecond)
	}
	parent.Process.Signal(syscall.SIGKILL)
	parent.Wait()
	for {
		data, _ := os.ReadFile(outPath)
		if string(data) == "ready\ninterrupted by SIGTERM\n" {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("after its parent was killed, the child wrote %q", data)
		}
		time.Sleep(20 * time.Millisecond)
	}
}
