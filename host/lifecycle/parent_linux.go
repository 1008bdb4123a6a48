package lifecycle

import (
	"os/exec"
	"syscall"
)

// tieToParent asks the kernel to send the child SIGTERM when the thread that started
// it exits. Go ends a thread only when a goroutine locked to it returns without
// unlocking, which nothing in kadapt does, so in practice: when the parent exits.
func tieToParent(cmd *exec.Cmd) {
	if cmd.SysProcAttr == nil {
		cmd.SysProcAttr = &syscall.SysProcAttr{}
	}
	cmd.SysProcAttr.Pdeathsig = syscall.SIGTERM
}
