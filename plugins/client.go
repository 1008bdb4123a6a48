package plugins

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strings"
	"sync"
	"time"

	"github.com/hashicorp/go-hclog"
	"github.com/hashicorp/go-plugin"

	"github.com/kadapt/kadapt/plugins/plan"
)

// DefaultStartTimeout bounds how long a plugin may take to complete the handshake.
const DefaultStartTimeout = 10 * time.Second

// callTimeout bounds every call into a plugin, so a hung plugin cannot hang the host.
const callTimeout = 60 * time.Second

// OpenOptions configure Open.
type OpenOptions struct {
	Logger       hclog.Logger  // the plugin's log lines are relayed here
	SHA256       string        // hex digest the binary must have (go-plugin SecureConfig); empty: no pin
	StartTimeout time.Duration // 0: DefaultStartTimeout
}

// socketDirPrefix names the private directories of plugin sockets.
const socketDirPrefix = "kadapt-plugin-"

// hostPIDEnv tells a plugin which process is its host (see exitWithHost).
const hostPIDEnv = "KADAPT_HOST_PID"

// Client is a running plugin.
type Client struct {
	Path      string
	Desc      Description
	pc        *plugin.Client
	rpc       *grpcClient
	cmd       *exec.Cmd
	socketDir string // private to the user; holds the plugin's unix socket
	closeOnce sync.Once
}

// live lists the clients not yet closed, for CleanupClients.
var live = struct {
	sync.Mutex
	clients map[*Client]bool
}{clients: map[*Client]bool{}}

// Open starts the plugin binary at path, completes the handshake and reads its
// description. Every failure names the path.
func Open(path string, opt OpenOptions) (*Client, error) {
	if opt.Logger == nil {
		opt.Logger = hclog.NewNullLogger()
	}
	if opt.StartTimeout == 0 {
		opt.StartTimeout = DefaultStartTimeout
	}
	if _, err := os.Stat(path); err != nil {
		return nil, fmt.Errorf("plugin %s: %v", path, err)
	}
	// go-plugin puts the socket in $TMPDIR, reachable by anyone who can guess its
	// name; in a directory of mode 0700 only this user can connect.
	socketDir, err := os.MkdirTemp("", socketDirPrefix)
	if err != nil {
		return nil, fmt.Errorf("plugin %s: a private socket directory: %v", path, err)
	}
	cmd := exec.Command(path)
	// The host's environment first, then ours, so ours win (SkipHostEnv below keeps
	// go-plugin from appending the host's again after them).
	cmd.Env = append(os.Environ(), fmt.Sprintf("%s=%d", hostPIDEnv, os.Getpid()), plugin.EnvUnixSocketDir+"="+socketDir)
	ownGroup(cmd)
	cfg := &plugin.ClientConfig{
		HandshakeConfig:  Handshake,
		Plugins:          plugin.PluginSet{pluginName: &GRPCPlugin{}},
		Cmd:              cmd,
		SkipHostEnv:      true,
		AllowedProtocols: []plugin.Protocol{plugin.ProtocolGRPC},
		StartTimeout:     opt.StartTimeout,
		Logger:           opt.Logger.Named(filepath.Base(path)),
		Managed:          true, // CleanupClients kills it
		SyncStdout:       io.Discard,
		SyncStderr:       io.Discard,
	}
	if opt.SHA256 != "" {
		sum, err := hex.DecodeString(strings.TrimSpace(opt.SHA256))
		if err != nil || len(sum) != sha256.Size {
			return nil, fmt.Errorf("plugin %s: pinned SHA-256 %q is not 64 hex digits", path, opt.SHA256)
		}
		cfg.SecureConfig = &plugin.SecureConfig{Checksum: sum, Hash: sha256.New()}
	}
	pc := plugin.NewClient(cfg)
	c := &Client{Path: path, pc: pc, cmd: cmd, socketDir: socketDir}
	live.Lock()
	live.clients[c] = true
	live.Unlock()
	rpcClient, err := pc.Client()
	if err != nil {
		c.Close()
		return nil, fmt.Errorf("plugin %s: %s", path, explainStart(err, opt.StartTimeout))
	}
	raw, err := rpcClient.Dispense(pluginName)
	if err != nil {
		c.Close()
		return nil, fmt.Errorf("plugin %s: %v", path, err)
	}
	c.rpc = raw.(*grpcClient)
	ctx, cancel := context.WithTimeout(context.Background(), callTimeout)
	defer cancel()
	if c.Desc, err = c.rpc.describe(ctx); err != nil {
		c.Close()
		return nil, fmt.Errorf("plugin %s: describe: %v", path, err)
	}
	if c.Desc.Name == "" {
		c.Close()
		return nil, fmt.Errorf("plugin %s: describes itself without a name", path)
	}
	return c, nil
}

// explainStart turns go-plugin's start errors into advice.
func explainStart(err error, timeout time.Duration) string {
	msg := err.Error()
	switch {
	case errors.Is(err, plugin.ErrChecksumsDoNotMatch):
		return "its SHA-256 does not match the pinned checksum (rebuilt or replaced binary?)"
	case strings.Contains(strings.ToLower(msg), "incompatible api version") || strings.Contains(strings.ToLower(msg), "incompatible core api version"):
		return fmt.Sprintf("protocol version mismatch (host speaks %d): rebuild the plugin against this kadapt: %v", ProtocolVersion, err)
	case strings.Contains(msg, "timeout while waiting for plugin to start"):
		return fmt.Sprintf("did not complete the handshake within %s (hung at start?)", timeout)
	case strings.Contains(msg, "exited before we could connect") || strings.Contains(msg, "Unrecognized remote plugin message"):
		return "exited or printed something else before the handshake: not a kadapt plugin, or it crashed at start (" + msg + ")"
	}
	return msg
}

