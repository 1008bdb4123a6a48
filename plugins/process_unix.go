//go:build unix

package plugins

import (
	"errors"
	"os"
	"os/exec"
	"os/signal"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/hashicorp/go-plugin"
)

// ownGroup starts the plugin as the leader of a new process group, so that the
// processes it starts are in that group and die with it (killGroup), and a terminal's
// Ctrl-C reaches only the host, which stops the plugin itself.
func ownGroup(cmd *exec.Cmd) {
	if cmd.SysProcAttr == nil {
		cmd.SysProcAttr = &syscall.SysProcAttr{}
	}
	cmd.SysProcAttr.Setpgid = true
}

// killGroup kills what is left of the process group a plugin led: the processes the
// plugin started. Linux does not reuse a pid while a group of that id has members.
func killGroup(pid int) {
	if pid > 0 {
		_ = syscall.Kill(-pid, syscall.SIGKILL)
	}
}

// hostPollInterval is how often a plugin checks that its host is alive.
const hostPollInterval = 200 * time.Millisecond

// exitWithHost makes the plugin exit, with every process it started, as soon as its
// host is gone, however the host died (kill -9 and the out-of-memory killer run no
// cleanup). The host is the parent process: an orphan is adopted by init or a
// subreaper, so a changed parent pid means the host has died. $KADAPT_HOST_PID
// covers a host that died before the plugin's first look.
func exitWithHost() {
	host := os.Getppid()
	if s := os.Getenv(hostPIDEnv); s != "" {
		if pid, err := strconv.Atoi(s); err == nil && pid != host && errors.Is(syscall.Kill(pid, 0), syscall.ESRCH) {
			hostGone()
		}
	}
	// A group of its own (the kadapt host starts plugins so already) collects the
	// plugin's children for the kill below.
	_ = syscall.Setpgid(0, 0)
	// The host's end of stderr closes with it: the next log line would raise SIGPIPE
	// and end the plugin before it could stop its children. Caught, it is an error.
	signal.Notify(make(chan os.Signal, 1), syscall.SIGPIPE)
	go func() {
		for range time.Tick(hostPollInterval) {
			if os.Getppid() != host {
				hostGone()
			}
		}
	}()
}

// hostGone ends the plugin and its children. It logs nothing: the log went to the host.
func hostGone() {
	// The socket directory a kadapt host made for this plugin alone; the host cannot
	// remove it any more.
	if dir := os.Getenv(plugin.EnvUnixSocketDir); strings.HasPrefix(filepath.Base(dir), socketDirPrefix) {
		os.RemoveAll(dir)
	}
	if syscall.Getpgrp() == os.Getpid() {
		_ = syscall.Kill(0, syscall.SIGKILL) // the plugin's process group: it and its children
	}
	os.Exit(1)
}
