// Package lifecycle ties kadapt's processes to the life of whoever started them: the
// host turns SIGINT and SIGTERM into a stop at the next training step (checkpoint
// first, then a distinct exit status), and the children it starts — `host run` under
// a sweep — die with it, however it died.
//
// Every command that must stop cleanly on a signal (`host run`, a sweep and its
// workers) takes its context from OnSignals and returns the error it ends with to
// ExitCode.
package lifecycle

import (
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"os/signal"
	"syscall"
	"time"
)

// ExitInterrupted is the exit status of a command stopped by SIGINT or SIGTERM after
// saving its work: a run stopped so continues exactly with `host run --resume DIR`,
// and a scheduler that retries on it (Slurm's --requeue, a Kubernetes Job's retries)
// loses at most the step in flight. It is EX_TEMPFAIL of sysexits.h: try again later.
const ExitInterrupted = 75

// Interrupted is the cause of a context that OnSignals cancelled.
type Interrupted struct{ Signal os.Signal }

func (e *Interrupted) Error() string { return "interrupted by " + signalName(e.Signal) }

func signalName(s os.Signal) string {
	switch s {
	case syscall.SIGINT:
		return "SIGINT"
	case syscall.SIGTERM:
		return "SIGTERM"
	}
	return s.String()
}

// IsInterrupted says whether err ends a command that a signal stopped.
func IsInterrupted(err error) bool {
	var in *Interrupted
	return errors.As(err, &in)
}

// OnSignals returns a context cancelled, with an *Interrupted cause, at the first
// SIGINT or SIGTERM. A later SIGINT (Ctrl-C again) means the user will not wait for
// the step in flight: force is called with it (it should kill the plugins and exit).
// A later SIGTERM changes nothing: schedulers repeat it, and the kernel sends a
// parent-death signal once per thread of a dying parent. stop restores the default
// handling.
func OnSignals(parent context.Context, force func(os.Signal)) (ctx context.Context, stop func()) {
	ctx, cancel := context.WithCancelCause(parent)
	ch := make(chan os.Signal, 4)
	signal.Notify(ch, os.Interrupt, syscall.SIGTERM)
	done := make(chan struct{})
	go func() {
		select {
		case s := <-ch:
			cancel(&Interrupted{Signal: s})
		case <-done:
			return
		}
		for {
			select {
			case s := <-ch:
				if s == os.Interrupt && force != nil {
					force(s)
				}
			case <-done:
				return
			}
		}
	}()
	return ctx, func() {
		signal.Stop(ch)
		close(done)
		cancel(nil)
	}
}

// ForcedExitCode is the conventional status of a process ended by s (128 + its number),
// for a forced exit after a second SIGINT.
func ForcedExitCode(s os.Signal) int {
	if n, ok := s.(syscall.Signal); ok {
		return 128 + int(n)
	}
	return 1
}

// Stopped wraps the cause of ctx's cancellation with what was saved, for the one
// line the user sees.
func Stopped(ctx context.Context, format string, a ...any) error {
	return fmt.Errorf("%w; %s", context.Cause(ctx), fmt.Sprintf(format, a...))
}

// ChildGrace is how long a child tied to its parent gets to checkpoint after SIGTERM
// before it is killed.
const ChildGrace = 2 * time.Minute

// Command is exec.CommandContext for a child that must not outlive its parent: when
// ctx is cancelled the child gets SIGTERM (it checkpoints and exits; SIGKILL follows
// after ChildGrace), and if the parent dies without a chance to say so (kill -9, out
// of memory) the kernel sends the child SIGTERM itself where it can (Linux's parent
// death signal).
func Command(ctx context.Context, name string, args ...string) *exec.Cmd {
	cmd := exec.CommandContext(ctx, name, args...)
	cmd.Cancel = func() error { return cmd.Process.Signal(syscall.SIGTERM) }
	cmd.WaitDelay = ChildGrace
	tieToParent(cmd)
	return cmd
}