// Describe returns the plugin's description (read once at Open).
func (c *Client) Describe() Description { return c.Desc }

// Plan validates hp against the description, asks the plugin for its plan on bb and
// validates the plan against bb.
func (c *Client) Plan(bb plan.Backbone, hp map[string]string) (plan.Plan, error) {
	values, err := ParseValues(c.Desc, hp)
	if err != nil {
		return plan.Plan{}, err
	}
	ctx, cancel := context.WithTimeout(context.Background(), callTimeout)
	defer cancel()
	p, err := c.rpc.plan(ctx, bb, values.Raw())
	if err != nil {
		return plan.Plan{}, fmt.Errorf("plugin %q (%s): plan: %v", c.Desc.Name, c.Path, err)
	}
	if err := plan.Validate(p, bb); err != nil {
		return plan.Plan{}, err
	}
	return p, nil
}

// Event sends a lifecycle event with a JSON payload.
func (c *Client) Event(kind string, payload any) error {
	raw, err := json.Marshal(payload)
	if err != nil {
		return err
	}
	ctx, cancel := context.WithTimeout(context.Background(), callTimeout)
	defer cancel()
	return c.rpc.event(ctx, Event{Kind: kind, Payload: raw})
}

// Close stops the plugin process and every process it started, and removes its
// socket directory. It may be called more than once.
func (c *Client) Close() {
	c.closeOnce.Do(func() {
		c.pc.Kill()
		if c.cmd.Process != nil {
			killGroup(c.cmd.Process.Pid)
		}
		os.RemoveAll(c.socketDir)
		live.Lock()
		delete(live.clients, c)
		live.Unlock()
	})
}

// CleanupClients stops every plugin the host started and not yet closed; the host's
// main defers it, so every way out of the host runs it.
func CleanupClients() {
	live.Lock()
	var cs []*Client
	for c := range live.clients {
		cs = append(cs, c)
	}
	live.Unlock()
	for _, c := range cs {
		c.Close()
	}
	plugin.CleanupClients()
}

// Info is one discovered plugin.
type Info struct {
	Name    string `json:"name"`
	Version string `json:"version"`
	Summary string `json:"summary"`
	Path    string `json:"path"`
	SHA256  string `json:"sha256"`
}

// SearchPath is where plugins are looked for, in order: dirs (from configuration),
// each directory in $KADAPT_PLUGIN_PATH, then bin/plugins beside the host executable.
func SearchPath(dirs ...string) []string {
	var out []string
	out = append(out, dirs...)
	if env := os.Getenv("KADAPT_PLUGIN_PATH"); env != "" {
		out = append(out, filepath.SplitList(env)...)
	}
	if exe, err := os.Executable(); err == nil {
		out = append(out, filepath.Join(filepath.Dir(exe), "plugins"))
	}
	return out
}

// Find returns the path of the plugin called name: the first executable file of that
// name in the search path.
func Find(name string, dirs []string) (string, error) {
	if strings.ContainsRune(name, os.PathSeparator) {
		return name, nil // an explicit path
	}
	for _, d := range dirs {
		p := filepath.Join(d, name)
		if st, err := os.Stat(p); err == nil && !st.IsDir() && st.Mode()&0o111 != 0 {
			return p, nil
		}
	}
	return "", fmt.Errorf("no plugin %q in %s (build them with `make build`, or set KADAPT_PLUGIN_PATH)", name, strings.Join(dirs, ", "))
}

// Discover starts every executable in dirs, reads its description and stops it. Files
// that are not kadapt plugins are reported in errs and skipped. A name found twice
// keeps the first (search-path order).
func Discover(dirs []string, opt OpenOptions) (found []Info, errs []error) {
	seen := map[string]bool{}
	for _, d := range dirs {
		entries, err := os.ReadDir(d)
		if err != nil {
			continue // a missing directory is not an error: the path lists candidates
		}
		for _, e := range entries {
			p := filepath.Join(d, e.Name())
			st, err := os.Stat(p)
			if err != nil || st.IsDir() || st.Mode()&0o111 == 0 {
				continue
			}
			c, err := Open(p, opt)
			if err != nil {
				errs = append(errs, err)
				continue
			}
			c.Close()
			if seen[c.Desc.Name] {
				continue
			}
			seen[c.Desc.Name] = true
			sum, _ := fileSHA256(p)
			found = append(found, Info{Name: c.Desc.Name, Version: c.Desc.Version, Summary: c.Desc.Summary, Path: p, SHA256: sum})
		}
	}
	sort.Slice(found, func(i, j int) bool { return found[i].Name < found[j].Name })
	return found, errs
}

func fileSHA256(path string) (string, error) {
	f, err := os.Open(path)
	if err != nil {
		return "", err
	}
	defer f.Close()
	h := sha256.New()
	if _, err := io.Copy(h, f); err != nil {
		return "", err
	}
	return hex.EncodeToString(h.Sum(nil)), nil
}
