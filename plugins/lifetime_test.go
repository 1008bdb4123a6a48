package plugins

import (
	"bufio"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"
)

// fakeHostEnv makes the test binary a minimal host (TestMain): it opens the plugin
// named by the variable, has it start a child process, prints the plugin's pid and
// waits to be killed.
const fakeHostEnv = "KADAPT_TEST_FAKE_HOST"

func TestMain(m *testing.M) {
	if bin := os.Getenv(fakeHostEnv); bin != "" {
		c, err := Open(bin, OpenOptions{})
		if err != nil {
			fmt.Println("error:", err)
			os.Exit(1)
		}
		if err := c.Event("spawn", nil); err != nil {
			fmt.Println("error:", err)
			os.Exit(1)
		}
		fmt.Println("plugin", c.cmd.Process.Pid)
		time.Sleep(time.Hour)
	}
	code := m.Run()
	if testPluginBin != "" {
		os.RemoveAll(filepath.Dir(testPluginBin))
	}
	os.Exit(code)
}

// group lists the live (not zombie) processes of process group pgid, from /proc.
func group(t *testing.T, pgid int) []int {
	t.Helper()
	entries, err := os.ReadDir("/proc")
	if err != nil {
		t.Fatal(err)
	}
	var out []int
	for _, e := range entries {
		pid, err := strconv.Atoi(e.Name())
		if err != nil {
			continue
		}
		stat, err := os.ReadFile(filepath.Join("/proc", e.Name(), "stat"))
		if err != nil {
			continue // exited meanwhile
		}
		// pid (comm) state ppid pgrp ...; comm may hold spaces and parentheses.
		f := strings.Fields(string(stat[strings.LastIndexByte(string(stat), ')')+1:]))
		if len(f) > 2 && f[0] != "Z" && f[0] != "X" && f[2] == strconv.Itoa(pgid) {
			out = append(out, pid)
		}
	}
	return out
}

// waitGone waits up to d for process group pgid to be empty.
func waitGone(t *testing.T, pgid int, d time.Duration) []int {
	t.Helper()
	deadline := time.Now().Add(d)
	for {
		left := group(t, pgid)
		if len(left) == 0 || time.Now().After(deadline) {
			return left
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// TestPluginDiesWithItsHost kills a host with SIGKILL — no cleanup of its own runs —
// and checks that the plugin notices and takes the process it started with it.
func TestPluginDiesWithItsHost(t *testing.T) {
	if runtime.GOOS != "linux" {
		t.Skip("reads /proc")
	}
	bin := buildTestPlugin(t)
	self, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	host := exec.Command(self, "-test.run=^$")
	host.Env = append(os.Environ(), fakeHostEnv+"="+bin)
	stdout, err := host.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := host.Start(); err != nil {
		t.Fatal(err)
	}
	defer host.Process.Kill()
	line, err := bufio.NewReader(stdout).ReadString('\n')
	var pid int
	if _, serr := fmt.Sscanf(line, "plugin %d", &pid); err != nil || serr != nil {
		t.Fatalf("fake host said %q (%v)", line, err)
	}
	defer syscall.Kill(-pid, syscall.SIGKILL) // whatever the test finds left
	if procs := group(t, pid); len(procs) != 2 {
		t.Fatalf("plugin group %d has processes %v, want the plugin and its child", pid, procs)
	}
	if err := host.Process.Signal(syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	host.Wait()
	if left := waitGone(t, pid, 5*time.Second); len(left) > 0 {
		for _, p := range left {
			b, _ := os.ReadFile(fmt.Sprintf("/proc/%d/stat", p))
			t.Log(string(b))
		}
		t.Fatalf("5 s after the host was killed, processes %v of the plugin's group are alive", left)
	}
}

// TestCloseStopsPluginChildren checks that closing a plugin also ends the processes it
// started, and that its unix socket sits in a directory only this user can enter,
// removed with it.
func TestCloseStopsPluginChildren(t *testing.T) {
	if runtime.GOOS != "linux" {
		t.Skip("reads /proc")
	}
	bin := buildTestPlugin(t)
	c, err := Open(bin, OpenOptions{})
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	pid := c.cmd.Process.Pid
	defer syscall.Kill(-pid, syscall.SIGKILL)

	addr := c.pc.ReattachConfig().Addr
	if addr.Network() != "unix" {
		t.Fatalf("plugin listens on %s %s, want a unix socket", addr.Network(), addr)
	}
	dir := filepath.Dir(addr.String())
	st, err := os.Stat(dir)
	if err != nil {
		t.Fatal(err)
	}
	if st.Mode().Perm() != 0o700 || st.Sys().(*syscall.Stat_t).Uid != uint32(os.Getuid()) {
		t.Fatalf("socket directory %s has mode %v, owner %d; want 0700 and uid %d", dir, st.Mode().Perm(), st.Sys().(*syscall.Stat_t).Uid, os.Getuid())
	}

	if err := c.Event("spawn", nil); err != nil {
		t.Fatal(err)
	}
	if procs := group(t, pid); len(procs) != 2 {
		t.Fatalf("plugin group %d has processes %v, want the plugin and its child", pid, procs)
	}
	c.Close()
	if left := waitGone(t, pid, 2*time.Second); len(left) > 0 {
		t.Fatalf("after Close, processes %v of the plugin's group are alive", left)
	}
	if _, err := os.Stat(dir); !os.IsNotExist(err) {
		t.Fatalf("socket directory %s survives Close: %v", dir, err)
	}
}
